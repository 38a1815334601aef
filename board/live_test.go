package board_test

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// A migration's page in Chromium, for a hostile name: reached by its link,
// it draws its charts, and when the migration moves (through the
// coordinator, not the page) it shows the new phase without a reload.
func TestMigrationPageLiveInChromium(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, pgtest.DB(t))
	plan := rollouttest.UsersPlan(db)
	plan.Migration = hostile
	plan.Backfills[0].Name = `split <"names">`
	clk := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	rollouttest.Forced(t, c, hostile, 3) // to backfill
	// Each chunk's claim and commit move the clock: the chunks take 0.4 s each.
	require.NoError(t, c.RunBackfills(t.Context(), hostile, backfill.WithChunkSize(50, 50, 50),
		backfill.WithClock(func() time.Time { return clk.Add(200 * time.Millisecond) })))
	in, err := fleet.NewInstance(db, "users-api", "v2", []string{hostile}, fleet.WithID("api-1"), fleet.WithClock(clk.Now))
	require.NoError(t, err)
	obs := in.Observer()
	for i := range 40 {
		obs.ObserveCall(t.Context(), dualwrite.Call{Migration: hostile, Stage: flags.DualWrite, Origin: dualwrite.Old, Duration: time.Duration(i%8+1) * time.Millisecond})
		obs.ObserveCall(t.Context(), dualwrite.Call{Migration: hostile, Stage: flags.DualWrite, Origin: dualwrite.New, Duration: time.Duration(i%4+1) * 300 * time.Microsecond})
	}
	in.Record(hostile, flags.DualWrite, true)
	require.NoError(t, in.Beat(t.Context()))
	fleetHistory(t, db, clk, hostile) // a minute of two instances' heartbeats
	b, err := board.New(c, allowAll(), board.WithPollInterval(50*time.Millisecond))
	require.NoError(t, err)
	srv := newServer(t, b)

	// The charts, as SVG: well-formed, with the chunks' points, labelled,
	// the job's name escaped.
	res, page := get(t, http.DefaultClient, srv+"/migrations/"+url.PathEscape(hostile))
	require.Equal(t, http.StatusOK, res.StatusCode, page)
	for _, id := range []string{`rate-split &lt;&#34;names&#34;&gt;`, `chunk-time-split &lt;&#34;names&#34;&gt;`, "latency"} {
		svg := between(page, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="`+id+`"`, "</svg>")
		require.NotEmpty(t, svg, id)
		svg = `<svg xmlns="http://www.w3.org/2000/svg" id="x"` + svg + "</svg>"
		var doc struct {
			Polylines []struct {
				Series string `xml:"data-series,attr"`
				Points string `xml:"points,attr"`
			} `xml:"polyline"`
			Texts []struct {
				Class string `xml:"class,attr"`
				Text  string `xml:",chardata"`
			} `xml:"text"`
			Bars []struct {
				Path     string `xml:"data-path,attr"`
				Quantile string `xml:"data-quantile,attr"`
				MS       string `xml:"data-ms,attr"`
			} `xml:"rect"`
		}
		require.NoError(t, xml.Unmarshal([]byte(svg), &doc), id)
		labels := map[string][]string{}
		for _, x := range doc.Texts {
			labels[x.Class] = append(labels[x.Class], x.Text)
		}
		assert.Len(t, labels["y-label"], 5, "%s: five y ticks", id)
		if id == "latency" {
			var bars []string
			for _, r := range doc.Bars {
				if r.Path != "" {
					bars = append(bars, r.Path+" "+r.Quantile+" "+r.MS)
				}
			}
			assert.Equal(t, []string{"old p50 6.4", "old p99 12.8", "new p50 1.6", "new p99 12.8"}, bars, "api-1's first calls, and the two instances' since")
			assert.Contains(t, labels["path-label"], "old path · 88 calls · errors 0.00 %")
			continue
		}
		require.Len(t, doc.Polylines, 1, id)
		assert.Equal(t, `split <"names">`, doc.Polylines[0].Series)
		assert.Len(t, strings.Fields(doc.Polylines[0].Points), 10, "%s: one point per chunk of 50 of the 500 rows", id)
		assert.Len(t, labels["x-label"], 3, id)
		assert.Contains(t, labels["unit"], map[bool]string{true: "rows/s", false: "ms"}[strings.HasPrefix(id, "rate")])
	}
	assert.Contains(t, page, `<td data-field="lasted">`)

	d := browser(t)
	d.call(http.MethodPost, "/session/"+d.session+"/url", map[string]string{"url": srv + "/"})
	d.element(http.MethodPost, `a.migration-link`, "click", map[string]any{})
	require.Eventually(t, func() bool { return d.poll("#title") == hostile }, 30*time.Second, 50*time.Millisecond)
	u := d.call(http.MethodGet, "/session/"+d.session+"/url", nil)["value"].(string)
	assert.True(t, strings.HasSuffix(u, "/migrations/"+url.PathEscape(hostile)), u)
	assert.Equal(t, "backfill", d.text(`[data-field="phase"]`))
	assert.Contains(t, d.text(`tr[data-state="next"]`), "every backfill job is done — met")
	assert.Contains(t, d.text(`tr[data-phase="dualwrite"]`), "t (force-advance)", "who entered it, and how")
	assert.Equal(t, "done", d.text(`[data-field="backfill-status"]`))
	require.Eventually(t, func() bool { return strings.HasPrefix(d.poll("#live-state"), "live") }, 30*time.Second, 50*time.Millisecond)
	// Every chart is drawn.
	drawn := d.call(http.MethodPost, "/session/"+d.session+"/execute/sync", map[string]any{"script": `return Array.from(document.querySelectorAll("svg.chart")).map(function (s) { var r = s.getBoundingClientRect(); return r.width > 0 && r.height > 0 ? s.id : ""; })`, "args": []any{}})["value"].([]any)
	assert.Equal(t, []any{`rate-split <"names">`, `chunk-time-split <"names">`, "latency",
		"consistency-over-time", "latency-old-over-time", "latency-new-over-time", "errors-over-time"}, drawn)
	// The charts over time, as the browser holds them: the step under the
	// threshold marked, a line per instance and quantile, the legend
	// naming the hostile instance as its text.
	count := func(css string) float64 {
		return d.call(http.MethodPost, "/session/"+d.session+"/execute/sync", map[string]any{"script": "return document.querySelectorAll(arguments[0]).length", "args": []any{css}})["value"].(float64)
	}
	assert.Equal(t, 1.0, count("#consistency-over-time circle.below"))
	assert.Equal(t, 1.0, count("#consistency-over-time line.threshold"))
	assert.Equal(t, 4.0, count("#latency-new-over-time polyline.series"), "api-1 and the hostile instance, p50 and p99")
	assert.Equal(t, 4.0, count("#errors-over-time polyline.series"))
	legend := d.call(http.MethodPost, "/session/"+d.session+"/execute/sync", map[string]any{"script": `return Array.from(document.querySelectorAll("#errors-over-time .legend-instance")).map(function (t) { return t.getAttribute("data-instance"); })`, "args": []any{}})["value"].([]any)
	assert.Equal(t, []any{"api-1", hostileInstance}, legend)
	d.screenshot("migration.png")

	// The page is not reloaded: a mark set on it now is still there when
	// the new phase shows.
	d.call(http.MethodPost, "/session/"+d.session+"/execute/sync", map[string]any{"script": "window.schemashiftMark = 'still this page'; return null", "args": []any{}})
	_, err = c.Advance(t.Context(), rollout.Request{Migration: hostile, Actor: "operator", Reason: "backfill done"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return d.poll(`[data-field="phase"]`) == "verify" }, 30*time.Second, 50*time.Millisecond,
		"the page shows the new phase by itself")
	mark := d.call(http.MethodPost, "/session/"+d.session+"/execute/sync", map[string]any{"script": "return window.schemashiftMark || ''", "args": []any{}})["value"]
	assert.Equal(t, "still this page", mark, "updated in place, not reloaded")
	// The live part may be swapped again meanwhile (the stream tells
	// every change): each is read whole in one go, until it shows.
	require.Eventually(t, func() bool { return strings.Contains(d.poll(`tr[data-phase="verify"]`), "operator") }, 30*time.Second, 50*time.Millisecond,
		"the timeline names who entered verify")
	require.Eventually(t, func() bool { return strings.Contains(d.poll(`table.audit`), "backfill done") }, 30*time.Second, 50*time.Millisecond,
		"the audit trail shows the advance's reason")
}
