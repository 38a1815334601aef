package rollout_test

import (
	"database/sql"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// OpenReadOnly creates no ledger where there is none and upgrades none of
// another version, with errors a caller branches on; on a ledger at this
// build's version it reads the stored plans as Open does.
func TestOpenReadOnly(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		_, err := rollout.OpenReadOnly(ctx, db)
		require.ErrorIs(t, err, ledger.ErrNotInitialised)
		require.ErrorIs(t, ledger.Check(ctx, db), ledger.ErrNotInitialised, "OpenReadOnly created the ledger")

		rollouttest.UsersDB(t, db)
		_, err = rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.UsersPlan(db)})
		require.NoError(t, err)
		c, err := rollout.OpenReadOnly(ctx, db)
		require.NoError(t, err)
		assert.Equal(t, []string{rollouttest.UsersPlan(db).Migration}, c.Migrations())

		// An older ledger is reported, not upgraded.
		db.MustExecContext(ctx, `UPDATE schemashift_ledger_schema SET version = version - 1`)
		_, err = rollout.OpenReadOnly(ctx, db)
		var ve *ledger.VersionError
		require.ErrorAs(t, err, &ve)
		assert.Equal(t, ledger.SchemaVersion()-1, ve.Have)
		require.ErrorAs(t, ledger.Check(ctx, db), &ve, "still at the older version")
		_, err = rollout.OpenReadOnly(ctx, (*sql.DB)(nil))
		require.ErrorIs(t, err, rollout.ErrInvalidArgument)
	})
}
