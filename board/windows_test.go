package board_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// A backfill waiting outside its run window says so on its line of the
// migration's page, in Chromium, and in the JSON: until when, and which
// window.
func TestBoardShowsTheRunWindowInChromium(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, pgtest.DB(t))
	plan := rollouttest.UsersPlan(db)
	plan.Migration = hostile
	clk := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	rollouttest.Forced(t, c, hostile, 3) // to backfill
	// A window opening six hours after the clock's time of day, for an hour.
	now := clk.Now()
	tod := now.Sub(now.Truncate(24 * time.Hour))
	win := backfill.Window{Start: (tod + 6*time.Hour) % (24 * time.Hour), End: (tod + 7*time.Hour) % (24 * time.Hour)}
	waiting := make(chan struct{})
	var seen bool
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- c.RunBackfills(ctx, hostile, backfill.WithRunWindows(win), backfill.WithPollInterval(10*time.Millisecond),
			backfill.WithProgress(5*time.Millisecond, func(p backfill.Progress) {
				if !seen && strings.HasPrefix(p.Window, "outside run windows") {
					seen = true // the callback runs on one goroutine
					close(waiting)
				}
			}))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("run backfills: %v", err)
		}
	})
	select {
	case <-waiting:
	case <-time.After(time.Minute):
		t.Fatal("the backfill never waited for its window")
	}
	want := "outside run windows until " + now.Add(6*time.Hour).Truncate(time.Minute).Format("Mon 2006-01-02 15:04 MST") + " (" + win.String() + ")"

	b, err := board.New(c, allowAll())
	require.NoError(t, err)
	srv := newServer(t, b)
	d := browser(t)
	d.call(http.MethodPost, "/session/"+d.session+"/url", map[string]string{"url": srv + "/migrations/" + url.PathEscape(hostile)})
	require.Eventually(t, func() bool { return d.poll("#title") == hostile }, 30*time.Second, 50*time.Millisecond)
	assert.Equal(t, want, d.text(`[data-field="window"]`))
	assert.True(t, strings.HasPrefix(d.text(`[data-field="backfill-status"]`), "running "), "waiting is not stalled")

	res, body := get(t, http.DefaultClient, srv+"/api/status")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	assert.Contains(t, body, `"window":"`+want+`"`)
}
