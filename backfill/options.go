package backfill

import (
	"errors"
	"fmt"
	"time"
)

// Defaults. Out of the box a chunk holds its row locks for well under
// [DefaultMaxLockHold]: it starts at [DefaultChunkSize] rows (a few
// milliseconds on any table of ordinary width), steers towards
// [DefaultTargetChunkTime], never grows past [DefaultMaxChunk], and is cut
// at once, to below the target, by the first chunk that runs past the
// bound (see [WithMaxLockHold]).
const (
	DefaultChunkSize       = 200
	DefaultMinChunk        = 20
	DefaultMaxChunk        = 20000
	DefaultMaxLockHold     = 50 * time.Millisecond
	DefaultTargetChunkTime = DefaultMaxLockHold * 2 / 5
	DefaultLockTimeout     = DefaultMaxLockHold
	// DefaultThroughputKept is the share of the foreground's throughput
	// the default pace keeps, on a database with statistics, while they
	// show a foreground (see [WithDutyCycle]).
	DefaultThroughputKept = 0.85
	// DefaultPaceWindow is how often the default pace reads the
	// database's statistics, and so how often it changes.
	DefaultPaceWindow = 2 * time.Second
	// DefaultBusyRate is the rate of other transactions, per second, above
	// which the database's statistics count as showing a foreground.
	DefaultBusyRate         = 10
	DefaultStatementTimeout = 10 * time.Second
	DefaultLease            = 15 * time.Second
	DefaultMaxRetries       = 10
)

type options struct {
	workerID         string
	workers          int
	chunkSize        int
	minChunk         int
	maxChunk         int
	targetChunkTime  time.Duration
	maxLockHold      time.Duration
	targetSet        bool // WithTargetChunkTime given: not derived from maxLockHold
	lockTimeoutSet   bool // WithLockTimeout given: not derived from maxLockHold
	budget           *LatencyBudget
	rowsPerSecond    float64
	dutyCycle        float64
	dutySet          bool // WithDutyCycle given: no rest by the database's business
	lockTimeout      time.Duration
	statementTimeout time.Duration
	lease            time.Duration
	maxRetries       int
	backoff          time.Duration
	pollInterval     time.Duration
	signals          []Signal
	progress         func(Progress)
	progressEvery    time.Duration
	observer         Observer
	observed         bool
	now              func() time.Time
	windows          []Window                            // WithRunWindows
	windowWait       func(text string)                   // test hook: each look at the clock outside every run window
	beforeCommit     func(seq int64)                     // test hook
	afterClaim       func(seq int64)                     // test hook: between a chunk's claim and its transaction
	draining         func()                              // test hook: a reference waits for chunks in their turn
	turnWaits        func()                              // test hook: a chunk's turn waits for a reference to end
	resting          func(d time.Duration)               // test hook: a worker starts to rest d after a chunk
	reserved         func(rows, burst int, at time.Time) // test hook: each reservation on the rate limit, and when the limiter lets it go
	noRenewal        bool                                // test hook: leases are never renewed, as by a frozen worker
}

// Option configures a [Backfill].
type Option func(*options) error

func newOptions(opts []Option) (options, error) {
	o := options{
		workerID: newWorkerID(), workers: 1,
		chunkSize: DefaultChunkSize, minChunk: DefaultMinChunk, maxChunk: DefaultMaxChunk,
		maxLockHold: DefaultMaxLockHold, dutyCycle: 1,
		statementTimeout: DefaultStatementTimeout, lease: DefaultLease, maxRetries: DefaultMaxRetries,
		backoff: 50 * time.Millisecond, pollInterval: time.Second, progressEvery: time.Second,
		observer: NopObserver{}, now: time.Now,
	}
	for _, opt := range opts {
		if opt == nil {
			return o, errors.New("option is nil")
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if !o.targetSet {
		o.targetChunkTime = o.maxLockHold * 2 / 5
	}
	if !o.lockTimeoutSet {
		o.lockTimeout = o.maxLockHold
	}
	if o.minChunk > o.maxChunk {
		return o, fmt.Errorf("chunk bounds: min %d is above max %d", o.minChunk, o.maxChunk)
	}
	if o.rowsPerSecond > 0 {
		// A chunk is at most one second's rows: the limiter's burst is one
		// chunk, so no second runs more than the rate and one chunk.
		o.maxChunk = min(o.maxChunk, max(1, int(o.rowsPerSecond)))
		o.minChunk = min(o.minChunk, o.maxChunk)
	}
	o.chunkSize = min(max(o.chunkSize, o.minChunk), o.maxChunk)
	if o.statementTimeout >= o.lease {
		return o, fmt.Errorf("statement timeout %v must be shorter than the lease %v, or a chunk whose renewals stopped could outlive its lease, holding row locks its heir waits on", o.statementTimeout, o.lease)
	}
	return o, nil
}

func positive[T int | float64 | time.Duration](name string, v T) error {
	if v <= 0 {
		return fmt.Errorf("%s: %v is not positive", name, v)
	}
	return nil
}

// WithWorkerID names this process's worker(s) in leases. A restarted
// process that keeps its ID takes its own unfinished chunk back at once,
// instead of waiting for the lease to expire. Default: host/pid/random.
func WithWorkerID(id string) Option {
	return func(o *options) error {
		if id == "" {
			return errors.New("worker id is empty")
		}
		o.workerID = id
		return nil
	}
}

// WithWorkers runs n workers in this process (default 1).
func WithWorkers(n int) Option {
	return func(o *options) error { o.workers = n; return positive("workers", n) }
}

// WithChunkSize sets the first chunk's size and the bounds the adaptive
// size stays within (defaults 200, 20, 20000).
func WithChunkSize(initial, minSize, maxSize int) Option {
	return func(o *options) error {
		o.chunkSize, o.minChunk, o.maxChunk = initial, minSize, maxSize
		return errors.Join(positive("chunk size", initial), positive("min chunk", minSize), positive("max chunk", maxSize))
	}
}

// WithTargetChunkTime sets the chunk duration the adaptive size steers
// towards (default two fifths of [WithMaxLockHold]'s bound, 20ms). Shorter
// chunks hold row locks for less time (on SQLite, the database's write
// lock: writers wait for the whole chunk). A target above the bound makes
// every chunk overrun it, and be cut: set both.
func WithTargetChunkTime(d time.Duration) Option {
	return func(o *options) error {
		o.targetChunkTime, o.targetSet = d, true
		return positive("target chunk time", d)
	}
}

// WithMaxLockHold bounds how long a chunk holds its row locks, and so how
// long it can stall a foreground write to one of its rows (default 50ms;
// on SQLite, how long it holds the database's write lock, which every
// writer waits on). A chunk's transaction is timed from BEGIN to COMMIT:
// the chunk size steers towards a target below the bound (two fifths of
// it, unless [WithTargetChunkTime] says otherwise), grows by at most half
// per chunk (doubles while a chunk takes under a quarter of the target,
// quadruples under an eighth),
// and a chunk that runs past the bound cuts the next ones at
// once to the size that would have met the target, at least by half. The
// bound is also the default lock timeout ([WithLockTimeout]): a chunk that
// waits that long on a foreground row lock, holding the locks it took
// already, gives up and retries rather than queue writers behind it.
//
// What the bound cannot cover: the very first chunk, before any was timed
// ([WithChunkSize]'s initial size, 200 rows by default, is a few
// milliseconds on a table of ordinary width), and a chunk slowed by
// something outside it (a checkpoint, a cold cache) until it is timed.
func WithMaxLockHold(d time.Duration) Option {
	return func(o *options) error { o.maxLockHold = d; return positive("max lock hold", d) }
}

// WithRate limits the backfill to rowsPerSecond rows walked per second,
// shared by this Backfill's workers (each Backfill, in each process, has
// its own limit). The cap holds from the first row: a worker waits on the
// limit before it claims a chunk, never while holding one; the limit's
// burst is one chunk at the current size, and a chunk is never more than
// one second's rows (the bounds of [WithChunkSize] are lowered to fit), so
// over any second at most rowsPerSecond rows and one chunk run. The
// exceptions to the rule of waiting before a claim, each of which waits
// for the rows it walks beyond those reserved after the claim, holding
// the chunk's lease (no row lock) meanwhile: a chunk retaken from a lease
// that ran out (it keeps the rows it was first claimed with, which may be
// more than a second's), each retry of a chunk (its rows walked again),
// and a retaken open-ended tail that rows inserted since its claim grew
// (counted again before it runs; cut to a chunk if it grew past one).
func WithRate(rowsPerSecond float64) Option {
	return func(o *options) error { o.rowsPerSecond = rowsPerSecond; return positive("rate", rowsPerSecond) }
}

// WithDutyCycle makes each worker rest after every chunk, so that it works
// only the given fraction of the time (0 < d ≤ 1): a chunk of 20ms at 0.25
// is followed by 60ms of rest. On a busy primary this leaves CPU and I/O to
// the foreground whatever the chunk size.
//
// Default, on PostgreSQL: full speed while the database's statistics show
// no foreground (no more than [DefaultBusyRate] transactions a second
// besides the backfill's own, and the backfill's own rate again, as the
// statistics lag it), and, once two readings in a row show one, a pace
// that keeps [DefaultThroughputKept] of its throughput: a
// [WithLatencyBudget] of Throughput 0.85 read from the statistics every
// [DefaultPaceWindow], whose first reference (the workers rest, for a
// second and a window) is taken as the foreground arrives, and which goes
// back to full speed when a reference shows none. [Progress].Foreground
// then reads [SourceDatabase], and Pace the pace. On SQLite, 1. Given a
// duty cycle, or a [WithLatencyBudget], the backfill does not look.
// Every Run on PostgreSQL, however it paces itself, writes what its
// Backfill counted of its own transactions in schemashift_backfill_runs
// every second; each takes every other backfill's off the statistics as
// it takes its own, so that several processes on one job (or backfills
// of several jobs) do not read each other as a foreground. What one does
// to the foreground's latency the others see, and pace for. The table
// lives in the schema of the other checkpoint tables, the statistics are
// the database's: backfills whose checkpoint tables are in different
// schemas of one database still read each other as a foreground. A role
// that cannot write the table paces as if alone (the others' load then
// reads as a foreground's), and its Pace says so.
func WithDutyCycle(d float64) Option {
	return func(o *options) error {
		if !(d > 0 && d <= 1) {
			return fmt.Errorf("duty cycle: %v is outside (0, 1]", d)
		}
		o.dutyCycle, o.dutySet = d, true
		return nil
	}
}

// WithLockTimeout bounds how long a chunk waits for a row lock (default
// [WithMaxLockHold]'s bound, 50ms) before it gives up and retries: a chunk
// never queues foreground writers behind it for longer.
//
// PostgreSQL only; on SQLite the setting has no effect. SQLite has no row
// locks: a chunk waits for the database's write lock up to the
// connection's busy_timeout (sqlite.Open sets 10s), and then retries like
// a chunk that hit lock_timeout. Keep foreground waits short there with
// [WithTargetChunkTime] and [WithDutyCycle].
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) error {
		o.lockTimeout, o.lockTimeoutSet = d, true
		return positive("lock timeout", d)
	}
}

// WithStatementTimeout bounds each chunk statement (default 10s). It must
// be shorter than the lease ([WithLease]).
//
// PostgreSQL only; on SQLite, which cannot time a statement out, the
// setting has no effect: a chunk runs to its end, and its lease is checked
// when it commits.
func WithStatementTimeout(d time.Duration) Option {
	return func(o *options) error { o.statementTimeout = d; return positive("statement timeout", d) }
}

// WithLease sets how long a chunk's lease lasts unrenewed (default 15s).
// A live worker renews its chunk's lease every third of that while the
// chunk runs (on another connection), so a chunk may take longer
// than the lease; a worker that died (or stopped renewing) has its chunk
// taken over by another worker within one lease. A Run also records a
// heartbeat every third of the lease while it works or waits between
// chunks: a running job with neither an unexpired lease nor an unexpired
// heartbeat reads [Stalled].
//
// On SQLite a chunk's transaction holds the database's write lock, so
// that while it runs neither its lease's renewal nor the heartbeat can be
// written (they wait for the commit), and no other worker can take the
// chunk over either. Keep chunks well under the lease there
// ([WithTargetChunkTime]): one that runs longer reads stalled until it
// commits.
func WithLease(d time.Duration) Option {
	return func(o *options) error { o.lease = d; return positive("lease", d) }
}

// WithRetries sets how many times a chunk is retried on a retryable error
// (lock timeout, deadlock, serialization failure, statement timeout, lost
// connection; on SQLite, a write lock not had within busy_timeout) and the
// base of the jittered exponential backoff.
func WithRetries(n int, base time.Duration) Option {
	return func(o *options) error {
		o.maxRetries, o.backoff = n, base
		if n < 0 {
			return fmt.Errorf("retries: %d is negative", n)
		}
		return positive("backoff", base)
	}
}

// WithPollInterval sets how often a paused worker looks at the table again
// (default 1s).
func WithPollInterval(d time.Duration) Option {
	return func(o *options) error { o.pollInterval = d; return positive("poll interval", d) }
}

// WithSignals adds throttle signals, consulted before every chunk. A
// signal that reads what the database does not have ([ReplicationLag] on
// SQLite) makes [New] fail.
func WithSignals(s ...Signal) Option {
	return func(o *options) error {
		for _, sig := range s {
			if sig == nil {
				return errors.New("signal is nil")
			}
		}
		o.signals = append(o.signals, s...)
		return nil
	}
}

// WithProgress calls fn with the job's progress every interval while Run
// works, and once when it returns. fn runs on its own goroutine.
func WithProgress(every time.Duration, fn func(Progress)) Option {
	return func(o *options) error {
		if fn == nil {
			return errors.New("progress func is nil")
		}
		o.progress, o.progressEvery = fn, every
		return positive("progress interval", every)
	}
}

// WithObserver reports chunks, retries, throttling and progress to obs.
func WithObserver(obs Observer) Option {
	return func(o *options) error {
		if obs == nil {
			return errors.New("observer is nil")
		}
		o.observer, o.observed = obs, true
		return nil
	}
}

// WithClock sets the clock the Backfill reads (default time.Now). Every
// time it stores or decides on is the clock's, read once per decision and
// passed to the database as a parameter: a chunk's lease (when it was
// claimed, until when it is held, and whether it ran out), the Run's
// heartbeat, whether the job is [Stalled] (its State), when the job
// started, was updated and finished, and when a verification started and
// ended (which the rollout's gate compares with when the job finished).
// Workers sharing a job should share a clock: with time.Now, the hosts'
// clocks must agree to well within a lease.
//
// What measures work or waits for it runs on real time, whatever the
// clock: the rate limit, backoff, throttle waits, chunk timing (which the
// adaptive size steers by), the poll interval, and how often a lease is
// renewed and a heartbeat recorded (every third of [WithLease]'s lease).
// A clock that stands still thus makes no lease run out; a test moves it
// past a lease to make one.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("clock is nil")
		}
		o.now = now
		return nil
	}
}
