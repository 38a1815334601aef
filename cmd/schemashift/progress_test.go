package main

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
)

var t0 = time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC)

// feed drives a meter as the backfill's reports would, every 200 ms for
// d at rowsPerSec, and returns the time and rows it ends at.
func feed(m *meter, at time.Time, rows int64, d time.Duration, rowsPerSec int64, status backfill.Status) (time.Time, int64) {
	const tick = 200 * time.Millisecond
	for end := at.Add(d); at.Before(end); {
		at = at.Add(tick)
		rows += rowsPerSec * int64(tick) / int64(time.Second)
		m.observe(at, rows, status == backfill.Running)
	}
	return at, rows
}

// The rate is that of the last window of running time, not the average
// since the start: a pause neither lowers it nor holds it down after, and
// after a slow spell it is back at full speed once the window has passed.
func TestMeterRate(t *testing.T) {
	t.Parallel()
	m := newMeter(10 * time.Second)
	assert.Zero(t, m.rate(), "no rate before a span")
	m.observe(t0, 0, true)
	assert.Zero(t, m.rate())
	assert.False(t, m.spans())

	at, rows := feed(m, t0, 0, 20*time.Second, 39000, backfill.Running)
	assert.InDelta(t, 39000, m.rate(), 1)
	assert.True(t, m.spans())

	// Paused for 6 s: no rows, and the time does not count.
	at, rows = feed(m, at, rows, 6*time.Second, 0, backfill.Paused)
	assert.InDelta(t, 39000, m.rate(), 1, "paused: the rate is the one it will resume at")
	assert.Zero(t, m.eta(rows, 0), "no estimate, no ETA")
	at, rows = feed(m, at, rows, 400*time.Millisecond, 39000, backfill.Running)
	assert.InDelta(t, 39000, m.rate(), 1, "resumed at full speed: the rate is full at once")
	since := float64(rows) / at.Sub(t0).Seconds()
	assert.Less(t, since, 31000.0, "the average since the start, which the bar no longer shows, fell")

	// A slow spell while running (a lock wait): it counts, and passes.
	at, rows = feed(m, at, rows, 5*time.Second, 0, backfill.Running)
	assert.InDelta(t, 39000*5/10, m.rate(), 400, "half the window without a row: half the rate")
	at, rows = feed(m, at, rows, 10*time.Second, 39000, backfill.Running)
	assert.InDelta(t, 39000, m.rate(), 1, "a window at full speed later: full again")

	// The ETA follows from the window's rate.
	assert.InDelta(t, (10 * time.Second).Seconds(), m.eta(rows, rows+390000).Seconds(), 0.01)
	assert.Zero(t, m.eta(rows, rows), "nothing left")

	// A clock stepped back, or a job that starts over: a new window.
	m.observe(at.Add(-time.Minute), rows, true)
	assert.Zero(t, m.rate())
	m.observe(at, 10, true)
	assert.Zero(t, m.rate())
	m.observe(at.Add(time.Second), 1010, true)
	assert.InDelta(t, 1000, m.rate(), 0.001)
}

// A stalled job (status stalled, no rows) is left out of the window like a
// paused one, but rows walked while a report says otherwise still count.
func TestMeterRowsCountWhateverTheStatus(t *testing.T) {
	t.Parallel()
	m := newMeter(10 * time.Second)
	m.observe(t0, 0, false)
	m.observe(t0.Add(time.Second), 500, false) // the job's last chunks, reported done
	assert.InDelta(t, 500, m.rate(), 0.001)
	m.observe(t0.Add(time.Hour), 500, false) // stalled for an hour
	assert.InDelta(t, 500, m.rate(), 0.001)
}

// clock is a clock the test moves.
type clock struct {
	mu sync.Mutex
	at time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.at }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = c.at.Add(d)
}

func reportAt(b *progress, clk *clock, job string, rows, total int64, status backfill.Status) {
	clk.add(200 * time.Millisecond)
	b.report(backfill.Progress{Job: job, RowsDone: rows, TotalEstimate: total, Status: status, Rate: 1})
}

// Not on a terminal: plain lines, no carriage return or escape, one per
// tenth of the job, per change of status and per lineEvery, not one per
// report.
func TestProgressLines(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	clk := &clock{at: t0}
	b := newProgress(&out, false, clk.now)
	const total = 100000
	for rows := int64(0); rows <= total; rows += 500 { // 201 reports, 40 s
		reportAt(b, clk, "users_split_name", rows, total, backfill.Running)
	}
	for range 100 { // paused for 20 s
		reportAt(b, clk, "users_split_name", total, total, backfill.Paused)
	}
	reportAt(b, clk, "users_split_name", total, total, backfill.Done)
	b.finish()
	s := out.String()
	assert.NotContains(t, s, "\r")
	assert.NotContains(t, s, "\x1b")
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	t.Logf("%d lines:\n%s", len(lines), s)
	assert.Equal(t, "users_split_name: 0% 0/100000 rows, 1 rows/s, ETA -, running", lines[0], "the first report, at the job's own rate")
	assert.Contains(t, s, "users_split_name: 10% 10000/100000 rows, 2500 rows/s, ETA 36s, running\n")
	assert.Contains(t, s, "users_split_name: 100% 100000/100000 rows, 2500 rows/s, ETA -, paused\n", "a change of status")
	assert.Equal(t, "users_split_name: 100% 100000/100000 rows, 2500 rows/s, ETA 0s, done", lines[len(lines)-1])
	// 0%, each tenth (10), paused, one more while paused 20 s (every
	// 10 s), done.
	assert.Len(t, lines, 1+10+1+1+1)
}

// On a terminal: one line redrawn in place, ended by finish.
func TestProgressBar(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	clk := &clock{at: t0}
	b := newProgress(&out, true, clk.now)
	reportAt(b, clk, "j", 0, 1000, backfill.Running)
	reportAt(b, clk, "j", 500, 1000, backfill.Running)
	b.finish()
	b.finish() // idempotent: one newline
	assert.Equal(t, "\rj [..............................] 0/1000 rows  1 rows/s  ETA -  running\x1b[K"+
		"\rj [###############...............] 500/1000 rows  2500 rows/s  ETA 0s  running\x1b[K\n", out.String())
}

// Only a terminal gets the bar: a pipe, a file, a buffer do not.
func TestIsTerminal(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	assert.False(t, isTerminal(w), "a pipe")
	f, err := os.Create(t.TempDir() + "/log")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, isTerminal(f), "a file")
	assert.False(t, isTerminal(&bytes.Buffer{}))
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	require.NoError(t, err, "a pseudo-terminal to test with")
	defer ptmx.Close()
	assert.True(t, isTerminal(ptmx), "a terminal")
}

// A job paced by a latency budget says, on its line and on its bar, what
// it reads the foreground by and how its pace stands; a newline in the
// pace (a signal's error text) does not break the line.
func TestProgressShowsThePace(t *testing.T) {
	t.Parallel()
	p := backfill.Progress{Job: "j", Status: backfill.Running, RowsDone: 10, TotalEstimate: 100,
		Foreground: backfill.SourceDatabase, Pace: "duty 0.35, latency 1.20× of 4ms\nwithin budget"}
	assert.Equal(t, "j: 10% 10/100 rows, 5 rows/s, ETA -, running, paced by database statistics: duty 0.35, latency 1.20× of 4ms within budget",
		plainLine(p, 5, 0))
	assert.True(t, strings.HasSuffix(barLine(p, 5, 0), "running  paced by database statistics: duty 0.35, latency 1.20× of 4ms within budget"), barLine(p, 5, 0))
	p.Status = backfill.Done
	assert.Equal(t, "j: 10% 10/100 rows, 5 rows/s, ETA 0s, done", plainLine(p, 5, 0), "a job done has no pace")
	p.Status, p.Foreground, p.Pace = backfill.Running, "", "stale"
	assert.Equal(t, "j: 10% 10/100 rows, 5 rows/s, ETA -, running", plainLine(p, 5, 0), "no pace read: nothing said")
}

// A first report with nothing done and no rate of the job's own yet tells
// no rate ("-"), not a rate of 0 (a script reading the line would take
// the job for stalled); one with rows done tells the job's average.
func TestProgressFirstReportHasNoRate(t *testing.T) {
	var out bytes.Buffer
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newProgress(&out, false, func() time.Time { return at })
	b.report(backfill.Progress{Job: "j", Status: backfill.Running, TotalEstimate: 3000})
	assert.Equal(t, "j: 0% 0/3000 rows, - rows/s, ETA -, running\n", out.String())
	out.Reset()
	b = newProgress(&out, false, func() time.Time { return at })
	b.report(backfill.Progress{Job: "j", Status: backfill.Done, RowsDone: 3000, TotalEstimate: 3000, Rate: 4200})
	assert.Equal(t, "j: 100% 3000/3000 rows, 4200 rows/s, ETA 0s, done\n", out.String())
}
