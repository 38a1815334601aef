package backfill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Window is a time of day, on some days of the week, in which a backfill
// may run (see [WithRunWindows]): from Start to End after midnight, wall
// clock time in Location, on each of Days.
//
// A window whose End is not after its Start crosses midnight: 22:00–02:00
// on Friday opens on Friday at 22:00 and closes on Saturday at 02:00.
// End may be 24h (midnight at the end of the day); End equal to Start is
// refused (a window of no time, or of all of it, is not one: omit the
// option to run at any time).
//
// Times are read on the wall clock, as an operator states them. On a day
// a change of daylight saving time skips a wall time (Paris goes from
// 02:00 to 03:00 one night in March), a window opens or closes at the
// first instant the clock reads its time or later (the jump itself, for
// 02:30); on a day a time comes twice (October), at the first time the
// clock reads it. Each day's window opens once and closes once.
type Window struct {
	// Days are the days the window opens on; empty: every day.
	Days []time.Weekday
	// Start and End are wall clock times, as durations since midnight:
	// Start in [0, 24h), End in (0, 24h], End ≠ Start.
	Start, End time.Duration
	// Location is the zone the times are read in; nil: UTC. time.Local is
	// each host's own zone: name a zone where workers run on many hosts.
	Location *time.Location
}

// check refuses a window that means nothing.
func (w Window) check() error {
	var errs []error
	if w.Start < 0 || w.Start >= 24*time.Hour {
		errs = append(errs, fmt.Errorf("start %v is outside [0, 24h)", w.Start))
	}
	if w.End <= 0 || w.End > 24*time.Hour {
		errs = append(errs, fmt.Errorf("end %v is outside (0, 24h]", w.End))
	}
	if w.End == w.Start {
		errs = append(errs, fmt.Errorf("end equals start (%s): a window must be of some time, and not all of it", clockText(w.Start)))
	}
	for _, d := range w.Days {
		if d < time.Sunday || d > time.Saturday {
			errs = append(errs, fmt.Errorf("day %d is not a weekday", int(d)))
		}
	}
	return errors.Join(errs...)
}

func (w Window) loc() *time.Location {
	if w.Location == nil {
		return time.UTC
	}
	return w.Location
}

// opensOn reports whether the window opens on weekday d.
func (w Window) opensOn(d time.Weekday) bool {
	return len(w.Days) == 0 || slices.Contains(w.Days, d)
}

// on is the window's opening and closing on the civil date day (a UTC
// midnight standing for a date), if it opens that day.
func (w Window) on(day time.Time) (open, close time.Time, ok bool) {
	if !w.opensOn(day.Weekday()) {
		return time.Time{}, time.Time{}, false
	}
	loc := w.loc()
	open = wallInstant(loc, day, w.Start)
	if w.End > w.Start {
		close = wallInstant(loc, day, w.End)
	} else {
		close = wallInstant(loc, day.AddDate(0, 0, 1), w.End)
	}
	return open, close, true
}

// wallInstant is the first instant at which the wall clock of loc reads
// the civil date day at d after midnight, or later. Written here because
// time.Date does not say which instant it picks for a wall time a zone
// change skips or repeats. It assumes at most one change of offset
// within a day of the time, as every zone has.
func wallInstant(loc *time.Location, day time.Time, d time.Duration) time.Time {
	// The wall time as if it were UTC; an instant reads it in loc when
	// it is that less loc's offset then.
	wall := day.Add(d)
	offsetAt := func(t time.Time) time.Duration {
		_, off := t.In(loc).Zone()
		return time.Duration(off) * time.Second
	}
	before, after := offsetAt(wall.Add(-26*time.Hour)), offsetAt(wall.Add(26*time.Hour))
	var found []time.Time
	for _, off := range []time.Duration{before, after} {
		if t := wall.Add(-off); offsetAt(t) == off {
			found = append(found, t)
		}
	}
	if len(found) > 0 {
		return slices.MinFunc(found, time.Time.Compare).In(loc)
	}
	// Skipped: the clocks jumped over it. The jump is the first instant
	// of the later offset, between the two readings; zones change on
	// whole seconds.
	lo, hi := wall.Add(-max(before, after)).Unix(), wall.Add(-min(before, after)).Unix()
	for lo < hi {
		mid := lo + (hi-lo)/2
		if offsetAt(time.Unix(mid, 0)) == after {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return time.Unix(lo, 0).In(loc)
}

// opening is one opening of a window, or of several merged.
type opening struct {
	open, close time.Time
	w           Window // the window that opened it
}

// windowHorizon is how far ahead the windows are looked at: a week and
// the day a window crossing midnight ends on.
const windowHorizon = 9

// windowState is where t stands among ws: inside (until when the
// windows, merged, close) or outside (until the next opens), and the
// window that opened the span t is in or that opens next. A union of
// windows that never closes reads inside until the horizon, a week on,
// and is judged again then.
func windowState(ws []Window, t time.Time) (inside bool, until time.Time, w Window) {
	var spans []opening
	for _, win := range ws {
		// The civil date in the window's zone, from two days before (a
		// window opened the day before still open) to the horizon.
		lt := t.In(win.loc())
		day := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, time.UTC)
		for i := -2; i <= windowHorizon; i++ {
			if open, close, ok := win.on(day.AddDate(0, 0, i)); ok && close.After(open) {
				spans = append(spans, opening{open, close, win})
			}
		}
	}
	slices.SortFunc(spans, func(a, b opening) int { return a.open.Compare(b.open) })
	for i := 0; i < len(spans); i++ {
		s := spans[i]
		// Merge the spans that overlap or touch this one.
		for i+1 < len(spans) && !spans[i+1].open.After(s.close) {
			i++
			if spans[i].close.After(s.close) {
				s.close = spans[i].close
			}
		}
		switch {
		case t.Before(s.open):
			return false, s.open, s.w
		case t.Before(s.close):
			return true, s.close, s.w
		}
	}
	// Unreachable for a checked window: each opens at least once a week.
	return false, t.Add(windowHorizon * 24 * time.Hour), Window{}
}

// windowText says where t stands among ws, as [Progress].Window shows
// it; "" without windows.
func windowText(ws []Window, t time.Time) (text string, inside bool, until time.Time) {
	if len(ws) == 0 {
		return "", true, time.Time{}
	}
	inside, until, w := windowState(ws, t)
	at := until.In(w.loc()).Format("Mon 2006-01-02 15:04 MST")
	if inside {
		return fmt.Sprintf("inside %s until %s", w, at), true, until
	}
	return fmt.Sprintf("outside run windows until %s (%s)", at, w), false, until
}

// String is the window in the form [ParseWindow] reads: "Mon-Fri
// 22:00-02:00 Europe/Paris".
func (w Window) String() string {
	var parts []string
	if d := daysText(w.Days); d != "" {
		parts = append(parts, d)
	}
	parts = append(parts, clockText(w.Start)+"-"+clockText(w.End), w.loc().String())
	return strings.Join(parts, " ")
}

var dayNames = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// daysText is a set of days as runs of consecutive ones, Monday first:
// "Mon-Fri", "Mon,Wed,Fri-Sun"; "" for none or all.
func daysText(days []time.Weekday) string {
	var set [7]bool
	n := 0
	for _, d := range days {
		if d >= time.Sunday && d <= time.Saturday && !set[d] {
			set[d] = true
			n++
		}
	}
	if n == 0 || n == 7 {
		return ""
	}
	var runs []string
	for i := 0; i < 7; i++ {
		d := (i + 1) % 7 // Monday first
		if !set[d] {
			continue
		}
		j := i
		for j+1 < 7 && set[(j+2)%7] {
			j++
		}
		if j == i {
			runs = append(runs, dayNames[d])
		} else {
			runs = append(runs, dayNames[d]+"-"+dayNames[(j+1)%7])
		}
		i = j
	}
	return strings.Join(runs, ",")
}

// clockText is a time of day: 15:04, or 15:04:05 when it has seconds.
func clockText(d time.Duration) string {
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	if s != 0 || d%time.Second != 0 {
		return fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%02d:%02d", h, m)
}

// ParseWindow reads a window as an operator writes it: optional days, a
// span of wall clock times, and a zone, separated by spaces:
//
//	01:00-05:00 UTC
//	Mon-Fri 22:00-02:00 Europe/Paris
//	Sat,Sun 00:00-24:00 America/New_York
//
// Days are three-letter English names (any case), single or as ranges
// ("Fri-Mon" wraps over the weekend), separated by commas; none means
// every day. Times are HH:MM or HH:MM:SS, 24:00 as an end only. The zone
// is UTC or an IANA name; it must be given, and Local is refused, as it
// differs from host to host.
func ParseWindow(s string) (Window, error) {
	fields := strings.Fields(s)
	fail := func(format string, args ...any) (Window, error) {
		return Window{}, fmt.Errorf("run window %q: "+format, append([]any{s}, args...)...)
	}
	if len(fields) < 2 || len(fields) > 3 {
		return fail("want [DAYS] HH:MM-HH:MM ZONE")
	}
	var w Window
	if len(fields) == 3 {
		days, err := parseDays(fields[0])
		if err != nil {
			return fail("%v", err)
		}
		w.Days = days
		fields = fields[1:]
	}
	from, to, ok := strings.Cut(fields[0], "-")
	if !ok {
		return fail("times %q: want HH:MM-HH:MM", fields[0])
	}
	var err error
	if w.Start, err = parseClock(from); err != nil {
		return fail("start: %v", err)
	}
	if w.End, err = parseClock(to); err != nil {
		return fail("end: %v", err)
	}
	zone := fields[1]
	if zone == "Local" || zone == "" {
		return fail("zone %q: name a zone (UTC, Europe/Paris): Local differs from host to host", zone)
	}
	if w.Location, err = time.LoadLocation(zone); err != nil {
		return fail("zone %q: %v", zone, err)
	}
	if err := w.check(); err != nil {
		return fail("%v", err)
	}
	return w, nil
}

func parseDays(s string) ([]time.Weekday, error) {
	var set [7]bool
	for _, part := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, err := parseDay(from)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parseDay(to); err != nil {
				return nil, err
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			set[d] = true
			if d == b {
				break
			}
		}
	}
	var days []time.Weekday
	for d, on := range set {
		if on {
			days = append(days, time.Weekday(d))
		}
	}
	return days, nil
}

func parseDay(s string) (time.Weekday, error) {
	for i, n := range dayNames {
		if strings.EqualFold(s, n) {
			return time.Weekday(i), nil
		}
	}
	return 0, fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", s)
}

// parseClock reads HH:MM or HH:MM:SS, at most 24:00.
func parseClock(s string) (time.Duration, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, fmt.Errorf("%q: want HH:MM or HH:MM:SS", s)
	}
	limits := []int{24, 59, 59}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || len(p) != 2 || n < 0 || n > limits[i] {
			return 0, fmt.Errorf("%q: want HH:MM or HH:MM:SS", s)
		}
		v[i] = n
	}
	d := time.Duration(v[0])*time.Hour + time.Duration(v[1])*time.Minute + time.Duration(v[2])*time.Second
	if d > 24*time.Hour {
		return 0, fmt.Errorf("%q is past 24:00", s)
	}
	return d, nil
}

// WithRunWindows lets the backfill run only inside the windows given
// (their union: inside any one): outside every window its workers claim
// no chunk, a chunk in flight finishing (within [WithMaxLockHold]'s
// bound), and wait for the next window to open. Given more than once,
// the windows add up.
//
// Inside or outside is judged by [WithClock]'s clock, before each claim.
// A waiting worker reads the clock again every poll interval
// ([WithPollInterval]), or at the window's opening if that comes first,
// and the job's status with it (a cancel ends its Run; a job finished by
// another process ends it too); it does not poll the table otherwise,
// and its Run keeps its heartbeat, so the job does not read [Stalled].
// [Progress].Window says where the job stands ("outside run windows
// until Mon 2031-01-06 01:00 UTC (01:00-05:00 UTC)"), as written by the
// job's workers when it changes; the throttle reason says it too while
// the workers wait. The time waited outside is not counted in
// [Progress].Throttled.
func WithRunWindows(ws ...Window) Option {
	return func(o *options) error {
		if len(ws) == 0 {
			return errors.New("run windows: none given (omit the option to run at any time)")
		}
		for i, w := range ws {
			if err := w.check(); err != nil {
				return fmt.Errorf("run window %d (%s): %w", i+1, w, err)
			}
			w.Days = slices.Clone(w.Days)
			o.windows = append(o.windows, w)
		}
		return nil
	}
}

// waitWindow waits, before a claim, while the clock is outside every run
// window, re-reading the clock every poll interval (or at the opening,
// if sooner) and the job's status with it. It records where the job
// stands among the windows when that changes. It returns nil to claim,
// and errJobDone when the job was found done meanwhile.
func (b *Backfill) waitWindow(ctx context.Context, worker string, done <-chan struct{}) error {
	if len(b.opts.windows) == 0 {
		b.setWindow("") // clears what an earlier Run with windows recorded
		return nil
	}
	for waited := false; ; waited = true {
		at := b.now()
		text, inside, until := windowText(b.opts.windows, at)
		b.setWindow(text)
		if inside {
			if waited {
				b.setThrottle("")
			}
			return nil
		}
		b.setThrottle(text)
		if b.opts.windowWait != nil {
			b.opts.windowWait(text)
		}
		st, _, err := b.idle(ctx, worker)
		b.counted(1, err)
		switch {
		case err != nil:
			// Read again at the next turn; the window is what holds.
		case st == Done:
			return errJobDone
		case st == Cancelled:
			return fmt.Errorf("backfill %q: %w", b.job.Name, ErrCancelled)
		}
		select {
		case <-done:
			return errJobDone
		default:
		}
		if err := sleepUntil(ctx, min(b.opts.pollInterval, max(until.Sub(at), time.Millisecond)), done); err != nil {
			return err
		}
	}
}

// errJobDone: a worker waiting for a window found the job done.
var errJobDone = errors.New("job done")

// setWindow records where the job stands among its run windows, in
// memory and in the job's row when it changed (best effort: a lost write
// is made good at the next change).
func (b *Backfill) setWindow(text string) {
	b.mu.Lock()
	changed := b.window != text || !b.windowSet
	b.window, b.windowSet = text, true
	b.mu.Unlock()
	if changed {
		_, err := b.db.ExecContext(context.Background(), b.plan.d.BackfillWindow(), b.job.Name, text)
		b.counted(1, err)
	}
}

// Check refuses a window that means nothing (times out of range, an
// empty span, a day that is no weekday), or one a plan cannot name the
// same on every host (time.Local): what [WithRunWindows] and a plan's
// windows are held to.
func (w Window) Check() error {
	if err := w.check(); err != nil {
		return err
	}
	if w.Location == time.Local {
		return errors.New("the zone is this host's own (time.Local): name one")
	}
	return nil
}

// MarshalText is the window as [Window.String] writes it, which
// [ParseWindow] reads back: a plan's windows are stored and hashed so.
func (w Window) MarshalText() ([]byte, error) {
	if err := w.Check(); err != nil {
		return nil, fmt.Errorf("window %s: %w", w, err)
	}
	return []byte(w.String()), nil
}

// UnmarshalText reads a window as [ParseWindow] does.
func (w *Window) UnmarshalText(b []byte) error {
	v, err := ParseWindow(string(b))
	if err != nil {
		return err
	}
	*w = v
	return nil
}
