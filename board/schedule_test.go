package board_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// A migration's page in Chromium lists its scheduled advances: when each
// is due, where it advances to, who scheduled it, its state and reason,
// a pending one and a cancelled one told apart, markup in a reason shown
// as text. The status carries the same schedules.
func TestSchedulesOnTheMigrationPageInChromium(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := dbtest.SQLite(t)
	clock := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{{Migration: hostile}}, rollout.WithClock(clock.Now))
	require.NoError(t, err)
	due := time.Date(2032, 1, 1, 14, 0, 0, 0, time.UTC)
	pending, err := c.Schedule(ctx, rollout.Request{Migration: hostile, Actor: `al<i>ce</i>`, Reason: `<script>window.pwned=1</script> after the freeze`}, due)
	require.NoError(t, err)
	gone, err := c.Schedule(ctx, rollout.Request{Migration: hostile, Actor: "bob", Reason: "earlier"}, due.Add(-time.Hour))
	require.NoError(t, err)
	_, err = c.CancelSchedule(ctx, gone.ID, "carol", "not today")
	require.NoError(t, err)

	b, err := board.New(c)
	require.NoError(t, err)
	snap, err := b.Snapshot(ctx)
	require.NoError(t, err)
	doc, err := json.Marshal(snap.Migrations[0])
	require.NoError(t, err)
	var status struct {
		Schedules []rollout.Schedule `json:"schedules"`
	}
	require.NoError(t, json.Unmarshal(doc, &status))
	require.Len(t, status.Schedules, 2)
	assert.Equal(t, pending.ID, status.Schedules[0].ID, "latest due first")

	srv := newServer(t, b)
	d := browser(t)
	d.call(http.MethodPost, "/session/"+d.session+"/url", map[string]string{"url": srv + "/migrations/" + url.PathEscape(hostile)})
	row := `#schedules tr[data-schedule="` + pending.ID + `"]`
	assert.Equal(t, "2032-01-01 14:00:00", d.text(row+` [data-field="due"]`))
	assert.Equal(t, "pending", d.text(row+` [data-field="state"]`))
	assert.Equal(t, `al<i>ce</i>`, d.text(row+` [data-field="actor"]`))
	assert.Equal(t, `<script>window.pwned=1</script> after the freeze`, d.text(row+` [data-field="reason"]`))
	assert.Contains(t, d.text(row), "expanded")
	cancelled := `#schedules tr[data-schedule="` + gone.ID + `"]`
	assert.Equal(t, "cancelled", d.text(cancelled+` [data-field="state"]`))
	assert.Contains(t, d.text(cancelled+` [data-field="outcome"]`), "cancelled by carol: not today")
	assert.Equal(t, float64(0), d.call(http.MethodPost, "/session/"+d.session+"/execute/sync",
		map[string]any{"script": "return document.querySelectorAll('#schedules i, #schedules script').length + (window.pwned || 0)", "args": []any{}})["value"],
		"markup in names and reasons is text")
	d.screenshot("schedules.png")
}
