package rollout_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// A readiness check (status, the board, AdvanceWhenMet's polls) says an
// advance held by its policy is unmet, gate "approvals", with what is
// missing, until enough approve it.
func TestReadinessWaitsForApprovals(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{{Migration: "held",
			Policies: []rollout.Policy{{To: ledger.Expanded, Needs: 2}}}})
		require.NoError(t, err)
		r, err := c.Check(ctx, "held")
		require.NoError(t, err)
		assert.False(t, r.Met)
		assert.Equal(t, "approvals", r.Gate)
		assert.Contains(t, r.Reason, "needs 2 approvals, has 0")
		for _, who := range []string{"bob", "carol"} {
			_, err = c.Approve(ctx, rollout.Approval{Migration: "held", To: ledger.Expanded, Actor: who, Reason: "ok"})
			require.NoError(t, err)
		}
		r, err = c.Check(ctx, "held")
		require.NoError(t, err)
		assert.True(t, r.Met, "%+v", r)
		_, err = c.Advance(ctx, rollout.Request{Migration: "held", Actor: "alice"})
		require.NoError(t, err)
	})
}
