package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/schemashift/schemashift/backfill"
)

// rateWindow is how much of a job's recent running time its rate and ETA
// are taken over: long enough to smooth chunk-sized steps, short enough
// that a slowdown, and its end, show within seconds.
const rateWindow = 10 * time.Second

// lineEvery is how often a job's progress is printed as a line when
// stderr is not a terminal, besides every tenth of the job and every
// change of status.
const lineEvery = 10 * time.Second

// meter is the rate of a job over the last window of its running time.
// An interval in which the job was not running at both ends (paused,
// stalled) and walked no row is left out: a pause neither lowers the
// rate nor holds it down once the job runs again. The project keeps its
// own because what matters here is which time counts (running time, on an
// injected clock), which progress-bar modules decide for themselves, by
// the wall clock. It is not safe for concurrent use (progress holds a lock
// around it).
type meter struct {
	window  time.Duration
	samples []sample // oldest first; the first one at or before the window's start
	last    struct {
		at      time.Time
		rows    int64
		running bool
	}
	active time.Duration // running time counted so far
	seen   bool
}

// sample is the rows done at a point of the job's running time.
type sample struct {
	active time.Duration
	rows   int64
}

func newMeter(window time.Duration) *meter { return &meter{window: window} }

// observe records that rows were done at `at`, the job running or not.
func (m *meter) observe(at time.Time, rows int64, running bool) {
	if !m.seen || rows < m.last.rows || at.Before(m.last.at) {
		// The first sample, or a job reset or a clock stepped back: start over.
		*m = meter{window: m.window, seen: true}
		m.samples = []sample{{0, rows}}
		m.last.at, m.last.rows, m.last.running = at, rows, running
		return
	}
	if rows > m.last.rows || running && m.last.running {
		m.active += at.Sub(m.last.at)
		m.samples = append(m.samples, sample{m.active, rows})
	}
	m.last.at, m.last.rows, m.last.running = at, rows, running
	// Keep one sample at or before the window's start.
	start := m.active - m.window
	drop := 0
	for drop+1 < len(m.samples) && m.samples[drop+1].active <= start {
		drop++
	}
	m.samples = m.samples[drop:]
}

// rate is rows per second over the window; 0 before there is any span.
func (m *meter) rate() float64 {
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	span := last.active - first.active
	if span <= 0 {
		return 0
	}
	return float64(last.rows-first.rows) / span.Seconds()
}

// spans reports whether the window holds any running time to take a
// rate over.
func (m *meter) spans() bool {
	return len(m.samples) > 1 && m.samples[len(m.samples)-1].active > m.samples[0].active
}

// eta is the time the rest of the job takes at the window's rate; 0 when
// it cannot be told (no rate, no estimate).
func (m *meter) eta(rows, total int64) time.Duration {
	r := m.rate()
	if r <= 0 || total <= 0 {
		return 0
	}
	if rows >= total {
		return 0
	}
	return time.Duration(float64(total-rows) / r * float64(time.Second))
}

// progress draws the progress of a migration's backfills on w: a bar
// redrawn in place when w is a terminal, else a line every tenth of a
// job, every lineEvery and at each change of status (a log file or a CI
// job gets no carriage returns). It is safe for concurrent use: the
// backfill reports from its own goroutine.
type progress struct {
	w        io.Writer
	terminal bool
	now      func() time.Time

	mu   sync.Mutex
	jobs map[string]*jobProgress
	drew bool // a bar is on the terminal's line
}

type jobProgress struct {
	meter     *meter
	status    backfill.Status
	tenth     int64 // the tenth of the job last printed
	printedAt time.Time
}

func newProgress(w io.Writer, terminal bool, now func() time.Time) *progress {
	return &progress{w: w, terminal: terminal, now: now, jobs: map[string]*jobProgress{}}
}

// report takes one report of a job's progress.
func (b *progress) report(p backfill.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	at := b.now()
	j := b.jobs[p.Job]
	first := j == nil
	if first {
		j = &jobProgress{meter: newMeter(rateWindow), tenth: -1}
		b.jobs[p.Job] = j
	}
	j.meter.observe(at, p.RowsDone, p.Status == backfill.Running)
	rate, left := j.meter.rate(), j.meter.eta(p.RowsDone, p.TotalEstimate)
	if rate == 0 && !j.meter.spans() {
		rate = p.Rate // no window yet (the first report, or a job done before the second): the job's own average
		if rate == 0 && p.RowsDone == 0 {
			rate = -1 // nothing done yet: no rate to tell
		}
	}
	if b.terminal {
		fmt.Fprintf(b.w, "\r%s\x1b[K", barLine(p, rate, left))
		b.drew = true
		return
	}
	tenth := int64(0)
	if p.TotalEstimate > 0 {
		tenth = min(10, p.RowsDone*10/p.TotalEstimate)
	}
	if first || tenth > j.tenth || p.Status != j.status || at.Sub(j.printedAt) >= lineEvery {
		fmt.Fprintln(b.w, plainLine(p, rate, left))
		j.tenth, j.status, j.printedAt = tenth, p.Status, at
	}
}

// finish ends the bar's line on a terminal.
func (b *progress) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drew {
		fmt.Fprintln(b.w)
		b.drew = false
	}
}

const barWidth = 30

// rateText is a rate as the progress shows it: "-" when there is none
// to tell yet (a negative rate).
func rateText(rate float64) string {
	if rate < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", rate)
}

func barLine(p backfill.Progress, rate float64, left time.Duration) string {
	filled := 0
	if p.TotalEstimate > 0 {
		filled = int(min(int64(barWidth), p.RowsDone*barWidth/p.TotalEstimate))
	}
	return fmt.Sprintf("%s [%s%s] %d/%d rows  %s rows/s  ETA %s  %s", p.Job, strings.Repeat("#", filled),
		strings.Repeat(".", barWidth-filled), p.RowsDone, p.TotalEstimate, rateText(rate), etaOf(p, left), backfillStatus(p)) + paceOf(p, "  ")
}

func plainLine(p backfill.Progress, rate float64, left time.Duration) string {
	pct := ""
	if p.TotalEstimate > 0 {
		pct = fmt.Sprintf(" %d%%", min(100, p.RowsDone*100/p.TotalEstimate))
	}
	return fmt.Sprintf("%s:%s %d/%d rows, %s rows/s, ETA %s, %s", p.Job, pct, p.RowsDone, p.TotalEstimate, rateText(rate), etaOf(p, left), backfillStatus(p)) + paceOf(p, ", ")
}

// paceOf is, for a running job whose pace reads the foreground (a
// latency budget, or the default rest while the database is busy), what
// it reads it by and how its pace stands, after sep; "" for another (a
// job done or paused has no pace).
func paceOf(p backfill.Progress, sep string) string {
	if p.Foreground == "" || p.Status != backfill.Running {
		return ""
	}
	s := sep + "paced by " + p.Foreground
	if p.Pace != "" {
		s += ": " + strings.ReplaceAll(p.Pace, "\n", " ")
	}
	return s
}

// etaOf is the ETA shown: "-" for a job that is not running or whose
// rate is not known yet, 0s for one done.
func etaOf(p backfill.Progress, left time.Duration) string {
	switch {
	case p.Status == backfill.Done, p.Status == backfill.Running && p.TotalEstimate > 0 && p.RowsDone >= p.TotalEstimate:
		return "0s"
	case p.Status != backfill.Running || left <= 0:
		return "-"
	}
	return left.Round(time.Second).String()
}
