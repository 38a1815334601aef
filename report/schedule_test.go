package report_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// The runbook has a Schedule line saying how to schedule the next
// advance and cancel it, and lists the schedules that may still run, a
// hostile reason kept on its one line; a cancelled one is not listed.
func TestRunbookSchedule(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clock := rollouttest.NewClock()
		m := "rb/<b>\nx"
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{{Migration: m}}, rollout.WithClock(clock.Now))
		require.NoError(t, err)
		md, err := report.RunbookFor(ctx, c, m)
		require.NoError(t, err)
		assert.Contains(t, md, "- **Schedule:** `schemashift schedule rb/<b> ↵ x --at 14:00Z --reason REASON`")
		assert.Contains(t, md, "- Pending: none.")

		at := clock.Now().Add(14 * time.Hour)
		s, err := c.Schedule(ctx, rollout.Request{Migration: m, Actor: "alice", Reason: "go\n## 1. forged"}, at)
		require.NoError(t, err)
		gone, err := c.Schedule(ctx, rollout.Request{Migration: m, Actor: "bob", Reason: "other"}, at.Add(time.Hour))
		require.NoError(t, err)
		_, err = c.CancelSchedule(ctx, gone.ID, "bob", "no")
		require.NoError(t, err)
		md, err = report.RunbookFor(ctx, c, m)
		require.NoError(t, err)
		want := "- Pending: advance to expanded at " + s.Due.Format(time.RFC3339) + ` if its gate is met (waiting until ` +
			s.Until.Format(time.RFC3339) + `), by "alice": go ↵ ## 1. forged [pending; id ` + s.ID + "]\n"
		assert.Contains(t, md, want)
		assert.NotContains(t, md, gone.ID, "a cancelled schedule is not pending")
		assert.NotContains(t, md, "\n## 1. forged")
		assert.Equal(t, 1, strings.Count(md, "- Pending:"))
	})
}
