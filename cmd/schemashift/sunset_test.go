package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// status shows each migration's sunset, as text and JSON: the time left,
// a warning inside the warning, and once overdue the instance still
// calling the old path with its build, on one line whatever its name
// holds. It only reads: it records nothing of what it sees. On both
// databases.
func TestCLIStatusSunset(t *testing.T) {
	t.Parallel()
	for name, open := range emptyDatabases() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, db := open(t)
			// The CLI reads the real clock: dates far enough from it that
			// the test's own time cannot move a state.
			now := time.Now()
			plans := []rollout.Plan{
				{Migration: "far", Sunset: rollout.Sunset{At: now.Add(30 * 24 * time.Hour)}},
				{Migration: "near", Sunset: rollout.Sunset{At: now.Add(24 * time.Hour)}},
				{Migration: "late", Sunset: rollout.Sunset{At: now.Add(-time.Hour), Warn: time.Hour}},
				{Migration: "none"},
			}
			_, err := rollout.NewCoordinator(t.Context(), db, plans)
			require.NoError(t, err)
			in, err := fleet.NewInstance(db, "users-api", "v1\nrm -rf", []string{"late"}, fleet.WithID("pod\n7"))
			require.NoError(t, err)
			in.Record("late", flags.DualWrite, true)
			require.NoError(t, in.Beat(t.Context()))

			r := cliRun(t, url, "status")
			require.Equal(t, 0, r.code, r.stderr)
			lines := map[string]string{}
			for _, l := range strings.Split(r.stdout, "\n") {
				if m, _, ok := strings.Cut(l, ": sunset "); ok {
					lines[m] = l
				}
			}
			assert.Len(t, lines, 3, "a line per migration with a sunset: %s", r.stdout)
			assert.Contains(t, lines["far"], " left")
			assert.NotContains(t, lines["far"], "WARNING")
			assert.Contains(t, lines["near"], "WARNING, ")
			assert.Contains(t, lines["late"], "OVERDUE by ")
			assert.Contains(t, lines["late"], `old-path calls after it from 1 instance(s): instance "pod\n7" (service "users-api", build "v1\nrm -rf")`)
			assert.Contains(t, lines["late"], now.Add(-time.Hour).UTC().Format(time.RFC3339))

			r = cliRun(t, url, "status", "late", "--json")
			require.Equal(t, 0, r.code, r.stderr)
			var ms []board.Migration
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &ms), r.stdout)
			require.Len(t, ms, 1)
			require.NotNil(t, ms[0].Sunset)
			assert.Equal(t, rollout.DeadlineOverdue, ms[0].Sunset.State)
			assert.Negative(t, ms[0].Sunset.Left)
			require.Len(t, ms[0].Sunset.LateCallers, 1)
			assert.Equal(t, "pod\n7", ms[0].Sunset.LateCallers[0].ID)
			assert.Equal(t, "v1\nrm -rf", ms[0].Sunset.LateCallers[0].Build)
			r = cliRun(t, url, "status", "none", "--json")
			require.Equal(t, 0, r.code, r.stderr)
			assert.NotContains(t, r.stdout, `"sunset"`, "no sunset, none shown")

			events, err := ledger.Audit(t.Context(), db, "late", 100)
			require.NoError(t, err)
			for _, e := range events {
				assert.NotEqual(t, "sunset-overdue", e.Kind, "status only reads")
			}
		})
	}
}
