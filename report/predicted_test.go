package report_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// An estimate made before the backfill ran is in the audit trail, and the
// retrospective sets it against the run: the time the run took and the
// rows it changed beside the prediction. One made after the run started
// says nothing of it and is left out.
func TestRetrospectiveSetsTheEstimateAgainstTheRun(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		rollouttest.UsersDB(t, db)
		plan := rollouttest.UsersPlan(db)
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
		require.NoError(t, err)
		m := plan.Migration
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		require.NoError(t, err)
		es, err := c.EstimateBackfills(ctx, rollout.EstimateRequest{Migration: m, Actor: "alice", Samples: 2})
		require.NoError(t, err)
		require.Len(t, es, 1)
		rollouttest.Forced(t, c, m, 2) // to backfill
		require.NoError(t, c.RunBackfills(ctx, m))
		_, err = c.EstimateBackfills(ctx, rollout.EstimateRequest{Migration: m, Actor: "bob", Samples: 1})
		require.NoError(t, err)

		retro, err := report.Retrospect(ctx, c, m)
		require.NoError(t, err)
		require.Len(t, retro.Predicted, 1)
		pr := retro.Predicted[0]
		assert.Equal(t, es[0].Duration, pr.Estimate.Duration, "the estimate made before the run")
		assert.EqualValues(t, 2, pr.Estimate.SampleChunks)
		require.NotNil(t, pr.Took)
		assert.Positive(t, *pr.Took)
		assert.EqualValues(t, 500, pr.RowsChanged)
		assert.EqualValues(t, 500, pr.Estimate.Changed)
		md := retro.Markdown()
		assert.Contains(t, md, "## Predicted and actual")
		assert.Contains(t, md, "| users_split_name | ")
		assert.Contains(t, md, " | 500 (500) | 500 | ")
	})
}

// The runbook's backfill step says how to predict the run before it.
func TestRunbookSaysHowToEstimate(t *testing.T) {
	t.Parallel()
	md, err := report.Runbook(rollouttest.UsersPlan(nil))
	require.NoError(t, err)
	assert.Contains(t, md, "Before it, predict it: `schemashift backfill estimate users_split_name`")
}
