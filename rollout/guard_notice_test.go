package rollout_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// A guardrail's step back is noticed as a guardrail trip, not a plain
// transition: from shadow back to verify, by the guardrail, with why.
func TestGuardrailTripIsNoticed(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		rollouttest.UsersDB(t, db)
		plan := rollouttest.UsersPlan(db)
		plan.Guardrails = []rollout.Guardrail{{MinConsistency: 0.95, MinSamples: 20}}
		notes := &noticeList{}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan}, rollout.WithNotifier(notes))
		require.NoError(t, err)
		for range 5 { // … shadow
			_, err := c.Advance(ctx, rollout.Request{Migration: plan.Migration, Actor: "t", Force: true, Reason: "setup", Acknowledge: true})
			require.NoError(t, err)
		}
		in, err := fleet.NewInstance(db, "users-api", "v2", []string{plan.Migration}, fleet.WithID("api-1"))
		require.NoError(t, err)
		for k := range 40 {
			in.Observer().ObserveComparison(ctx, dualwrite.Comparison{Migration: plan.Migration, Stage: flags.Shadow, Match: k < 30})
		}
		require.NoError(t, in.Beat(ctx))
		trips, err := c.Guard(ctx)
		require.NoError(t, err)
		require.Len(t, trips, 1)
		require.NoError(t, c.FlushNotices(ctx))
		tripped := notes.kinds(rollout.NoticeGuardrailTrip)
		require.Len(t, tripped, 1, "%+v", notes.ns)
		n := tripped[0]
		assert.Equal(t, ledger.Shadow, n.From)
		assert.Equal(t, ledger.Verify, n.To)
		assert.Equal(t, "guardrail", n.Actor)
		assert.Contains(t, n.Reason, "shadow consistency")
		assert.Len(t, notes.kinds(rollout.NoticeTransition), 5, "the five advances, and not the trip")
	})
}
