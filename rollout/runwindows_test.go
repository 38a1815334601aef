package rollout_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// A plan's run windows: checked at registration (a window of no time, or
// in this host's own zone, refused), stored with the plan (a coordinator
// opened from the ledger has them), given to its backfills (an estimate
// made at midnight of a 01:00–05:00 window ends inside it) and listed in
// the runbook.
func TestPlanRunWindows(t *testing.T) {
	t.Parallel()
	for _, bad := range []backfill.Window{{}, {Start: time.Hour, End: 2 * time.Hour, Location: time.Local}} {
		p := rollout.Plan{Migration: "m", RunWindows: []backfill.Window{bad}}
		assert.ErrorIs(t, p.Normalize(), rollout.ErrInvalidPlan, "%+v", bad)
	}
	w, err := backfill.ParseWindow("Mon-Fri 01:00-05:00 UTC")
	require.NoError(t, err)
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		rollouttest.UsersDB(t, db)
		plan := rollouttest.UsersPlan(db)
		plan.RunWindows = []backfill.Window{w}
		monday := time.Date(2031, 6, 2, 0, 0, 0, 0, time.UTC)
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan}, rollout.WithClock(func() time.Time { return monday }))
		require.NoError(t, err)
		_, err = c.Advance(ctx, rollout.Request{Migration: plan.Migration, Actor: "ci"})
		require.NoError(t, err)

		opened, err := rollout.Open(ctx, db, rollout.WithClock(func() time.Time { return monday }))
		require.NoError(t, err)
		stored, err := opened.Plan(plan.Migration)
		require.NoError(t, err)
		require.Len(t, stored.RunWindows, 1)
		assert.Equal(t, w.String(), stored.RunWindows[0].String())

		es, err := opened.EstimateBackfills(ctx, rollout.EstimateRequest{Migration: plan.Migration, Actor: "ci", Samples: 1})
		require.NoError(t, err)
		require.Len(t, es, 1)
		assert.Contains(t, es[0].Pace, "inside its run windows")
		assert.False(t, es[0].Finish.Before(monday.Add(time.Hour)), "%v", es[0].Finish)

		md, err := report.RunbookFor(ctx, c, plan.Migration)
		require.NoError(t, err)
		assert.True(t, strings.Contains(md, "## Run windows") && strings.Contains(md, "- `Mon-Fri 01:00-05:00 UTC`"), md)
	})
}
