package board_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// lateInstance, lateService and lateBuild name an instance
// that tries to run script on the board.
const (
	lateInstance = `pod-1"><img src=x onerror="window.pwned=1">` + "\n" + `</td><script>window.pwned=2</script>`
	lateService  = `<b>billing</b>`
	lateBuild    = `v9 <svg onload="window.pwned=3">`
)

// sunsetBoard is a board of a migration named hostile whose sunset is 2 h
// after the clock's start, warning 1 h before, and an instance of
// hostile names that reports the migration.
func sunsetBoard(t *testing.T, db *sqlx.DB) (string, *rollouttest.Clock, *fleet.Instance) {
	t.Helper()
	clk := rollouttest.NewClock()
	plan := rollouttest.LedgerPlan()
	plan.Migration = hostile
	plan.Sunset = rollout.Sunset{At: clk.Now().Add(2 * time.Hour), Warn: time.Hour}
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	in, err := fleet.NewInstance(db, lateService, lateBuild, []string{hostile}, fleet.WithID(lateInstance), fleet.WithClock(clk.Now))
	require.NoError(t, err)
	b, err := board.New(c, board.WithPollInterval(50*time.Millisecond))
	require.NoError(t, err)
	return newServer(t, b), clk, in
}

// beat reports old-path calls of the hostile migration.
func beat(t *testing.T, in *fleet.Instance, s flags.Stage) {
	t.Helper()
	in.Record(hostile, s, s < flags.Complete)
	require.NoError(t, in.Beat(t.Context()))
}

// The status JSON and the migration page carry the deadline on both
// databases: ok, warning, overdue with the late caller named, its names
// escaped in the page, and nothing of a plan without a sunset.
func TestBoardShowsTheSunset(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		srv, clk, in := sunsetBoard(t, db)
		page := srv + "/migrations/" + url.PathEscape(hostile)
		status := func() rollout.DeadlineState {
			_, body := get(t, http.DefaultClient, srv+"/api/status")
			var st board.Status
			require.NoError(t, json.Unmarshal([]byte(body), &st), body)
			require.Len(t, st.Migrations, 1)
			require.NotNil(t, st.Migrations[0].Sunset, body)
			return *st.Migrations[0].Sunset
		}

		assert.Equal(t, rollout.DeadlineOK, status().State)
		_, html := get(t, http.DefaultClient, page)
		assert.Contains(t, html, `data-state="ok"`)
		assert.Contains(t, html, "2 h left")

		clk.Add(90 * time.Minute)
		assert.Equal(t, rollout.DeadlineWarning, status().State)
		_, html = get(t, http.DefaultClient, page)
		assert.Contains(t, html, `class="sunset warning"`)
		assert.Contains(t, html, "warning: 30 min left")

		clk.Add(time.Hour)
		beat(t, in, flags.DualWrite)
		st := status()
		assert.Equal(t, rollout.DeadlineOverdue, st.State)
		assert.Equal(t, -30*time.Minute, st.Left)
		require.Len(t, st.LateCallers, 1)
		assert.Equal(t, lateInstance, st.LateCallers[0].ID)
		assert.Equal(t, lateBuild, st.LateCallers[0].Build)
		_, html = get(t, http.DefaultClient, page)
		assert.Contains(t, html, `class="sunset overdue"`)
		assert.Contains(t, html, "overdue by 30 min")
		assert.Contains(t, html, `&lt;b&gt;billing&lt;/b&gt;`)
		assert.NotContains(t, html, "<img src=x")
		assert.NotContains(t, html, `<svg onload`)
		assert.NotContains(t, html, "<script>window.pwned")
	})
}

// In Chromium, the migration page shows the sunset's time left, styled
// as a warning inside the warning and as overdue past the date; past
// it, the instance that still calls the old path is listed by its id,
// service and build as text (none of its markup runs), and the audit
// trail shows the overdue event, once.
func TestSunsetOnTheBoardInChromium(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	srv, clk, in := sunsetBoard(t, db)
	page := srv + "/migrations/" + url.PathEscape(hostile)
	d := browser(t)
	session := "/session/" + d.session
	script := func(js string) any {
		return d.call(http.MethodPost, session+"/execute/sync", map[string]any{"script": js, "args": []any{}})["value"]
	}
	open := func() {
		d.call(http.MethodPost, session+"/url", map[string]string{"url": page})
		require.Eventually(t, func() bool { return d.poll("#title") == hostile }, 30*time.Second, 50*time.Millisecond)
	}
	state := func() any { return script(`return document.querySelector("#sunset").dataset.state`) }
	border := func() any {
		return script(`return getComputedStyle(document.querySelector("#sunset")).borderLeftColor`)
	}

	open()
	assert.Equal(t, "ok", state())
	assert.Contains(t, d.text(`[data-field="sunset-left"]`), "2 h")
	assert.Equal(t, "none", script(`return getComputedStyle(document.querySelector("#sunset")).borderLeftStyle`), "no border while ok")

	clk.Add(90 * time.Minute)
	open()
	assert.Equal(t, "warning", state())
	assert.Equal(t, "warning: 30 min left", d.text(`[data-field="sunset-left"]`))
	assert.Equal(t, "rgb(230, 167, 0)", border(), "styled as a warning")

	clk.Add(time.Hour)
	beat(t, in, flags.Shadow)
	beat(t, in, flags.Shadow) // a second poll's worth: the event stays one
	open()
	open()
	assert.Equal(t, "overdue", state())
	assert.Equal(t, "overdue by 30 min", d.text(`[data-field="sunset-left"]`))
	assert.Equal(t, "rgb(179, 38, 30)", border(), "styled as overdue")
	assert.Equal(t, lateInstance, script(`return document.querySelector('[data-field="late-instance"]').textContent`))
	assert.Equal(t, lateService, d.text(`[data-field="late-service"]`))
	assert.Equal(t, lateBuild, d.text(`[data-field="late-build"]`))
	assert.Equal(t, 0.0, script(`return document.querySelectorAll("#sunset img, #sunset script, #sunset svg, table.late-callers td *").length`))
	assert.Nil(t, script(`return window.pwned || null`), "no markup of the names ran")
	assert.Contains(t, d.text(`table.audit`), "sunset-overdue")
	d.screenshot("sunset.png")

	events, err := ledger.Audit(t.Context(), db, hostile, 100)
	require.NoError(t, err)
	n := 0
	for _, e := range events {
		if e.Kind == "sunset-overdue" {
			n++
			assert.True(t, strings.Contains(e.Reason, `build "v9 <svg onload=\"window.pwned=3\">"`), e.Reason)
		}
	}
	assert.Equal(t, 1, n, "recorded once, over every page load")
}
