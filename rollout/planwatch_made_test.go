package rollout_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

// plansDown makes every insert into the query-plan table fail, except the
// ones recorded at the moment spared ("" spares none).
func plansDown(t *testing.T, db *sqlx.DB, spared string) {
	t.Helper()
	ctx := t.Context()
	if db.DriverName() == sqlite.DriverName {
		db.MustExecContext(ctx, `CREATE TRIGGER plans_down BEFORE INSERT ON schemashift_query_plans
			WHEN NEW.moment <> '`+spared+`' BEGIN SELECT RAISE(ABORT, 'plans down'); END`)
		return
	}
	db.MustExecContext(ctx, `CREATE FUNCTION plans_down() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.moment <> '`+spared+`' THEN RAISE EXCEPTION 'plans down'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER plans_down BEFORE INSERT ON schemashift_query_plans FOR EACH ROW EXECUTE FUNCTION plans_down()`)
}

// unrecordedPlans counts the audit trail's notes that a made transition's
// query plans could not be recorded.
func unrecordedPlans(t *testing.T, db *sqlx.DB, migration string) int {
	t.Helper()
	events, err := ledger.Audit(t.Context(), db, migration, 0)
	require.NoError(t, err)
	n := 0
	for _, e := range events {
		if e.Kind == "query-plan" && !e.Accepted && strings.Contains(e.Reason, "query plans not recorded") {
			n++
		}
	}
	return n
}

// An advance that is made is not an error, whatever became of the query
// plans recorded after its DDL step: a caller that retries on error
// (advance until it succeeds) would move the migration a second phase.
// The failure is in the audit trail.
func TestMadeAdvanceIsNotAnErrorWhenItsPlansAreNotRecorded(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		rollouttest.UsersDB(t, db)
		ctx := t.Context()
		p := rollouttest.UsersPlan(db)
		p.HotQueries = []rollout.HotQuery{{Name: "by id", SQL: `SELECT full_name FROM users WHERE id = 1`}}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{p})
		require.NoError(t, err)
		plansDown(t, db, "before expand")
		var last error
		for range 2 {
			if _, last = c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t"}); last == nil {
				break
			}
		}
		require.NoError(t, last)
		st, err := ledger.Get(ctx, db, p.Migration)
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, st.Phase, "one advance asked, one made")
		assert.Equal(t, 1, unrecordedPlans(t, db, p.Migration))
	})
}

// A guardrail's step back that is made is a trip: Guard reports it, tells
// the observer and goes on to guard the other migrations, whatever became
// of the query plans recorded after the step's DDL.
func TestGuardStepBackIsATripWhenItsPlansAreNotRecorded(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		rollouttest.UsersDB(t, db)
		ctx := t.Context()
		p := rollouttest.UsersPlan(db)
		p.HotQueries = []rollout.HotQuery{{Name: "by id", SQL: `SELECT full_name FROM users WHERE id = 1`}}
		p.Guardrails = []rollout.Guardrail{{Phases: []ledger.Phase{ledger.Expanded}, MinConsistency: 0.9, MinSamples: 1}}
		q := rollouttest.LedgerPlan()
		q.Migration = "zz_other"
		q.Guardrails = []rollout.Guardrail{{MinConsistency: 0.9, MinSamples: 1}}
		log := &tripLog{}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{p, q}, rollout.WithTripObserver(log))
		require.NoError(t, err)
		rollouttest.Forced(t, c, p.Migration, 1) // expanded
		rollouttest.Forced(t, c, q.Migration, 5) // shadow
		for _, m := range []struct {
			name      string
			migration string
			stage     flags.Stage
		}{{"a", p.Migration, flags.Off}, {"b", q.Migration, flags.Shadow}} {
			in := rollouttest.InstanceAt(t, db, m.name, m.migration, time.Now)
			in.Observer().ObserveComparison(context.Background(), dualwrite.Comparison{Migration: m.migration, Stage: m.stage, Match: false})
			require.NoError(t, in.Beat(ctx))
		}
		plansDown(t, db, "")
		trips, err := c.Guard(ctx)
		require.NoError(t, err, "a step back that was made")
		st, err := ledger.Get(ctx, db, p.Migration)
		require.NoError(t, err)
		assert.Equal(t, ledger.Planned, st.Phase, "the guardrail's step back was made")
		assert.Len(t, trips, 2, "both migrations' trips: %+v", trips)
		log.mu.Lock()
		assert.Len(t, log.trips, 2, "the observer heard of both trips")
		log.mu.Unlock()
		other, err := ledger.Get(ctx, db, q.Migration)
		require.NoError(t, err)
		assert.Equal(t, ledger.Verify, other.Phase, "the other migration was guarded in the same pass")
		assert.Equal(t, 1, unrecordedPlans(t, db, p.Migration))
	})
}
