package rollout_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// A refusal the audit trail cannot take is not silent: the caller gets the
// refusal, joined with the audit trail's failure.
func TestRefusalTheAuditTrailCannotTakeIsReported(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		rollouttest.UsersDB(t, db)
		p := rollouttest.UsersPlan(db)
		c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{p})
		require.NoError(t, err)
		if db.DriverName() == "sqlite" {
			db.MustExecContext(t.Context(), `CREATE TRIGGER audit_down BEFORE INSERT ON schemashift_events BEGIN SELECT RAISE(ABORT, 'audit down'); END`)
		} else {
			db.MustExecContext(t.Context(), `CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit down'; END $$;
				CREATE TRIGGER audit_down BEFORE INSERT ON schemashift_events FOR EACH ROW EXECUTE FUNCTION audit_down()`)
		}
		// At planned, the gate to expanded is met; a stale version is refused.
		_, err = c.Advance(t.Context(), rollout.Request{Migration: p.Migration, Actor: "ci", Version: 99})
		require.ErrorIs(t, err, rollout.ErrConflict, "the refusal is still the error to branch on")
		require.ErrorIs(t, err, rollout.ErrAudit)
		assert.Contains(t, err.Error(), "audit down")
	})
}
