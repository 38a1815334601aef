package board_test

import (
	"encoding/xml"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// hostileInstance is an instance id with markup, quotes, an ampersand, a
// slash and a newline, as a legend and an attribute must escape.
const hostileInstance = "api/2 \"<script>x</script>\" & 'q'\n"

// beats is how many heartbeats fleetHistory sends per instance, 10 s
// apart; at dip, the fleet's consistency is 0.75 (under a threshold of
// 0.9), else 1; at failing, the hostile instance's new path fails one
// call in four.
const beats, dip, failing = 6, 3, 2

// fleetHistory has two instances of migration, api-1 and the hostile
// one, send beats heartbeats on clk, 10 s apart: calls on both paths
// (api-1: old 2 ms, new 1 ms; the hostile one: old 4 ms, new 8 ms) and
// ten shadow comparisons each.
func fleetHistory(t *testing.T, db *sqlx.DB, clk *rollouttest.Clock, migration string) []time.Time {
	t.Helper()
	ctx := t.Context()
	var ins []*fleet.Instance
	for _, id := range []string{"api-1", hostileInstance} {
		in, err := fleet.NewInstance(db, "users-api", "v2", []string{migration}, fleet.WithID(id), fleet.WithClock(clk.Now))
		require.NoError(t, err)
		ins = append(ins, in)
	}
	var at []time.Time
	for k := range beats {
		at = append(at, clk.Add(10*time.Second))
		for i, in := range ins {
			obs := in.Observer()
			for c := range 4 {
				d := time.Duration(i+1) * 2 * time.Millisecond
				obs.ObserveCall(ctx, dualwrite.Call{Migration: migration, Stage: flags.Shadow, Origin: dualwrite.Old, Duration: d})
				call := dualwrite.Call{Migration: migration, Stage: flags.Shadow, Origin: dualwrite.New, Duration: time.Duration(1+7*i) * time.Millisecond}
				if i == 1 && k == failing && c == 0 {
					call.Err = assert.AnError
				}
				obs.ObserveCall(ctx, call)
			}
			for c := range 10 {
				match := !(i == 1 && k == dip && c >= 5)
				obs.ObserveComparison(ctx, dualwrite.Comparison{Migration: migration, Stage: flags.Shadow, Match: match})
			}
			require.NoError(t, in.Beat(ctx))
		}
	}
	return at
}

// svgDoc is what the tests read of a chart.
type svgDoc struct {
	Polylines []struct {
		Series   string `xml:"data-series,attr"`
		Instance string `xml:"data-instance,attr"`
		Quantile string `xml:"data-quantile,attr"`
		Path     string `xml:"data-path,attr"`
		Points   string `xml:"points,attr"`
	} `xml:"polyline"`
	Lines []struct {
		Class string `xml:"class,attr"`
		Value string `xml:"data-value,attr"`
		Y1    string `xml:"y1,attr"`
	} `xml:"line"`
	Circles []struct {
		Class string `xml:"class,attr"`
		Title string `xml:"title"`
	} `xml:"circle"`
	Texts []struct {
		Class string `xml:"class,attr"`
		Text  string `xml:",chardata"`
	} `xml:"text"`
	Legend struct {
		Texts []struct {
			Class    string `xml:"class,attr"`
			Instance string `xml:"data-instance,attr"`
			Title    string `xml:"title"`
			Text     string `xml:",chardata"`
		} `xml:"text"`
	} `xml:"g"`
}

// chartOf finds the chart of id in page and parses it as XML.
func chartOf(t *testing.T, page, id string) svgDoc {
	t.Helper()
	svg := between(page, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="`+id+`"`, "</svg>")
	require.NotEmpty(t, svg, id)
	var doc svgDoc
	require.NoError(t, xml.Unmarshal([]byte(`<svg xmlns="http://www.w3.org/2000/svg" id="x"`+svg+"</svg>"), &doc), id)
	return doc
}

// ys reads the y of each point of a polyline.
func ys(t *testing.T, points string) []float64 {
	t.Helper()
	var out []float64
	for _, p := range strings.Fields(points) {
		_, y, ok := strings.Cut(p, ",")
		require.True(t, ok, p)
		v, err := strconv.ParseFloat(y, 64)
		require.NoError(t, err)
		out = append(out, v)
	}
	return out
}

// A migration's page draws its heartbeats' samples over time: the
// fleet's shadow consistency with the plan's threshold as a line and the
// step under it marked, each path's p50 and p99 per instance, and each
// instance's error rate per path, with a legend naming the instances (a
// hostile name escaped, whole in the parsed SVG).
func TestFleetChartsOverTime(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		rollouttest.UsersDB(t, db)
		clk := rollouttest.NewClock()
		c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.UsersPlan(db)}, rollout.WithClock(clk.Now))
		require.NoError(t, err)
		fleetHistory(t, db, clk, "users_split_name")
		b, err := board.New(c)
		require.NoError(t, err)
		srv := newServer(t, b)
		res, page := get(t, http.DefaultClient, srv+"/migrations/users_split_name")
		require.Equal(t, http.StatusOK, res.StatusCode, page)
		assert.NotContains(t, page, "<script>x", "the instance's name is escaped")
		assert.Contains(t, page, html.EscapeString(`"<script>x</script>"`))

		cons := chartOf(t, page, "consistency-over-time")
		require.Len(t, cons.Polylines, 1)
		assert.Equal(t, "fleet", cons.Polylines[0].Series)
		pts := ys(t, cons.Polylines[0].Points)
		require.Len(t, pts, beats, "a point per heartbeat: both instances beat at each time")
		var threshold []string
		for _, l := range cons.Lines {
			if l.Class == "threshold" {
				threshold = append(threshold, l.Value)
			}
		}
		assert.Equal(t, []string{"0.9"}, threshold, "the plan's threshold, as a line")
		var below []string
		for _, c := range cons.Circles {
			if c.Class == "below" {
				below = append(below, c.Title)
			}
		}
		require.Len(t, below, 1, "the one step under the threshold is marked")
		assert.Contains(t, below[0], "0.75, below the threshold 0.9")
		for k, y := range pts {
			if k == dip {
				assert.Greater(t, y, pts[0], "the dip is drawn lower")
			} else {
				assert.InDelta(t, pts[0], y, 0.01)
			}
		}

		for _, path := range []string{"old", "new"} {
			doc := chartOf(t, page, "latency-"+path+"-over-time")
			var lines []string
			for _, p := range doc.Polylines {
				lines = append(lines, p.Instance+"|"+p.Quantile+"|"+p.Path)
				assert.Len(t, strings.Fields(p.Points), beats, "%s %s", path, p.Series)
			}
			assert.Equal(t, []string{"api-1|p99|" + path, "api-1|p50|" + path, hostileInstance + "|p99|" + path, hostileInstance + "|p50|" + path}, lines)
			var legend []string
			for _, x := range doc.Legend.Texts {
				if x.Class == "legend-instance" {
					legend = append(legend, x.Instance+"="+x.Title)
				}
			}
			assert.Equal(t, []string{"api-1=api-1", hostileInstance + "=" + hostileInstance}, legend, "the legend names the instances")
		}
		// The hostile instance's new path at 8 ms is drawn above api-1's
		// at 1 ms.
		doc := chartOf(t, page, "latency-new-over-time")
		assert.Less(t, ys(t, doc.Polylines[2].Points)[0], ys(t, doc.Polylines[0].Points)[0])

		errs := chartOf(t, page, "errors-over-time")
		series := map[string][]float64{}
		for _, p := range errs.Polylines {
			series[p.Instance+" "+p.Path] = ys(t, p.Points)
		}
		require.Len(t, series, 4)
		bad := series[hostileInstance+" new"]
		require.Len(t, bad, beats)
		for k, y := range bad {
			if k == failing {
				assert.Less(t, y, bad[0], "the failing step is drawn higher")
			} else {
				assert.InDelta(t, bad[0], y, 0.01)
			}
		}
		var labels []string
		for _, x := range errs.Texts {
			if x.Class == "y-label" {
				labels = append(labels, x.Text)
			}
		}
		assert.Equal(t, []string{"0", "12.5", "25", "37.5", "50"}, labels, "25 % of calls, on an axis to 50")
	})
}

// An instance past the eighth, with the fewest calls, is left out of the
// charts over time, and the legend says so; a migration without samples
// says there is nothing yet.
func TestFleetChartsLeaveOutTheQuietest(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	clk := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.UsersPlan(db)}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	b, err := board.New(c)
	require.NoError(t, err)
	srv := newServer(t, b)
	_, page := get(t, http.DefaultClient, srv+"/migrations/users_split_name")
	for id, empty := range map[string]string{"consistency-over-time": "no shadow comparison reported yet",
		"latency-old-over-time": "no call on the old path reported yet", "errors-over-time": "no call reported yet"} {
		doc := chartOf(t, page, id)
		assert.Empty(t, doc.Polylines, id)
		require.Len(t, doc.Texts, 2, id)
		assert.Equal(t, empty, doc.Texts[1].Text, id)
	}

	clk.Add(time.Second)
	for i := range 10 {
		in, err := fleet.NewInstance(db, "users-api", "v2", []string{"users_split_name"}, fleet.WithID("api-"+strconv.Itoa(i)), fleet.WithClock(clk.Now))
		require.NoError(t, err)
		for range 10 - i {
			in.Observer().ObserveCall(t.Context(), dualwrite.Call{Migration: "users_split_name", Stage: flags.DualWrite, Origin: dualwrite.Old, Duration: time.Millisecond})
		}
		require.NoError(t, in.Beat(t.Context()))
	}
	_, page = get(t, http.DefaultClient, srv+"/migrations/"+url.PathEscape("users_split_name"))
	doc := chartOf(t, page, "latency-old-over-time")
	var drawn []string
	for _, p := range doc.Polylines {
		if p.Quantile == "p99" {
			drawn = append(drawn, p.Instance)
		}
	}
	assert.Equal(t, []string{"api-0", "api-1", "api-2", "api-3", "api-4", "api-5", "api-6", "api-7"}, drawn)
	var note []string
	for _, x := range doc.Legend.Texts {
		if x.Class == "note" {
			note = append(note, x.Text)
		}
	}
	assert.Equal(t, []string{"2 more instances, with fewer calls, are not drawn"}, note)
}

// The charts over time go back as far as the board's chart window, by
// the coordinator's clock; a window that is not positive is refused.
func TestFleetChartsWindow(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	clk := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.UsersPlan(db)}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	fleetHistory(t, db, clk, "users_split_name") // a beat every 10 s up to now
	_, err = board.New(c, board.WithChartWindow(0))
	require.Error(t, err)
	b, err := board.New(c, board.WithChartWindow(25*time.Second))
	require.NoError(t, err)
	srv := newServer(t, b)
	_, page := get(t, http.DefaultClient, srv+"/migrations/users_split_name")
	doc := chartOf(t, page, "latency-old-over-time")
	require.NotEmpty(t, doc.Polylines)
	assert.Len(t, strings.Fields(doc.Polylines[0].Points), 3, "the beats at now, 10 s and 20 s before")
	clk.Add(time.Hour)
	_, page = get(t, http.DefaultClient, srv+"/migrations/users_split_name")
	assert.Empty(t, chartOf(t, page, "consistency-over-time").Polylines, "an hour on, nothing in the window")
}
