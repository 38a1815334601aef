package ledger_test

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/ledger"
)

// Check tells a missing ledger and one of another version apart, as
// errors a caller branches on, and creates nothing.
func TestCheck(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		err := ledger.Check(ctx, db)
		require.ErrorIs(t, err, ledger.ErrNotInitialised)
		assert.NotErrorIs(t, err, ledger.ErrVersionMismatch)
		assert.Equal(t, "the ledger is not initialised", err.Error())
		assert.False(t, tableExists(t, db, "schemashift_ledger_schema"), "Check created the ledger")
		assert.False(t, tableExists(t, db, "schemashift_migrations"))

		require.NoError(t, ledger.Ensure(ctx, db))
		require.NoError(t, ledger.Check(ctx, db))

		want := ledger.SchemaVersion()
		require.Positive(t, want)
		for _, c := range []struct {
			have  int
			newer bool
		}{{want - 1, false}, {1, false}, {want + 1, true}} {
			db.MustExecContext(ctx, `UPDATE schemashift_ledger_schema SET version = $1`, c.have)
			err := ledger.Check(ctx, db)
			require.ErrorIs(t, err, ledger.ErrVersionMismatch, "at %d", c.have)
			assert.NotErrorIs(t, err, ledger.ErrNotInitialised)
			var ve *ledger.VersionError
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, ledger.VersionError{Have: c.have, Want: want}, *ve)
			assert.Equal(t, c.newer, ve.Newer())
			assert.Regexp(t, "^the ledger is at version [0-9]+, this build needs [0-9]+$", err.Error())
		}
		// The table of an Ensure that never got further: no ledger.
		db.MustExecContext(ctx, `DELETE FROM schemashift_ledger_schema`)
		require.ErrorIs(t, ledger.Check(ctx, db), ledger.ErrNotInitialised)

		require.ErrorIs(t, ledger.Check(ctx, nil), ledger.ErrInvalidArgument)
		require.ErrorIs(t, ledger.Check(ctx, (*sqlx.DB)(nil)), ledger.ErrInvalidArgument)
	})
}

// Check runs in a read-only transaction, where any write fails: on a
// ledger an Ensure would upgrade too, it only reads.
func TestCheckWritesNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		db.MustExecContext(ctx, `UPDATE schemashift_ledger_schema SET version = version - 1`)
		tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
		require.NoError(t, err)
		defer tx.Rollback() //nolint:errcheck // read only
		err = ledger.Check(ctx, tx)
		var ve *ledger.VersionError
		require.True(t, errors.As(err, &ve), "%v", err)
		// The transaction is still good: nothing Check did failed in it.
		var one int
		require.NoError(t, tx.GetContext(ctx, &one, `SELECT 1`))
		require.Error(t, ledger.Ensure(ctx, tx), "the read-only transaction refuses a write, as a role that may only SELECT would")
	})
}

// Every database's ledger schema has the versions this build reads: Check
// and SchemaVersion speak of one number whichever database holds it.
func TestEveryDialectsLedgerSchemaIsThisBuildsVersion(t *testing.T) {
	t.Parallel()
	for _, d := range dialects.All() {
		assert.Len(t, d.LedgerSchema(), ledger.SchemaVersion(), "%s's ledger schema", d)
	}
}

// A ledger newer than this build stops Ensure with the same
// *VersionError Check returns (Newer: upgrade schemashift), so that
// callers tell it from a failure; a ledger Ensure makes records the
// version builds of it accept, with the additions outside it made too.
func TestEnsureOfANewerLedger(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		var version int
		require.NoError(t, db.GetContext(ctx, &version, `SELECT max(version) FROM schemashift_ledger_schema`))
		assert.Equal(t, ledger.SchemaVersion(), version)
		assert.True(t, tableExists(t, db, "schemashift_heartbeat_samples"), "the addition is made with the versions")

		db.MustExecContext(ctx, `UPDATE schemashift_ledger_schema SET version = version + 1`)
		var ve *ledger.VersionError
		err := ledger.Ensure(ctx, db)
		require.ErrorAs(t, err, &ve)
		assert.True(t, ve.Newer())
		assert.ErrorIs(t, err, ledger.ErrVersionMismatch)
		require.ErrorAs(t, ledger.Check(ctx, db), &ve)
		assert.True(t, ve.Newer())
	})
}
