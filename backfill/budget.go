package backfill

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/schemashift/schemashift/internal/pgerr"
)

// LatencyBudget is what the foreground may lose to the backfill, relative
// to a baseline measured before the first chunk: its latency at most P99
// times the baseline's, and its throughput at least Throughput times the
// baseline's. Given one ([WithLatencyBudget]), the backfill finds on its
// own the fastest pace that keeps it, and follows it as the load changes.
type LatencyBudget struct {
	// P99 bounds the foreground's latency (its 99th percentile where the
	// signal has one) as a multiple of the baseline's: 1.5 lets it grow
	// by half. 0 leaves latency unbounded; otherwise it must be above 1.
	P99 float64
	// Throughput is the share of the baseline's throughput the foreground
	// keeps: 0.9 lets the backfill take a tenth. 0 leaves it unbounded;
	// otherwise it must be in (0, 1). A signal that cannot tell
	// throughput (a probe) holds only P99, and a window (or reference) of
	// fewer than 400 operations is not judged by its throughput: over so
	// few, a count swings by more than a budget's loss on its own.
	Throughput float64
	// Signal reads the foreground, in order of preference: the
	// application's own latencies ([ForegroundRecorder] in the process,
	// or the fleet's heartbeats, rollout's FleetForeground, whose
	// readings set the least Window and Baseline), else a probe query
	// timed ([ProbeForeground]). Nil: the database's own statistics
	// (PostgreSQL's pg_stat_database, see [SourceDatabase]; on SQLite,
	// which keeps none, [New] refuses the budget).
	Signal ForegroundSignal
	// Baseline is how long the foreground is read before the first chunk
	// (default 5s).
	Baseline time.Duration
	// Window is how long each reading spans, and so how often the pace
	// changes (default 1s; 2s for the database's statistics, which
	// sessions report at most once a second).
	Window time.Duration
}

// Foreground is one reading of the foreground over a window.
type Foreground struct {
	// Latency is the foreground's latency over the window: its 99th
	// percentile where the signal has one (see [ForegroundSignal]'s
	// Source), else what the signal says it is. 0: unknown.
	Latency time.Duration
	// Throughput is operations per second over the window; 0: unknown.
	Throughput float64
	// Ops is how many operations the reading is over.
	Ops int64
}

// ForegroundSignal reads how the foreground fares. Each Read reports the
// window since the previous one (the first Read starts the first
// window). Source names what it reads, as [Progress].Foreground shows
// it. Implementations must be safe for concurrent use.
type ForegroundSignal interface {
	Source() string
	Read(ctx context.Context) (Foreground, error)
}

// Sources of a foreground reading.
const (
	// SourceApplication is the application's own latencies, fed to a
	// [ForegroundRecorder].
	SourceApplication = "application"
	// SourceProbe is a query timed by the backfill ([ProbeForeground]).
	SourceProbe = "probe"
	// SourceDatabase is the database's statistics: PostgreSQL's
	// pg_stat_database, its transactions (xact_commit, xact_rollback) and
	// the time sessions spent running statements (active_time), less the
	// backfill's own. Its latency is the mean time of a transaction, not a
	// percentile: the budget's P99 bounds that mean, against the
	// baseline's. What the backfill takes off as its own errs low, never
	// high, so that it never hides a foreground: only the transactions
	// that reached the database, and only its chunks' statements' time
	// (timed by the database's clock, from the Execute message on: the
	// planning at Bind, which the client sees, the database does not
	// count; not taken off at all for a Set job whose table has rules).
	// Its small statements read as the foreground's,
	// and make it look a little slower; so do a Func's own statements,
	// which it cannot tell from the Func's other work: a budget read
	// from the statistics is stricter with a job run by a Func than it
	// need be (the application's own latencies are then the better
	// signal).
	SourceDatabase = "database statistics"
	// SourceFleet is the fleet's heartbeats: every instance's dual-path
	// calls and their latencies (rollout's FleetForeground).
	SourceFleet = "fleet heartbeats"
)

// minWindower is what a signal whose readings come at intervals of its
// own (heartbeats) implements: the shortest window it can be read over.
type minWindower interface {
	MinWindow() time.Duration
}

// WithLatencyBudget paces the backfill by what the foreground may lose
// (see [LatencyBudget]). Before the first chunk the Run reads the
// foreground for the budget's Baseline; then, every Window, it compares
// a reading with the baseline and sets the pace: the share of time each
// worker works, resting after each chunk for the rest (as
// [WithDutyCycle], which the budget replaces). A reading within the
// budget's set point (seven tenths of the way from the baseline to the
// limits) adds to the share a twentieth times the part of the way to the
// nearest limit still left (a twentieth at the baseline, three
// hundredths at the set point, so that the pace creeps up to it rather
// than jump past a limit), or, until a window first comes out past the
// set point, doubles it while the foreground is within half of the set
// point's distance from the baseline (a slow start, so that a light load
// is not paced up by twentieths); one past the set point takes a
// sixth off; one past a limit halves the share and the chunk size, and
// holds the pace one window before it may grow again (what the foreground
// suffered then is still in the next reading). The share starts at a
// tenth and stays within [1/100, 1]. Chunks keep to [WithMaxLockHold]'s
// bound whatever the pace; a window past the latency limit also halves
// the chunk size (a foreground write may have waited on a chunk's row
// locks), one past the throughput limit does not (smaller chunks would
// only add their fixed costs to the same share of the machine).
//
// The baseline is taken again as the backfill runs: every eighth window,
// after a window past a limit, or one better than the reference by more
// than the budget lets one be worse (latency below the reference's
// divided by P99, or throughput above 2 − Throughput of it: the
// reference was read in a dip of the foreground's own, or its load has
// grown; such a window holds the pace rather than let it climb on false
// headroom), each from the second window after the last reference on,
// and, while the last showed no foreground, as soon as
// two readings in a row see one, the workers rest (each ends the chunk
// it is in, and the rest waits for every one to; a chunk claimed
// meanwhile waits for the rest to end before it touches a row) for the
// signal's lag (a second for the
// database's statistics; a signal says its own with a Lag()
// time.Duration method) and a window, and that window's reading is the
// reference the next are judged against. A foreground whose own load
// rises is then not blamed on the backfill, nor one whose load falls
// credited to it; a reference costs the backfill an eighth of its time
// or so (more while windows come out past a limit: each such rest is one
// the backfill owed the foreground anyway).
//
// The signal in use, and the last reading against the baseline, show in
// [Progress].Foreground and [Progress].Pace. A foreground that did
// nothing during the baseline gives nothing to compare with: the backfill
// then runs at full pace, and Pace says so, until two readings in a row
// see one, when it takes a reference (see above).
func WithLatencyBudget(b LatencyBudget) Option {
	return func(o *options) error {
		if b.P99 == 0 && b.Throughput == 0 {
			return errors.New("latency budget: neither P99 nor Throughput is set")
		}
		if b.P99 != 0 && !(b.P99 > 1) {
			return fmt.Errorf("latency budget: P99 %v is not above 1", b.P99)
		}
		if b.Throughput != 0 && !(b.Throughput > 0 && b.Throughput < 1) {
			return fmt.Errorf("latency budget: Throughput %v is outside (0, 1)", b.Throughput)
		}
		if b.Baseline < 0 || b.Window < 0 {
			return errors.New("latency budget: negative baseline or window")
		}
		if p, ok := b.Signal.(probeSignal); ok && p.probe == nil {
			return errors.New("latency budget: ProbeForeground was given no probe")
		}
		var least time.Duration // the signal's shortest window
		if m, ok := b.Signal.(minWindower); ok {
			least = m.MinWindow()
		}
		if (b.Window != 0 && b.Window < least) || (b.Baseline != 0 && b.Baseline < least) {
			return fmt.Errorf("latency budget: the %s signal is read over %v at least; window %v, baseline %v", b.Signal.Source(), least, b.Window, b.Baseline)
		}
		if b.Baseline == 0 {
			b.Baseline = max(5*time.Second, least)
		}
		if b.Window == 0 {
			b.Window = time.Second
			if b.Signal == nil {
				b.Window = 2 * time.Second
			}
			b.Window = max(b.Window, least)
		}
		o.budget = &b
		return nil
	}
}

// Pace limits of the budget's controller.
const (
	paceStart = 0.1
	paceMin   = 0.01
	paceStep  = 0.05
	// setPoint is how far from the baseline towards a limit a reading may
	// be and still let the pace grow.
	setPoint = 0.7
)

// pacer is the budget's controller: it turns readings of the foreground
// into the share of time the workers work. It is a pure function of its
// readings and the times given with them, not safe for concurrent use
// (the Run's pacing loop alone calls it).
type pacer struct {
	budget LatencyBudget
	base   Foreground // the reference: the foreground with the backfill at rest
	duty   float64
	hold   time.Time // no increase before this
	probed bool      // a window came out past the set point: slow start is over
	last   Foreground
	note   string // the last verdict, for Pace
	// windows is how many windows were judged since the reference was
	// last taken.
	windows int
	// arriving counts the readings in a row that saw a foreground while
	// the reference had none.
	arriving busyStreak
	// overLast says the last window judged was past a limit.
	overLast bool
	// staleLast says the last window judged was better than the
	// reference by more than the budget lets one be worse (see stale).
	staleLast bool
	// busy tells whether a reading shows a foreground (nil: any with
	// operations in it does; see teller).
	busy func(Foreground) bool
}

// seen reports whether f shows a foreground.
func (p *pacer) seen(f Foreground) bool {
	if p.busy != nil {
		return p.busy(f)
	}
	return f.Ops > 0
}

// minJudgedOps is how many operations a window, and the reference, must
// hold for the foreground's throughput to be judged: over fewer, a count
// swings by more than a tenth on its own (one standard deviation of n
// arrivals is √n of them: a twentieth of 400), and a loss within a
// budget could not be told from noise. Below it, only latency is judged.
const minJudgedOps = 400

// referenceEvery is how many windows the pacer judges against one
// reference before it takes the next: the foreground's own load moves
// (a batch job elsewhere, the hour of the day, another tenant of the
// machine), and a reference taken once, before the backfill, would blame
// all of it on the backfill (or credit it with a load that went away).
const referenceEvery = 8

// referenceDue reports whether the next window is a reference: the
// workers rest through it, and its reading becomes the reference.
// With no foreground at the last reference, the backfill runs at full
// pace and the readings themselves tell when one arrives: a reference is
// due once busyReadings of them in a row saw one.
func (p *pacer) referenceDue() bool {
	if p.base.Ops == 0 {
		return p.arriving.n >= busyReadings
	}
	return p.windows >= referenceEvery || ((p.overLast || p.staleLast) && p.windows >= overReference)
}

// overReference is how many windows after a reference one past a limit
// makes the next window a reference: a foreground that lost throughput,
// or latency, by its own doing (a vacuum, a checkpoint, its load moving)
// reads as the backfill's doing against a reference taken before, and
// the pace would fall to its floor and stay there for the rest of the
// eight windows. Resting at once tells which it was, and is what a
// backfill past its budget should do anyway. A window better than the
// reference by as much (see stale) makes the next one a reference too.
const overReference = 2

// restart starts the count towards the next reference over: one was
// taken, or its reading failed (the next, eight windows on).
func (p *pacer) restart() {
	p.windows, p.arriving, p.overLast, p.staleLast = 0, busyStreak{}, false, false
}

// reference takes f, read over a window through which the backfill
// rested, as the new reference. A reference with no foreground sends the
// backfill to full pace until one arrives; the first with one after such
// a reference starts the pace again where a budget starts it.
func (p *pacer) reference(f Foreground) {
	p.restart()
	if !p.seen(f) {
		f = Foreground{}
	}
	switch {
	case f.Ops == 0:
		p.duty, p.note = 1, "no foreground at the reference: full pace"
	case p.base.Ops == 0:
		p.duty, p.probed, p.note = paceStart, false, "a foreground arrived: starting"
	default:
		p.note = "reference taken"
	}
	p.base = f
}

func newPacer(b LatencyBudget, base Foreground) *pacer {
	p := &pacer{budget: b, base: base, duty: paceStart}
	if base.Ops == 0 {
		p.duty, p.note = 1, "no foreground during the baseline: full pace"
	}
	return p
}

// verdict is how a reading stands against the budget.
type verdict int

const (
	within verdict = iota // within the set point: speed up
	near                  // past the set point, within the limits: ease off
	over                  // past a limit: back off
)

// judge compares f with the baseline, and tells how much of the way from
// the baseline to the nearest limit is left (1: at the baseline, 0: at
// the limit).
// latencyOver says the latency limit is the one f went past.
func (p *pacer) judge(f Foreground) (v verdict, headroom float64, latencyOver bool) {
	headroom = 1
	worse := func(ratio, limit float64, higherIsWorse bool) bool {
		if !higherIsWorse {
			ratio, limit = 2-ratio, 2-limit // 0.9 of the throughput is 1.1 of the loss
		}
		headroom = min(headroom, max(0, (limit-ratio)/(limit-1)))
		set := 1 + setPoint*(limit-1)
		switch {
		case ratio > limit:
			v = over
			return true
		case ratio > set && v == within:
			v = near
		}
		return false
	}
	if p.budget.P99 > 0 && p.base.Latency > 0 && f.Latency > 0 {
		latencyOver = worse(float64(f.Latency)/float64(p.base.Latency), p.budget.P99, true)
	}
	if p.budget.Throughput > 0 && p.base.Throughput > 0 && f.Throughput > 0 && min(p.base.Ops, f.Ops) >= minJudgedOps {
		worse(f.Throughput/p.base.Throughput, p.budget.Throughput, false)
	}
	return v, headroom, latencyOver
}

// stale reports whether f, read while the backfill worked, is better
// than the reference by more than the budget lets a reading be worse
// (latency below the reference's divided by P99, or throughput above
// 2 − Throughput of it, over enough operations to judge): the reference
// was read in a dip of the foreground's own (a checkpoint, a vacuum, a
// burst elsewhere on the machine) or its load has grown since. Judged
// against it, the readings show headroom the foreground does not have:
// the pace would climb on it and take more than the budget once the dip
// ends, until the next reference, eight windows on.
func (p *pacer) stale(f Foreground) bool {
	if p.budget.P99 > 0 && p.base.Latency > 0 && f.Latency > 0 && float64(f.Latency)*p.budget.P99 < float64(p.base.Latency) {
		return true
	}
	return p.budget.Throughput > 0 && p.base.Throughput > 0 && min(p.base.Ops, f.Ops) >= minJudgedOps &&
		f.Throughput > p.base.Throughput*(2-p.budget.Throughput)
}

// update takes the reading f of the window ending at now and returns the
// new share of time to work, and whether the chunk size must be halved:
// when the latency limit was passed, as a foreground write may have
// waited on a chunk's row locks; throughput lost is the work's share of
// the machine, which the pace alone sets (smaller chunks would only add
// their fixed costs). A reading that says the reference is stale holds
// the pace, and makes the next window a reference (from the second after
// the last on).
func (p *pacer) update(now time.Time, f Foreground) (duty float64, shrink bool) {
	p.windows++
	if p.base.Ops == 0 {
		// Full pace, unless a reading saw a foreground: then a reference
		// is due (see referenceDue).
		p.duty, p.note = 1, "no foreground: full pace"
		if p.arriving.read(p.seen(f)) {
			p.note = "a foreground is arriving: taking a reference"
		}
		return p.duty, false
	}
	p.last = f
	if f.Ops == 0 {
		// Nothing to judge by (the foreground paused): keep the pace.
		p.note = "no foreground in the window"
		return p.duty, false
	}
	v, headroom, latencyOver := p.judge(f)
	p.overLast, p.staleLast = v == over, p.stale(f)
	switch v {
	case over:
		p.probed = true
		p.duty = max(paceMin, p.duty/2)
		p.hold = now.Add(p.budget.Window)
		shrink = latencyOver
		p.note = "over budget"
	case near:
		p.probed = true
		p.duty = max(paceMin, p.duty*5/6)
		p.note = "near budget"
	default:
		if p.staleLast {
			p.note = "better than the reference: holding for another"
			break
		}
		if now.Before(p.hold) {
			p.note = "holding"
			break
		}
		if !p.probed && headroom > 1-setPoint/2 {
			// Slow start: until a window first comes out past the set
			// point, the pace doubles while the foreground is nearer the
			// baseline than the set point's half-way mark.
			p.duty = min(1, p.duty*2)
			p.note = "within budget, starting"
			break
		}
		// The step shrinks with the headroom left, so that a pace close
		// to the set point creeps up to it rather than jump past a limit.
		p.duty = min(1, p.duty+paceStep*headroom)
		p.note = "within budget"
	}
	return p.duty, shrink
}

// describe is the pace for [Progress].Pace: the share of time worked, the
// last reading against the baseline, and the verdict.
func (p *pacer) describe() string {
	s := fmt.Sprintf("duty %.2f", p.duty)
	if p.base.Ops == 0 {
		return s + ", " + p.note
	}
	if p.base.Latency > 0 && p.last.Latency > 0 {
		s += fmt.Sprintf(", latency %.2f× of %v", float64(p.last.Latency)/float64(p.base.Latency), p.base.Latency.Round(10*time.Microsecond))
	}
	if p.base.Throughput > 0 && p.last.Throughput > 0 {
		s += fmt.Sprintf(", throughput %.0f%% of %.0f/s", 100*p.last.Throughput/p.base.Throughput, p.base.Throughput)
	}
	if p.note != "" {
		s += ", " + p.note
	}
	return s
}

// ForegroundRecorder is a [ForegroundSignal] the application feeds with
// the latency of each of its operations (Observe): a dual-path adapter's
// calls, say, from a dualwrite observer's ObserveCall:
//
//	func (o obs) ObserveCall(_ context.Context, c dualwrite.Call) { o.rec.Observe(c.Duration) }
//
// Each Read reports the 99th percentile of the latencies observed since
// the previous Read, and their count over the time between the two. It
// keeps a histogram of fixed size, not the latencies: buckets a tenth
// apart on a log scale from 1µs to about 100s, so that the percentile is
// within a tenth of the truth. The project keeps its own because this is
// the one histogram it needs, reset at every read; it is safe for
// concurrent use.
type ForegroundRecorder struct {
	now func() time.Time

	mu      sync.Mutex
	counts  [recorderBuckets]int64
	n       int64
	since   time.Time
	started bool
}

const recorderBuckets = 200

// NewForegroundRecorder returns an empty recorder; now is its clock
// (nil: time.Now).
func NewForegroundRecorder(now func() time.Time) *ForegroundRecorder {
	if now == nil {
		now = time.Now
	}
	return &ForegroundRecorder{now: now}
}

// bucketOf is the histogram bucket of d: bucket i holds latencies below
// 1µs × 1.1^i.
func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us < 1 {
		return 0
	}
	return min(recorderBuckets-1, 1+int(math.Log(us)/math.Log(1.1)))
}

// bucketTop is the upper edge of bucket i.
func bucketTop(i int) time.Duration {
	return time.Duration(math.Pow(1.1, float64(i)) * float64(time.Microsecond))
}

// Observe records one operation of the foreground that took d.
func (r *ForegroundRecorder) Observe(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[bucketOf(d)]++
	r.n++
}

// Source implements [ForegroundSignal].
func (*ForegroundRecorder) Source() string { return SourceApplication }

// Read implements [ForegroundSignal].
func (r *ForegroundRecorder) Read(context.Context) (Foreground, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	f := Foreground{Ops: r.n}
	if r.started {
		if secs := now.Sub(r.since).Seconds(); secs > 0 {
			f.Throughput = float64(r.n) / secs
		}
	}
	if r.n > 0 {
		rank := int64(math.Ceil(0.99 * float64(r.n)))
		var seen int64
		for i, c := range r.counts {
			if seen += c; seen >= rank {
				f.Latency = bucketTop(i)
				break
			}
		}
	}
	r.counts, r.n, r.since, r.started = [recorderBuckets]int64{}, 0, now, true
	return f, nil
}

// ProbeForeground is a [ForegroundSignal] that times probe, a query the
// application's hot path runs (a point read of a busy table, say), n
// times a window, and reports the 95th percentile of those times as the
// latency. A budget reads it over each window with its n probes spread
// evenly across the window, so that the reading is of the whole window
// (the workers' chunks and their rests alike), not of its last moments;
// a Read of its own, outside a budget, runs them back to back. A probe
// that outlasts its share of the window is followed at once by the next;
// one that fails fails the window's reading, at the window's end.
// It cannot tell throughput: a budget read by it holds only its P99. A nil
// probe is refused by [WithLatencyBudget].
func ProbeForeground(n int, probe func(ctx context.Context) error) ForegroundSignal {
	return probeSignal{n: max(n, 1), probe: probe}
}

type probeSignal struct {
	n     int
	probe func(ctx context.Context) error
}

func (probeSignal) Source() string { return SourceProbe }

func (p probeSignal) Read(ctx context.Context) (Foreground, error) {
	return p.sample(ctx, 0)
}

// sample runs the n probes over window, the i-th (from 0) no earlier than
// (i + ½)/n of the way through it, and returns when the window is over
// (or, with window 0, when the last probe is), a probe's failure too: a
// failed reading is one a window, as a Read's after a wait for the window
// is, so that the budget backs off window by window rather than at every
// failed probe.
func (p probeSignal) sample(ctx context.Context, window time.Duration) (Foreground, error) {
	took := make([]time.Duration, 0, p.n)
	begin := time.Now()
	step := window / time.Duration(2*p.n) // divided first: a long window times many probes overflows
	for i := range p.n {
		if err := sleep(ctx, time.Until(begin.Add(step*time.Duration(2*i+1)))); err != nil {
			return Foreground{}, err
		}
		start := time.Now()
		if err := p.probe(ctx); err != nil {
			if ctx.Err() == nil {
				_ = sleep(ctx, time.Until(begin.Add(window))) // the error returned is the probe's
			}
			return Foreground{}, fmt.Errorf("foreground probe: %w", err)
		}
		took = append(took, time.Since(start))
	}
	if err := sleep(ctx, time.Until(begin.Add(window))); err != nil {
		return Foreground{}, err
	}
	slices.Sort(took)
	return Foreground{Latency: took[(len(took)-1)*95/100], Ops: int64(len(took))}, nil
}

// windowSampler is what a signal that must be read across a window (a
// probe, which sees only the moments it runs in) implements: sample
// spends the window reading, and returns its reading at the window's
// end, in place of a wait for the window and a Read.
type windowSampler interface {
	sample(ctx context.Context, window time.Duration) (Foreground, error)
}

// readWindow waits for a window of sig's and returns its reading: a
// windowSampler's sample over it, else the Read after it (sig's previous
// Read opened the window).
func readWindow(ctx context.Context, sig ForegroundSignal, window time.Duration) (Foreground, error) {
	if s, ok := sig.(windowSampler); ok {
		return s.sample(ctx, window)
	}
	if err := sleep(ctx, window); err != nil {
		return Foreground{}, err
	}
	return sig.Read(ctx)
}

// dbForeground reads the foreground from the database's statistics, less
// what the backfill's own transactions add to them (counted by the
// Backfill as it runs them: see ownTx, ownActive), and less what every
// other backfill adds (any process's, any job's), which each writes in
// schemashift_backfill_runs every [runBoardEvery] (see runBoard):
// several processes on one job would otherwise read each other's chunks
// as a foreground and rest for one another.
type dbForeground struct {
	b *Backfill

	mu    sync.Mutex
	prev  dbStats
	valid bool
	// owed is how many of the backfills' transactions were taken off a
	// reading before the statistics showed them (see others).
	owed int64
	// ownRate is the rate of the backfills' transactions (this one's and
	// the others') over the last reading's window.
	ownRate float64
	// boardErr is why the other backfills' load could not be read at the
	// last reading ("" when it was): their transactions then count as a
	// foreground's, as they did before the board.
	boardErr string
}

func newDBForeground(b *Backfill) *dbForeground { return &dbForeground{b: b} }

// counted adds n to the transactions the Backfill counts of its own
// when err says its statements ran in the database: they succeeded, or a
// session ran them and raised an error of theirs (a transaction it
// rolled back, which its statistics count all the same). One that never
// ran counts nothing: a connection lost, refused (even with a SQLSTATE
// of the database's, a FATAL one: a role at its connection limit, a
// server shutting down, which count no transaction), a context ended, no
// connection to be had. Counted, it would be taken off the foreground's
// transactions in the statistics, which never saw it, and hide as many
// of them. One whose answer was lost on its way back, or a FATAL the
// database did count, reads as a foreground's: the safe side.
func (b *Backfill) counted(n int64, err error) {
	if err == nil || pgerr.Ran(err) {
		b.ownTx.Add(n)
	}
}

// busy implements teller: the statistics lag what the backfills count of
// their own by up to a second, so others must exceed [DefaultBusyRate] and
// the backfills' own rate again to be a foreground, or a backfill alone
// would read its own lag as one. The rule decides only whether there is
// a foreground at all (at a baseline, a reference, or while there was
// none); a reading judged against a reference with one is judged whole,
// however small.
func (s *dbForeground) busy(f Foreground) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f.Ops > 0 && f.Throughput > DefaultBusyRate+s.ownRate
}

// teller is what a signal whose readings may count what is not a
// foreground implements: whether a reading shows one.
type teller interface {
	busy(f Foreground) bool
}

// warner is what a signal that may read with part of what it reads
// missing implements: what is missing, for the pace's description; ""
// when nothing is.
type warner interface {
	warning() string
}

func (s *dbForeground) warning() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.boardErr == "" {
		return ""
	}
	return "other backfills' load unread (" + s.boardErr + ")"
}

type dbStats struct {
	at        time.Time
	xacts     int64
	activeMS  float64
	ownTx     int64
	ownActive time.Duration
	runs      map[string]runLoad // the other backfills', as they last wrote them
}

// runLoad is what a backfill counted of its own: transactions, and its
// statements' time.
type runLoad struct {
	xacts  int64
	active time.Duration
}

// since is what the other backfills did between two readings: of each in
// both, the difference. One seen for the first time counts nothing: all
// it had counted by then may be older than the window (a Backfill run
// again, a row written again after a gap); its next row counts.
func since(prev, cur map[string]runLoad) (d runLoad) {
	for run, c := range cur {
		p, ok := prev[run]
		if !ok {
			continue
		}
		d.xacts += max(0, c.xacts-p.xacts)
		d.active += max(0, c.active-p.active)
	}
	return d
}

func (*dbForeground) Source() string { return SourceDatabase }

func (s *dbForeground) Read(ctx context.Context) (Foreground, error) {
	runs, boardErr := s.b.board.publish(ctx)
	if s.b.board != nil {
		s.b.counted(1, boardErr)
	}
	var row struct {
		Xacts  int64   `db:"xacts"`
		Active float64 `db:"active_ms"`
	}
	err := s.b.db.GetContext(ctx, &row, s.b.plan.d.BackfillForegroundStats())
	s.b.counted(1, err) // as the statistics will count it, after this reading
	if err != nil {
		return Foreground{}, fmt.Errorf("foreground from the database's statistics: %w", err)
	}
	cur := dbStats{at: time.Now(), xacts: row.Xacts, activeMS: row.Active,
		ownTx: s.b.ownTx.Load(), ownActive: time.Duration(s.b.ownActive.Load()), runs: runs}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.boardErr = ""
	if boardErr != nil {
		// Best effort: without the board the others' load reads as a
		// foreground's, which the pace's description says. The next
		// reading of it counts nothing of theirs (each seen as for the
		// first time): a delta from the last map would span two windows
		// of theirs against one of the statistics, and hide as much of a
		// foreground.
		s.boardErr = boardErr.Error()
		cur.runs = nil
	}
	prev, valid := s.prev, s.valid
	s.prev, s.valid = cur, true
	if !valid {
		return Foreground{}, nil
	}
	theirs := since(prev.runs, cur.runs)
	own := cur.ownTx - prev.ownTx + theirs.xacts
	var ops int64
	ops, s.owed = others(cur.xacts-prev.xacts, own, s.owed)
	activeMS := (cur.activeMS - prev.activeMS) - float64(cur.ownActive-prev.ownActive+theirs.active)/float64(time.Millisecond)
	secs := cur.at.Sub(prev.at).Seconds()
	if secs <= 0 {
		return Foreground{}, nil
	}
	s.ownRate = float64(own) / secs
	f := Foreground{Ops: ops}
	if ops > 0 {
		f.Throughput = float64(ops) / secs
		if activeMS > 0 {
			f.Latency = time.Duration(activeMS / float64(ops) * float64(time.Millisecond))
		}
	}
	return f, nil
}

// runBoardEvery is how often each Run writes its load in
// schemashift_backfill_runs, whatever its pace: the statistics' own step
// (a session reports its counts at most once a second), and no longer
// than any reading's window, so that each reading finds every other
// backfill's row moved by what it did over about the same window.
const runBoardEvery = time.Second

// runBoardKept is how long a row outlives its last writing before a
// Run, as it starts, removes it. A row no longer written (its Run over) counts
// nothing (its counts no longer move), so it may stay that long.
const runBoardKept = time.Minute

// runBoard is a Backfill's row in schemashift_backfill_runs.
type runBoard struct {
	b   *Backfill
	run string
}

// publish writes the Backfill's load as it stands and reads the others'
// (a nil board: none). The statement is one transaction of its own,
// which the caller counts.
func (r *runBoard) publish(ctx context.Context) (map[string]runLoad, error) {
	if r == nil {
		return nil, nil
	}
	rows, err := r.b.db.QueryxContext(ctx, r.b.plan.d.BackfillRunLoad(), r.run, r.b.job.Name, r.b.ownTx.Load(),
		time.Duration(r.b.ownActive.Load()).Microseconds(), runBoardKept.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("the other backfills' load: %w", err)
	}
	defer rows.Close()
	runs := map[string]runLoad{}
	for rows.Next() {
		var (
			run             string
			xacts, activeUS int64
		)
		if err := rows.Scan(&run, &xacts, &activeUS); err != nil {
			return nil, fmt.Errorf("the other backfills' load: %w", err)
		}
		runs[run] = runLoad{xacts: xacts, active: time.Duration(activeUS) * time.Microsecond}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("the other backfills' load: %w", err)
	}
	return runs, nil
}

// publishing writes the Backfill's load every [runBoardEvery] until the
// returned stop is called (which waits for it), however it paces itself
// (a duty cycle given, a budget with a signal of its own, or the
// statistics), so that the backfills that read the statistics take it
// off them.
func (b *Backfill) publishing(ctx context.Context) (stop func()) {
	if b.board == nil {
		return func() {}
	}
	write := func(ctx context.Context) bool {
		// Best effort: a lost write is made good by the next, whose
		// counts are the Backfill's since it began.
		_, err := b.board.publish(ctx)
		b.counted(1, err)
		return true
	}
	// The rows kept past their time, removed as a Run starts: in a
	// statement of its own, which never waits on another's rows (in the
	// writes' statement it could deadlock with another's).
	_, err := b.db.ExecContext(ctx, b.plan.d.BackfillRunsGone())
	b.counted(1, err)
	write(ctx)
	stopWriting := every(ctx, runBoardEvery, write)
	return func() {
		stopWriting()
		// The last counts, as the Run ends (cancelled or not): without
		// them, what it did since its last writing would be taken off
		// whatever window first reads its next row (another Run's).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), runBoardEvery)
		defer cancel()
		write(ctx)
	}
}

// maxOwed bounds what others carries: the backfill's own count may run
// ahead of what it really sent (a statement it counts that an error cut
// short), and an unbounded debt would hide a foreground for as long.
const maxOwed = 64

// others is how many of xacts, the transactions the statistics counted
// since the last reading, were not the backfill's own (own of them, as it
// counted them itself), given owed from the last reading, and what it
// owes now. The statistics lag what the backfill counts: a session
// reports its counts at most once a second, and one that went idle may
// hold them longer. So own transactions taken off a reading that did not
// show them yet are owed, and taken off the readings that do, rather
// than lost: without the debt, the backfill alone reads its own counts,
// arriving late, as a foreground, and rests for nothing.
func others(xacts, own, owed int64) (ops, owes int64) {
	ops = xacts - own - owed
	if ops < 0 {
		return 0, min(-ops, maxOwed)
	}
	return ops, 0
}

// dutyNow is the share of time a worker works: the budget's pace, or
// [WithDutyCycle]'s.
func (b *Backfill) dutyNow() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.duty
}

// signal is the budget's foreground signal: its own, or the database's
// statistics.
func (b *Backfill) signal() ForegroundSignal {
	if s := b.opts.budget.Signal; s != nil {
		return s
	}
	return newDBForeground(b)
}

// setPace records the pace, in memory and in the job's row (best effort:
// the next window's record makes good a lost one).
func (b *Backfill) setPace(ctx context.Context, source, pace string, duty float64) {
	b.mu.Lock()
	if duty != b.duty && b.paced != nil {
		close(b.paced)
		b.paced = nil
	}
	b.foreground, b.pace, b.duty = source, pace, duty
	switch {
	case duty > 0:
		b.wake()
	case b.resting == nil:
		b.resting = make(chan struct{})
	}
	b.mu.Unlock()
	_, err := b.db.ExecContext(ctx, b.plan.d.BackfillPace(), b.job.Name, source, pace)
	b.counted(1, err)
}

// startPacing, given a latency budget, reads the foreground's baseline
// (the budget's Baseline, before any chunk runs), then starts the loop
// that sets the pace every Window, until the returned stop is called
// (which waits for it). Without one, on a database with statistics, it
// starts the default pace (see keepThroughput); given a duty cycle, or on
// a database without, it clears what an earlier Run recorded.
func (b *Backfill) startPacing(ctx context.Context) (stop func(), err error) {
	bud := b.opts.budget
	if bud == nil {
		if b.plan.d.BackfillForegroundStats() == "" {
			b.setPace(ctx, "", "", b.opts.dutyCycle)
			return func() {}, nil
		}
		if b.opts.dutySet {
			b.setPace(ctx, "", "", b.opts.dutyCycle)
			return func() {}, nil
		}
		return b.keepThroughput(ctx), nil
	}
	return b.budgeted(ctx, b.signal(), bud)
}

// budgeted reads sig's baseline for bud, then follows it.
func (b *Backfill) budgeted(ctx context.Context, sig ForegroundSignal, bud *LatencyBudget) (stop func(), err error) {
	b.setPace(ctx, sig.Source(), "measuring the baseline", paceStart)
	if _, ok := sig.(windowSampler); !ok {
		if _, err := sig.Read(ctx); err != nil { // opens the baseline's window
			return nil, fmt.Errorf("latency budget: baseline: %w", err)
		}
	}
	base, err := readWindow(ctx, sig, bud.Baseline)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("latency budget: baseline: %w", err)
	}
	if t, ok := sig.(teller); ok && !t.busy(base) {
		base = Foreground{}
	}
	return b.follow(ctx, sig, newPacer(*bud, base)), nil
}

// keepThroughput is the default pace on a database with statistics: a
// budget of [DefaultThroughputKept] of the foreground's throughput, read
// from the statistics every [DefaultPaceWindow], that starts at full
// pace with no baseline measured first (a backfill alone on its
// database loses nothing to one). Two readings in a row that show a
// foreground (see dbForeground) make it take a reference, and pace from
// there as a budget does; a reference with none sends it back to full
// pace.
func (b *Backfill) keepThroughput(ctx context.Context) (stop func()) {
	sig := newDBForeground(b)
	p := newPacer(LatencyBudget{Throughput: DefaultThroughputKept, Window: DefaultPaceWindow}, Foreground{})
	p.note = "no foreground seen yet: full pace"
	if _, err := sig.Read(ctx); err != nil {
		// Unknown is not idle: the next readings, if they fail too, halve
		// the pace each time.
		p.duty, p.note = DefaultThroughputKept, "statistics unreadable: "+err.Error()
	}
	return b.follow(ctx, sig, p)
}

// follow sets the pace from p's verdict on a reading of sig every
// window, and takes p's references when they are due, until the returned
// stop is called (which waits for it).
func (b *Backfill) follow(ctx context.Context, sig ForegroundSignal, p *pacer) (stop func()) {
	bud := p.budget
	if t, ok := sig.(teller); ok {
		p.busy = t.busy
	}
	w, _ := sig.(warner)
	describe := func() string {
		d := p.describe()
		if w != nil {
			if s := w.warning(); s != "" {
				d += "; " + s
			}
		}
		return d
	}
	b.setPace(ctx, sig.Source(), describe(), p.duty)
	lag := time.Duration(0)
	if l, ok := sig.(lagger); ok {
		lag = l.Lag()
	}
	_, sampled := sig.(windowSampler)
	return b.pacing(ctx, func(ctx context.Context) error {
		f, err := readWindow(ctx, sig, bud.Window)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// Unknown is not within budget: back off as if over it.
			p.windows++
			p.duty = max(paceMin, p.duty/2)
			p.note = "signal error: " + err.Error()
			b.setPace(ctx, sig.Source(), describe(), p.duty)
			return nil
		}
		duty, shrink := p.update(time.Now(), f)
		if shrink {
			b.shrink()
		}
		b.setPace(ctx, sig.Source(), describe(), duty)
		if !p.referenceDue() {
			return nil
		}
		// A reference: the workers rest (each ends the chunk it is in,
		// within the lock bound, and the window waits for them to) for
		// the signal's lag, then a window, read as the foreground
		// without the backfill.
		b.setPace(ctx, sig.Source(), fmt.Sprintf("duty 0, taking a reference (then %.2f)", p.duty), 0)
		if err := b.drain(ctx); err != nil {
			return err
		}
		if err := sleep(ctx, lag); err != nil {
			return err
		}
		if !sampled {
			if _, err := sig.Read(ctx); err != nil { // opens the reference's window
				p.restart()
				b.setPace(ctx, sig.Source(), describe(), p.duty)
				return nil
			}
		}
		f, err = readWindow(ctx, sig, bud.Window)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			p.restart()
		} else {
			p.reference(f)
		}
		b.setPace(ctx, sig.Source(), describe(), p.duty)
		return nil
	})
}

// pacing runs turn over and over, in a goroutine of its own, until ctx
// ends, turn fails, or the returned stop is called (which waits for it);
// then it lets resting workers go.
func (b *Backfill) pacing(ctx context.Context, turn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for turn(ctx) == nil {
		}
	})
	return func() {
		cancel()
		wg.Wait()
		b.mu.Lock()
		b.wake()
		b.mu.Unlock()
	}
}

// lagger is what a signal that reports the foreground late implements:
// how late. A budget's reference rests that long before its window.
type lagger interface {
	Lag() time.Duration
}

// Lag implements lagger: sessions report their counts at most once a
// second, so a window read from the statistics starts a second late.
func (*dbForeground) Lag() time.Duration { return time.Second }

// waitWhileResting waits while the pace is 0 (a reference being taken).
func (b *Backfill) waitWhileResting(ctx context.Context) error {
	b.mu.Lock()
	ch := b.resting
	b.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-ch:
		return nil
	}
}

// startTurn starts a worker's turn at a claimed chunk, which lasts until
// the returned end is called (a second call does nothing): from before
// the chunk's first statement to its commit, or its end however it
// ended. A turn waits while the pace is 0: a chunk claimed as a
// reference began waits for it to end before it touches a row. The claim
// itself locks no row of the table and is not in the turn.
func (b *Backfill) startTurn(ctx context.Context) (end func(), err error) {
	for {
		b.mu.Lock()
		ch := b.resting
		if ch == nil {
			b.working++
			b.mu.Unlock()
			ended := false
			return func() {
				if ended {
					return
				}
				ended = true
				b.mu.Lock()
				defer b.mu.Unlock()
				if b.working--; b.working == 0 && b.drained != nil {
					close(b.drained)
					b.drained = nil
				}
			}, nil
		}
		b.mu.Unlock()
		if b.opts.turnWaits != nil {
			b.opts.turnWaits()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// drain waits, the pace at 0, until no worker is in a chunk's turn, so
// that a reference's window opens with every chunk that ran into it
// ended: one still running would count against the foreground at rest
// (the rows it locks, the machine it takes), and the budget would take
// its own load for the foreground's. The pace at 0, no turn starts
// meanwhile (see startTurn).
func (b *Backfill) drain(ctx context.Context) error {
	b.mu.Lock()
	if b.working == 0 {
		b.mu.Unlock()
		return nil
	}
	if b.drained == nil {
		b.drained = make(chan struct{})
	}
	ch := b.drained
	b.mu.Unlock()
	if b.opts.draining != nil {
		b.opts.draining()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-ch:
		return nil
	}
}

// wake lets workers resting on a pace of 0 go; b.mu is held.
func (b *Backfill) wake() {
	if b.resting != nil {
		close(b.resting)
		b.resting = nil
	}
}

// busyReadings is how many readings in a row must show a foreground,
// while the last reference showed none, before a reference is taken (see
// busyStreak).
const busyReadings = 2

// busyStreak turns readings into whether a foreground arrived: it did
// once busyReadings readings in a row showed one, and not at the first
// that did not. One reading alone is not enough: what the backfill's own
// sessions did not count (a statement's preparation on a new connection,
// a ping of one that idled) arrives in bursts in the database's
// statistics, and one more window of full pace under a real foreground
// is one of chunks each already bounded by [WithMaxLockHold].
type busyStreak struct{ n int }

func (s *busyStreak) read(busy bool) bool {
	if !busy {
		s.n = 0
		return false
	}
	s.n = min(s.n+1, busyReadings)
	return s.n >= busyReadings
}
