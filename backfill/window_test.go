package backfill_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dialect"
)

func mustWindow(t testing.TB, s string) backfill.Window {
	t.Helper()
	w, err := backfill.ParseWindow(s)
	require.NoError(t, err)
	return w
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Where a time stands among windows: at an opening it is inside, at a
// closing outside; a window crossing midnight is open on the next day
// until its end, one of a weekday set opens on those days only, and
// wall times are read in the window's zone across changes of daylight
// saving time (a skipped opening is the jump; a repeated time is its
// first reading) and over a leap day.
func TestWindowArithmetic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		windows []string
		at      string
		inside  bool
		until   string
	}{
		{"before", []string{"01:00-05:00 UTC"}, "2031-06-02T00:30:00Z", false, "2031-06-02T01:00:00Z"},
		{"at the opening", []string{"01:00-05:00 UTC"}, "2031-06-02T01:00:00Z", true, "2031-06-02T05:00:00Z"},
		{"a nanosecond before the close", []string{"01:00-05:00 UTC"}, "2031-06-02T04:59:59.999999999Z", true, "2031-06-02T05:00:00Z"},
		{"at the close", []string{"01:00-05:00 UTC"}, "2031-06-02T05:00:00Z", false, "2031-06-03T01:00:00Z"},
		{"crossing midnight, before it", []string{"22:00-02:00 UTC"}, "2031-06-02T23:00:00Z", true, "2031-06-03T02:00:00Z"},
		{"crossing midnight, after it", []string{"22:00-02:00 UTC"}, "2031-06-03T01:59:00Z", true, "2031-06-03T02:00:00Z"},
		{"crossing midnight, closed", []string{"22:00-02:00 UTC"}, "2031-06-03T02:00:00Z", false, "2031-06-03T22:00:00Z"},
		{"weekdays: Friday night", []string{"Mon-Fri 22:00-02:00 UTC"}, "2031-01-03T23:00:00Z", true, "2031-01-04T02:00:00Z"},
		{"weekdays: Saturday, opened Friday", []string{"Mon-Fri 22:00-02:00 UTC"}, "2031-01-04T01:00:00Z", true, "2031-01-04T02:00:00Z"},
		{"weekdays: Saturday night waits for Monday", []string{"Mon-Fri 22:00-02:00 UTC"}, "2031-01-04T23:00:00Z", false, "2031-01-06T22:00:00Z"},
		{"weekdays: a set wrapping the week", []string{"Fri-Mon 10:00-11:00 UTC"}, "2031-01-06T12:00:00Z", false, "2031-01-10T10:00:00Z"},
		{"weekdays: a list", []string{"Tue,Thu 10:00-11:00 UTC"}, "2031-01-07T11:00:00Z", false, "2031-01-09T10:00:00Z"},
		{"a window to midnight", []string{"20:00-24:00 UTC"}, "2031-06-02T23:59:00Z", true, "2031-06-03T00:00:00Z"},
		{"touching windows merge", []string{"Mon 20:00-24:00 UTC", "Tue 00:00-03:00 UTC"}, "2031-06-02T21:00:00Z", true, "2031-06-03T03:00:00Z"},
		{"overlapping windows merge", []string{"01:00-05:00 UTC", "04:00-06:00 UTC"}, "2031-06-02T02:00:00Z", true, "2031-06-02T06:00:00Z"},
		{"the nearest of two", []string{"01:00-05:00 UTC", "13:00-14:00 UTC"}, "2031-06-02T06:00:00Z", false, "2031-06-02T13:00:00Z"},
		{"another zone", []string{"01:00-05:00 Asia/Kolkata"}, "2031-06-01T19:00:00Z", false, "2031-06-01T19:30:00Z"},
		// Paris, 2031-03-30: 02:00 CET is 03:00 CEST, at 01:00 UTC.
		{"spring forward: a window over the jump is an hour short", []string{"01:00-05:00 Europe/Paris"}, "2031-03-30T00:30:00Z", true, "2031-03-30T03:00:00Z"},
		{"spring forward: a skipped opening is the jump", []string{"02:30-04:00 Europe/Paris"}, "2031-03-30T00:59:59Z", false, "2031-03-30T01:00:00Z"},
		{"spring forward: open from the jump", []string{"02:30-04:00 Europe/Paris"}, "2031-03-30T01:00:00Z", true, "2031-03-30T02:00:00Z"},
		{"spring forward: a skipped close is the jump", []string{"01:00-02:30 Europe/Paris"}, "2031-03-30T00:30:00Z", true, "2031-03-30T01:00:00Z"},
		{"the day after spring forward", []string{"01:00-05:00 Europe/Paris"}, "2031-03-30T04:00:00Z", false, "2031-03-30T23:00:00Z"},
		// Paris, 2031-10-26: 03:00 CEST is 02:00 CET, at 01:00 UTC.
		{"fall back: a repeated opening is its first", []string{"02:30-03:30 Europe/Paris"}, "2031-10-26T00:00:00Z", false, "2031-10-26T00:30:00Z"},
		{"fall back: an hour longer", []string{"02:30-03:30 Europe/Paris"}, "2031-10-26T00:30:00Z", true, "2031-10-26T02:30:00Z"},
		{"fall back: a repeated close is its first", []string{"01:00-02:30 Europe/Paris"}, "2031-10-25T23:30:00Z", true, "2031-10-26T00:30:00Z"},
		{"fall back: the window does not open again", []string{"01:00-02:30 Europe/Paris"}, "2031-10-26T01:15:00Z", false, "2031-10-27T00:00:00Z"},
		{"leap day: a Sunday window crossing into March", []string{"Sun 23:00-01:00 UTC"}, "2032-02-29T23:30:00Z", true, "2032-03-01T01:00:00Z"},
		{"leap day: the next Sunday", []string{"Sun 23:00-01:00 UTC"}, "2032-02-28T12:00:00Z", false, "2032-02-29T23:00:00Z"},
		{"leap day: February 28 to 29", []string{"23:00-01:00 UTC"}, "2032-02-28T23:30:00Z", true, "2032-02-29T01:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ws []backfill.Window
			for _, s := range tc.windows {
				ws = append(ws, mustWindow(t, s))
			}
			inside, until := backfill.WindowState(ws, utc(tc.at))
			assert.Equal(t, tc.inside, inside)
			assert.Equal(t, utc(tc.until), until.UTC())
		})
	}
}

// The text says where the job stands, in the window's zone.
func TestWindowText(t *testing.T) {
	t.Parallel()
	ws := []backfill.Window{mustWindow(t, "mon-fri 22:00-02:00 Europe/Paris")}
	assert.Equal(t, "outside run windows until Mon 2031-01-06 22:00 CET (Mon-Fri 22:00-02:00 Europe/Paris)",
		backfill.WindowText(ws, utc("2031-01-04T12:00:00Z")))
	assert.Equal(t, "inside Mon-Fri 22:00-02:00 Europe/Paris until Sat 2031-01-04 02:00 CET",
		backfill.WindowText(ws, utc("2031-01-03T23:00:00Z")))
	assert.Empty(t, backfill.WindowText(nil, utc("2031-01-03T23:00:00Z")))
}

// The operator's form is read strictly; anything else is refused, with
// the input named.
func TestParseWindow(t *testing.T) {
	t.Parallel()
	w := mustWindow(t, "  Sat,Sun  00:00-24:00  America/New_York ")
	assert.Equal(t, []time.Weekday{time.Sunday, time.Saturday}, w.Days)
	assert.Equal(t, time.Duration(0), w.Start)
	assert.Equal(t, 24*time.Hour, w.End)
	assert.Equal(t, "America/New_York", w.Location.String())
	assert.Equal(t, "Sat-Sun 00:00-24:00 America/New_York", w.String())
	assert.Equal(t, "01:00:30-05:00 UTC", mustWindow(t, "01:00:30-05:00 UTC").String())
	assert.Equal(t, "Mon,Wed,Fri-Sun 01:00-05:00 UTC", mustWindow(t, "Fri-Sun,Wed,Mon 01:00-05:00 UTC").String())
	assert.Equal(t, "01:00-05:00 UTC", mustWindow(t, "Sun-Sat 01:00-05:00 UTC").String(), "all days: none said")

	for in, want := range map[string]string{
		"":                                    "want [DAYS] HH:MM-HH:MM ZONE",
		"01:00-05:00":                         "want [DAYS] HH:MM-HH:MM ZONE",
		"01:00-05:00 Local":                   "Local differs from host to host",
		"01:00-05:00 UTC extra words":         "want [DAYS] HH:MM-HH:MM ZONE",
		"01:00-01:00 UTC":                     "end equals start",
		"00:00-00:00 UTC":                     "end equals start",
		"24:00-05:00 UTC":                     "start 24h0m0s is outside [0, 24h)",
		"01:00-24:01 UTC":                     "past 24:00",
		"1:00-05:00 UTC":                      `"1:00": want HH:MM`,
		"01:60-05:00 UTC":                     `"01:60": want HH:MM`,
		"-01:00-05:00 UTC":                    "want HH:MM",
		"01:00+05:00 UTC":                     "want HH:MM-HH:MM",
		"Mon-Fri 01:00-05:00 Mars/Olympus":    "unknown time zone",
		"01:00-05:00 ../../../../etc/passwd":  "zone",
		"Funday 01:00-05:00 UTC":              `day "Funday"`,
		"Mon-<script> 01:00-05:00 UTC":        `day "<script>"`,
		"Mon,,Fri 01:00-05:00 UTC":            `day ""`,
		"01:00-05:00 UTC\n02:00-03:00 UTC":    "want [DAYS] HH:MM-HH:MM ZONE",
		"Mon 01:00-05:00\u00a0Europe/Paris x": "want [DAYS] HH:MM-HH:MM ZONE",
	} {
		_, err := backfill.ParseWindow(in)
		if assert.Error(t, err, "%q", in) {
			assert.Contains(t, err.Error(), want, "%q", in)
			assert.True(t, strings.HasPrefix(err.Error(), "run window "), err.Error())
		}
	}
}

// WithRunWindows refuses windows that mean nothing, naming which.
func TestRunWindowsOptionRefusesNonsense(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		ws   []backfill.Window
		want string
	}{
		"none":           {nil, "run windows: none given"},
		"empty":          {[]backfill.Window{{}}, "end 0s is outside (0, 24h]"},
		"start is end":   {[]backfill.Window{{Start: time.Hour, End: time.Hour}}, "end equals start (01:00)"},
		"negative start": {[]backfill.Window{{Start: -time.Hour, End: time.Hour}}, "start -1h0m0s is outside [0, 24h)"},
		"end past a day": {[]backfill.Window{{Start: time.Hour, End: 25 * time.Hour}}, "end 25h0m0s is outside (0, 24h]"},
		"no such day":    {[]backfill.Window{{Days: []time.Weekday{9}, Start: time.Hour, End: 2 * time.Hour}}, "day 9 is not a weekday"},
		"the second":     {[]backfill.Window{{Start: time.Hour, End: 2 * time.Hour}, {Start: 3 * time.Hour, End: 3 * time.Hour}}, "run window 2 ("},
	} {
		_, err := backfill.NextChunkSize(100, 100, time.Millisecond, backfill.WithRunWindows(tc.ws...))
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
	_, err := backfill.NextChunkSize(100, 100, time.Millisecond, backfill.WithRunWindows(backfill.Window{Start: 22 * time.Hour, End: 2 * time.Hour}))
	require.NoError(t, err, "a nil location is UTC, crossing midnight is fine")
}

// Whatever is parsed prints back as itself, and its state moves: outside
// until an opening that is inside, inside until a closing after now.
func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"01:00-05:00 UTC", "Mon-Fri 22:00-02:00 Europe/Paris", "Sat,Sun 00:00-24:00 America/New_York",
		"fri-mon 23:59:59-00:00:01 Asia/Kolkata", "Tue 02:30-03:00 Europe/Paris", "01:00-01:00 UTC", "x"} {
		f.Add(s, int64(1900000000))
	}
	f.Fuzz(func(t *testing.T, s string, at int64) {
		w, err := backfill.ParseWindow(s)
		if err != nil {
			return
		}
		again, err := backfill.ParseWindow(w.String())
		require.NoError(t, err, w.String())
		assert.Equal(t, w.String(), again.String())
		now := time.Unix(at%(1<<34), 0) // within centuries of now
		inside, until := backfill.WindowState([]backfill.Window{w}, now)
		require.True(t, until.After(now), "%s at %v: until %v", w, now, until)
		if !inside {
			in, _ := backfill.WindowState([]backfill.Window{w}, until)
			assert.True(t, in, "%s: outside at %v until %v, which is not inside", w, now, until)
		}
	})
}

// windowed runs b in a goroutine; the returned wait is its result.
func windowed(t *testing.T, b *backfill.Backfill) (wait func() (backfill.Progress, error)) {
	t.Helper()
	type result struct {
		p   backfill.Progress
		err error
	}
	ch := make(chan result, 1)
	go func() {
		p, err := b.Run(t.Context())
		ch <- result{p, err}
	}()
	return func() (backfill.Progress, error) {
		select {
		case r := <-ch:
			return r.p, r.err
		case <-time.After(time.Minute):
			t.Fatal("Run did not return")
			return backfill.Progress{}, nil
		}
	}
}

// waits is a hook for backfill.WithWindowWait and a way to wait for n of
// its calls.
type waits chan string

func (w waits) hook(text string) {
	select {
	case w <- text:
	default: // the test has seen enough
	}
}

// await receives n looks at the clock outside the windows, and returns
// the last's text.
func (w waits) await(t *testing.T, n int) string {
	t.Helper()
	var last string
	for range n {
		select {
		case last = <-w:
		case <-time.After(time.Minute):
			t.Fatal("no worker waited for the window")
		}
	}
	return last
}

func (w waits) drain() {
	for {
		select {
		case <-w:
		default:
			return
		}
	}
}

type chunkStamp struct {
	Seq     int64        `db:"seq"`
	Status  string       `db:"status"`
	Started dialect.Time `db:"started_at"`
}

func chunkStamps(t *testing.T, db *sqlx.DB, job string) []chunkStamp {
	t.Helper()
	var cs []chunkStamp
	require.NoError(t, db.SelectContext(t.Context(), &cs, `SELECT seq, status, started_at FROM schemashift_backfill_chunks WHERE job = $1 ORDER BY seq`, job))
	return cs
}

// A Run started outside its window claims nothing, however long its
// workers wait, and says so in the job's row, read from another pool;
// once the clock is moved into the window it runs to the end, every
// chunk claimed inside.
func TestRunWaitsForItsWindow(t *testing.T) {
	t.Parallel()
	eachPools(t, func(t *testing.T, pool func() *sqlx.DB) {
		t.Parallel()
		db, other := pool(), pool()
		usersTable(t, db, 300)
		clk := newClock(utc("2031-06-02T00:00:00Z"))
		w := make(waits, 64)
		b := mustNew(t, db, emailJob("nightly"), backfill.WithChunkSize(50, 50, 50), backfill.WithWorkers(2),
			backfill.WithClock(clk.Now), backfill.WithRunWindows(mustWindow(t, "01:00-05:00 UTC")), backfill.WithWindowWait(w.hook))
		wait := windowed(t, b)
		text := w.await(t, 6) // both workers, each more than once
		assert.Equal(t, "outside run windows until Mon 2031-06-02 01:00 UTC (01:00-05:00 UTC)", text)
		st := clk.stateAt(t, other, "nightly")
		assert.Equal(t, text, st.Window)
		assert.Equal(t, text, st.Throttle)
		assert.Equal(t, backfill.Running, st.Status, "the Run beats while it waits: not stalled")
		assert.Zero(t, st.RowsDone)
		assert.Empty(t, chunkStamps(t, other, "nightly"), "no chunk claimed outside the window")
		assert.Equal(t, 300, divergent(t, other))

		clk.Set(utc("2031-06-02T01:00:00Z"))
		p, err := wait()
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, p.Status)
		assert.Zero(t, divergent(t, other))
		for _, c := range chunkStamps(t, other, "nightly") {
			assert.Equal(t, utc("2031-06-02T01:00:00Z"), c.Started.UTC(), "chunk %d", c.Seq)
		}
		st = clk.stateAt(t, other, "nightly")
		assert.Equal(t, "inside 01:00-05:00 UTC until Mon 2031-06-02 05:00 UTC", st.Window)
		assert.Empty(t, st.Throttle)
	})
}

// A window that closes mid-run lets the chunk in flight commit and
// stops the claims after it; when the next opens the Run goes on where
// it stopped and finishes.
func TestWindowClosingMidRun(t *testing.T) {
	t.Parallel()
	eachPools(t, func(t *testing.T, pool func() *sqlx.DB) {
		t.Parallel()
		db, other := pool(), pool()
		usersTable(t, db, 300)
		open1, close1, open2 := utc("2031-06-02T01:00:00Z"), utc("2031-06-02T05:00:00Z"), utc("2031-06-03T01:00:00Z")
		clk := newClock(open1)
		w := make(waits, 64)
		b := mustNew(t, db, emailJob("closing"), backfill.WithChunkSize(50, 50, 50),
			backfill.WithClock(clk.Now), backfill.WithRunWindows(mustWindow(t, "01:00-05:00 UTC")), backfill.WithWindowWait(w.hook),
			backfill.WithBeforeCommit(func(seq int64) {
				if seq == 2 {
					clk.Set(close1) // the window closes while chunk 2 is in flight
				}
			}))
		wait := windowed(t, b)
		text := w.await(t, 3)
		assert.Equal(t, "outside run windows until Tue 2031-06-03 01:00 UTC (01:00-05:00 UTC)", text)
		st := clk.stateAt(t, other, "closing")
		assert.Equal(t, text, st.Window)
		assert.Equal(t, int64(100), st.RowsDone, "the chunk in flight committed, and no other was claimed")
		assert.Equal(t, int64(2), st.ChunksDone)
		assert.Zero(t, st.ChunksLeased)
		assert.Len(t, chunkStamps(t, other, "closing"), 2)

		clk.Set(open2)
		p, err := wait()
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, p.Status)
		assert.Zero(t, divergent(t, other))
		cs := chunkStamps(t, other, "closing")
		require.Len(t, cs, 6)
		for _, c := range cs {
			want := open2
			if c.Seq <= 2 {
				want = open1
			}
			assert.Equal(t, want, c.Started.UTC(), "chunk %d claimed inside a window", c.Seq)
		}
	})
}

// A job cancelled from another process while its Run waits for a window
// ends that Run at once, without waiting for the window; one finished
// by another process's workers ends it as done.
func TestWaitingForAWindowObeysTheJob(t *testing.T) {
	t.Parallel()
	eachPools(t, func(t *testing.T, pool func() *sqlx.DB) {
		t.Parallel()
		db, other := pool(), pool()
		usersTable(t, db, 120)
		clk := newClock(utc("2031-06-02T12:00:00Z"))
		w := make(waits, 64)
		opts := []backfill.Option{backfill.WithChunkSize(50, 50, 50), backfill.WithClock(clk.Now),
			backfill.WithRunWindows(mustWindow(t, "Sat 01:00-05:00 UTC")), backfill.WithWindowWait(w.hook)}
		wait := windowed(t, mustNew(t, db, emailJob("obeys"), opts...))
		w.await(t, 2)
		require.NoError(t, backfill.Cancel(t.Context(), other, "obeys"))
		_, err := wait()
		require.ErrorIs(t, err, backfill.ErrCancelled)

		require.NoError(t, backfill.Resume(t.Context(), other, "obeys"))
		w.drain()
		wait = windowed(t, mustNew(t, db, emailJob("obeys"), opts...))
		w.await(t, 2)
		// Another process with no window finishes the job.
		p, err := mustNew(t, other, emailJob("obeys"), backfill.WithChunkSize(50, 50, 50), backfill.WithClock(clk.Now)).Run(context.WithoutCancel(t.Context()))
		require.NoError(t, err)
		require.Equal(t, backfill.Done, p.Status)
		assert.Empty(t, p.Window, "a Run with no windows clears what one with them wrote")
		p, err = wait()
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, p.Status)
		assert.Zero(t, divergent(t, other))
	})
}
