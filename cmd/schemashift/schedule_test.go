package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// The CLI schedules the next advance as its actor, for "14:00Z" (the
// next 14:00 UTC) or an RFC 3339 time; status lists it; it cancels it
// (once: again is refused); the audit trail has both, by their actors.
// What it cannot read is bad input (exit 2). On both databases.
func TestCLISchedule(t *testing.T) {
	t.Parallel()
	plan := rollout.Plan{Migration: "sched"}
	for name, open := range emptyDatabases() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, db := open(t)
			_, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan})
			require.NoError(t, err)
			as := func(who string, args ...string) result { return cliAs(t, url, who, args...) }
			r := as("alice", "schedule", "sched", "--at", "14:00Z", "--reason", "after the freeze\nforged", "--json")
			require.Equal(t, 0, r.code, r.stderr)
			var s rollout.Schedule
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &s))
			assert.Equal(t, "alice", s.Actor)
			assert.Equal(t, ledger.Expanded, s.To)
			assert.Equal(t, 14, s.Due.Hour())
			assert.Equal(t, 0, s.Due.Minute())
			assert.True(t, s.Due.After(time.Now()) && s.Due.Before(time.Now().Add(24*time.Hour)), "the next 14:00 UTC: %v", s.Due)

			r = as("bob", "schedule", "sched", "--at", "2099-06-01T14:00:00Z", "--until", "2099-06-01T18:00:00Z", "--reason", "later")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, `sched: advance to expanded at 2099-06-01T14:00:00Z if its gate is met (waiting until 2099-06-01T18:00:00Z), by "bob": later [pending; id `)

			r = as("carol", "status")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "sched: scheduled: advance to expanded at 2099-06-01T14:00:00Z")
			assert.Contains(t, r.stdout, `by "alice": after the freeze ↵ forged`)
			assert.NotContains(t, r.stdout, "\nforged")

			r = as("carol", "schedule", "sched", "--cancel", s.ID, "--reason", "not today")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "[cancelled; id "+s.ID+"] — cancelled by carol: not today")
			r = as("carol", "schedule", "sched", "--cancel", s.ID, "--reason", "again")
			assert.Equal(t, 3, r.code, "a schedule over is refused: %s", r.stderr)
			r = as("carol", "status")
			assert.NotContains(t, r.stdout, "after the freeze", "a cancelled schedule is not listed")

			for _, bad := range [][]string{
				{"schedule", "sched", "--at", "14:00Z"},                                // no reason
				{"schedule", "sched", "--reason", "r"},                                 // no time
				{"schedule", "sched", "--at", "2pm", "--reason", "r"},                  // unreadable
				{"schedule", "sched", "--at", "2000-01-01T00:00:00Z", "--reason", "r"}, // past
				{"schedule", "sched", "--cancel", "nope", "--reason", "r"},             // unknown
				{"schedule", "nope", "--at", "14:00Z", "--reason", "r"},                // unknown migration
			} {
				r = as("carol", bad...)
				assert.Equal(t, 2, r.code, "%v: %s", bad, r.stderr)
			}
			events, err := ledger.Audit(t.Context(), db, "sched", 100)
			require.NoError(t, err)
			var who []string
			for _, e := range events {
				if e.Accepted && (e.Kind == "schedule" || e.Kind == "schedule-cancel") {
					who = append(who, e.Kind+" "+e.Actor)
				}
			}
			assert.Equal(t, []string{"schedule alice", "schedule bob", "schedule-cancel carol"}, who)
		})
	}
}
