package backfill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/schemashift/schemashift/internal/backoff"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/pgerr"
)

// Backfill runs one [Job] against a database. Several Backfills of the same
// job, in one process or many, share its chunks through leases. A Backfill
// is safe for concurrent use; it starts goroutines only inside Run, which
// waits for them, so there is nothing to close.
type Backfill struct {
	db   *sqlx.DB
	job  Job
	opts options
	plan *plan
	hash string

	mu         sync.Mutex
	chunkSize  int
	growth     float64 // the chunk size's growth at the last chunk (see lookSizes)
	throttle   string
	duty       float64       // the latency budget's pace: the share of time a worker works
	foreground string        // the budget's signal's source
	pace       string        // the budget's pace, described
	resting    chan struct{} // while the pace is 0: closed when it is not
	working    int           // workers in a chunk's turn (see startTurn)
	drained    chan struct{} // closed when working falls to 0 (see drain)
	paced      chan struct{} // closed when the pace next changes (see rest)
	window     string        // where the job stands among its run windows (see waitWindow)
	windowSet  bool          // window was recorded in the job's row

	// What the backfill's own transactions add to the database's
	// statistics, which a budget read by them takes off: only what
	// reached the database (see counted), and of the time, only what its
	// chunks' statements spent in it (see process). Counted high, either
	// would hide as much of a foreground.
	ownTx     atomic.Int64
	ownActive atomic.Int64 // nanoseconds
	// board is this Backfill's row in schemashift_backfill_runs, where it
	// writes those counts for other backfills to take off (nil without
	// statistics): one for the Backfill, whatever its Runs, as the counts
	// are.
	board *runBoard
}

// New checks the job against the database (its table and key), creates the
// checkpoint tables if needed and registers the job. A job of the same name
// with another definition is refused with [ErrDefinitionChanged].
func New(ctx context.Context, pool Pool, job Job, opts ...Option) (*Backfill, error) {
	if pool == nil {
		return nil, errors.New("new backfill: db is nil")
	}
	db, d, err := dialects.Sqlx(pool)
	if err != nil {
		return nil, fmt.Errorf("new backfill %q: %w", job.Name, err)
	}
	if err := job.validate(d); err != nil {
		return nil, fmt.Errorf("new backfill: %w", err)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("new backfill %q: %w", job.Name, err)
	}
	if err := d.CheckPool(ctx, db); err != nil {
		return nil, fmt.Errorf("new backfill %q: %w", job.Name, err)
	}
	if o.budget != nil && o.budget.Signal == nil && d.BackfillForegroundStats() == "" {
		return nil, fmt.Errorf("new backfill %q: latency budget: the database keeps no statistics to read the foreground by; give the budget a Signal: %w", job.Name, errors.ErrUnsupported)
	}
	for _, s := range o.signals {
		if s, ok := s.(dialectSignal); ok {
			if err := s.supported(ctx, db, d); err != nil {
				return nil, fmt.Errorf("new backfill %q: %w", job.Name, err)
			}
		}
	}
	p, err := resolve(ctx, d, db, job)
	if err != nil {
		return nil, fmt.Errorf("new backfill %q: %w", job.Name, err)
	}
	b := &Backfill{db: db, job: job, opts: o, plan: p, hash: job.hash(p.keyCols), chunkSize: o.chunkSize, duty: o.dutyCycle}
	if p.d.BackfillRunLoad() != "" {
		b.board = &runBoard{b: b, run: newWorkerID()}
	}
	// Statements are rendered once here so that a bad expression fails now.
	if err := b.dryRender(ctx); err != nil {
		return nil, fmt.Errorf("new backfill %q: %w", job.Name, err)
	}
	if err := EnsureSchema(ctx, db); err != nil {
		return nil, err
	}
	estimate, err := b.estimate(ctx)
	if err != nil {
		return nil, fmt.Errorf("new backfill %q: estimate rows: %w", job.Name, err)
	}
	if _, err := register(ctx, d, db, job, b.hash, estimate, b.now()); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Backfill) dryRender(ctx context.Context) error {
	if _, _, err := b.statement(span{}); err != nil {
		return err
	}
	// Explaining the statement checks expressions and columns without
	// touching a row.
	stmt, vals, _ := b.statement(span{Lo: b.zeroKey(), Hi: b.zeroKey()})
	if b.job.Func != nil {
		return nil
	}
	tx, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only check
	if _, err := tx.ExecContext(ctx, b.plan.d.BackfillExplain(stmt), vals...); err != nil {
		return fmt.Errorf("check chunk statement: %w", err)
	}
	return nil
}

// zeroKey is a key that every key type casts from: used only to check
// statements with EXPLAIN.
func (b *Backfill) zeroKey() Key {
	k := make(Key, len(b.plan.keyCols))
	for i, t := range b.plan.keyTypes {
		switch t {
		case "uuid":
			k[i] = "00000000-0000-0000-0000-000000000000"
		case "date", "timestamp without time zone", "timestamp with time zone":
			k[i] = "2000-01-01"
		default:
			k[i] = "0"
		}
	}
	return k
}

// estimate is the planner's row estimate, or a count where there is none
// (a table never analyzed, or SQLite).
func (b *Backfill) estimate(ctx context.Context) (int64, error) {
	est, err := b.plan.d.EstimateRows(ctx, b.db, b.plan.table)
	if err != nil {
		return 0, err
	}
	if est > 0 {
		return est, nil
	}
	return b.plan.count(ctx, b.db, span{})
}

// statement renders the chunk statement of a SQL-mode job over s, or the
// locking read of a Go-mode one, with its parameters.
func (b *Backfill) statement(s span) (string, []any, error) {
	shape, vals := s.bounds()
	var stmt string
	var err error
	switch {
	case len(b.job.Set) > 0:
		stmt, err = b.plan.setStatement(b.job, shape)
	case b.job.Into != nil:
		stmt, err = b.plan.intoStatement(b.job, shape)
	default:
		stmt, err = b.plan.lockStatement(b.job, shape)
	}
	return stmt, vals, err
}

// Name returns the job's name.
func (b *Backfill) Name() string { return b.job.Name }

// State reads the job's progress without running it, judged at the
// Backfill's clock ([WithClock]).
func (b *Backfill) State(ctx context.Context) (Progress, error) {
	return state(ctx, b.plan.d, b.db, b.job.Name, b.now())
}

// Run works on the job until it is done, paused past ctx, cancelled, or
// failed. It runs the configured number of workers and returns the final
// progress. While the job is paused, Run waits (polling the table); a
// cancelled job returns [ErrCancelled]. Killing the process at any point
// loses at most the chunks in flight, which the next Run with the same
// worker ID takes back at once, and any other worker once their leases
// run out (within [WithLease]'s lease: a live worker renews them). While
// it runs, Run records a heartbeat, so that the job does not read
// [Stalled]; it starts goroutines for it and for each chunk's lease, and
// waits for them before it returns.
func (b *Backfill) Run(ctx context.Context) (Progress, error) {
	if st, err := b.State(ctx); err == nil && st.Status == Done {
		return st, nil
	}
	if _, err := b.db.ExecContext(ctx, b.plan.d.BackfillStart(), b.job.Name, dialect.Stamp(b.now())); err != nil {
		return Progress{}, fmt.Errorf("run backfill %q: %w", b.job.Name, err)
	}
	// The table may have gained rules since New (see timeBy).
	if err := b.plan.timeBy(ctx, b.db); err != nil {
		return Progress{}, fmt.Errorf("run backfill %q: %w", b.job.Name, err)
	}
	if err := b.beat(ctx); err != nil {
		return Progress{}, fmt.Errorf("run backfill %q: heartbeat: %w", b.job.Name, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	limiter := b.limiter()
	stopHeartbeat := b.heartbeat(gctx)
	stopPublishing := b.publishing(gctx)
	stopProgress := b.reportProgress(gctx)
	stopPacing, err := b.startPacing(gctx)
	if err != nil {
		stopProgress()
		stopPublishing()
		stopHeartbeat()
		return Progress{}, fmt.Errorf("run backfill %q: %w", b.job.Name, err)
	}
	// The first worker to see the job done wakes the others waiting on its
	// last leases, so Run returns then, not a poll interval later.
	done := make(chan struct{})
	var once sync.Once
	for i := range b.opts.workers {
		worker := b.opts.workerID
		if b.opts.workers > 1 {
			worker += "/" + strconv.Itoa(i)
		}
		g.Go(func() error {
			err := b.work(gctx, worker, limiter, done)
			if err == nil {
				once.Do(func() { close(done) })
			}
			return err
		})
	}
	err = g.Wait()
	stopProgress()
	stopPacing()
	stopPublishing()
	stopHeartbeat()
	final, stateErr := b.State(context.WithoutCancel(ctx))
	if err == nil {
		err = stateErr
	}
	if err != nil && !errors.Is(err, ErrCancelled) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		_, _ = b.db.ExecContext(context.WithoutCancel(ctx), b.plan.d.BackfillFail(), b.job.Name, err.Error(), dialect.Stamp(b.now()))
		final.Status, final.Error = Failed, err.Error()
	}
	b.opts.observer.ObserveProgress(ctx, final)
	if b.opts.progress != nil {
		b.opts.progress(final)
	}
	return final, err
}

// limiter is the rate limit of one Run, shared by its workers. Its burst
// is set to the chunk size at each reservation (see reserve).
func (b *Backfill) limiter() *rate.Limiter {
	if b.opts.rowsPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(b.opts.rowsPerSecond), b.size())
}

// reserve waits until the rate limit allows one chunk at the current size,
// and returns that size. The burst is set to the size first, under the
// same lock as the size is read and changed, so that the limiter never
// holds more than one chunk's rows: at most the rate and one chunk run in
// any second, from the first.
func (b *Backfill) reserve(ctx context.Context, limiter *rate.Limiter) (int, error) {
	if limiter == nil {
		return b.size(), nil
	}
	b.mu.Lock()
	size := b.chunkSize
	now := time.Now()
	limiter.SetBurstAt(now, size)
	r := limiter.ReserveN(now, size)
	b.mu.Unlock()
	return size, b.waitFor(ctx, limiter, r, size, now)
}

// charge waits until the rate limit lets rows more go, for an attempt
// at a chunk that walks more rows than were reserved for it: one
// retaken from a lease that ran out keeps the rows it was first claimed
// with, which a worker whose size is smaller now (or another Run's)
// reserved; a retry walks them all again; a retaken tail walks the rows
// inserted since its claim (counted again: see boundTail). Rows inserted
// inside a span between its claim and its statement are walked
// uncharged, as a chunk's run lets them in. The rate is on the rows
// walked. The burst is raised to rows if it is less, for as long as the
// next reserve.
func (b *Backfill) charge(ctx context.Context, limiter *rate.Limiter, rows int) error {
	if limiter == nil || rows <= 0 {
		return nil
	}
	b.mu.Lock()
	now := time.Now()
	if rows > limiter.Burst() {
		limiter.SetBurstAt(now, rows)
	}
	r := limiter.ReserveN(now, rows)
	b.mu.Unlock()
	return b.waitFor(ctx, limiter, r, rows, now)
}

// waitFor waits for reservation r of rows, made at now, to be let go; it
// gives it back if ctx ends first.
func (b *Backfill) waitFor(ctx context.Context, limiter *rate.Limiter, r *rate.Reservation, rows int, now time.Time) error {
	delay := r.DelayFrom(now)
	if b.opts.reserved != nil {
		b.opts.reserved(rows, limiter.Burst(), now.Add(delay))
	}
	if err := sleep(ctx, delay); err != nil {
		r.Cancel()
		return err
	}
	return nil
}

// every runs fn every d, in a goroutine of its own, until ctx ends, fn
// returns false, or the returned stop is called (which waits for it).
func every(ctx context.Context, d time.Duration, fn func(ctx context.Context) bool) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if !fn(ctx) {
					return
				}
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// heartbeat records, every third of the lease until stop is called, that
// this Run lives (see [Stalled]).
func (b *Backfill) heartbeat(ctx context.Context) (stop func()) {
	return every(ctx, b.opts.lease/3, func(ctx context.Context) bool {
		// Best effort: a beat lost to a passing database error is made
		// good by the next, a third of a lease later.
		b.counted(1, b.beat(ctx))
		return true
	})
}

// holdLease renews worker's lease on c every third of the lease, on
// another of the pool's connections than the chunk's transaction, until
// stop is called (which waits for it). The
// returned context is ctx, cancelled with errLeaseLost as its cause when a
// renewal finds the lease gone to another worker, so that the chunk stops
// working for nothing. A renewal that fails is tried again at the next
// tick: the commit's check (finish) keeps the chunk from committing twice
// whatever happens to the renewals.
func (b *Backfill) holdLease(ctx context.Context, worker string, c *chunk) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if b.opts.noRenewal {
		return ctx, func() { cancel(nil) }
	}
	period := b.opts.lease / 3
	stopRenew := every(ctx, period, func(ctx context.Context) bool {
		rctx, done := context.WithTimeout(ctx, period)
		held, err := b.renew(rctx, worker, c)
		done()
		b.counted(1, err)
		if err == nil && !held {
			cancel(errLeaseLost)
			return false
		}
		return true
	})
	return ctx, func() { stopRenew(); cancel(nil) }
}

// reportProgress calls the progress callback and observer every interval
// until the returned stop is called.
func (b *Backfill) reportProgress(ctx context.Context) (stop func()) {
	if b.opts.progress == nil && !b.opts.observed {
		return func() {}
	}
	return every(ctx, b.opts.progressEvery, func(ctx context.Context) bool {
		p, err := b.State(ctx)
		if err != nil {
			return true // the next report may succeed
		}
		b.ownTx.Add(1)
		b.mu.Lock()
		p.ChunkSize, p.Throttle, p.Foreground, p.Pace = b.chunkSize, b.throttle, b.foreground, b.pace
		b.mu.Unlock()
		b.opts.observer.ObserveProgress(ctx, p)
		if b.opts.progress != nil {
			b.opts.progress(p)
		}
		return true
	})
}

// work is one worker's loop: throttle, claim, process, adapt. It waits on
// signals and on the rate limit before it claims a chunk, so that it holds
// no lease while it waits. It returns nil when the job is done; done is
// closed when a sibling found it so.
func (b *Backfill) work(ctx context.Context, worker string, limiter *rate.Limiter, done <-chan struct{}) error {
	// The next chunk's boundary, looked for while this chunk runs.
	var next *lookahead
	defer func() { next.wait() }()
	busy := false // the last turn ran a chunk
	for {
		switch err := b.waitWindow(ctx, worker, done); {
		case errors.Is(err, errJobDone):
			return nil
		case err != nil:
			return err
		}
		if err := b.waitSignals(ctx); err != nil {
			return err
		}
		if err := b.waitWhileResting(ctx); err != nil {
			return err
		}
		size, err := b.reserve(ctx, limiter)
		if err != nil {
			return err
		}
		var (
			c      *chunk
			status Status
		)
		err = b.retry(ctx, "claim", func() error {
			var err error
			guesses, short := next.result()
			c, status, err = b.claim(ctx, worker, size, guesses, short, busy)
			return err
		})
		next, busy = nil, false
		switch {
		case errors.Is(err, errNoChunk):
			if err := sleepUntil(ctx, b.opts.pollInterval, done); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("backfill %q: claim chunk: %w", b.job.Name, err)
		}
		switch status {
		case Done:
			return nil
		case Cancelled:
			return fmt.Errorf("backfill %q: %w", b.job.Name, ErrCancelled)
		case Paused, Failed:
			b.setThrottle(string(status))
			if err := sleep(ctx, b.opts.pollInterval); err != nil {
				return err
			}
			continue
		}
		if c == nil {
			continue
		}
		if c.Span.Hi != nil && b.opts.workers == 1 {
			// With siblings, one of them moves the frontier first as a
			// rule, and the guess would be a walk for nothing.
			next = b.lookAhead(ctx, c.Span.Hi, b.lookSizes(int(c.Scanned)))
		}
		if err := b.runChunk(ctx, worker, c, size, limiter); err != nil {
			return err
		}
		busy = true
	}
}

// runChunk processes a claimed chunk, holding its lease meanwhile, then
// adapts the chunk size and rests for the duty cycle. A retaken
// open-ended tail is first cut to a chunk if it grew (see boundTail).
// Under a rate, each attempt at it waits first for the limit to let go
// the rows it walks beyond those already reserved (see charge). A chunk
// that lost its lease, or whose job stopped running, is not an error:
// the loop goes on (and its next claim sees the job's status).
func (b *Backfill) runChunk(ctx context.Context, worker string, c *chunk, size int, limiter *rate.Limiter) error {
	cctx, stopLease := b.holdLease(ctx, worker, c)
	if b.opts.afterClaim != nil {
		b.opts.afterClaim(c.Seq)
	}
	endTurn, err := b.startTurn(ctx)
	if err != nil {
		stopLease()
		return err
	}
	defer endTurn()
	start := time.Now()
	var (
		changed int64
		busy    time.Duration
	)
	reserved, bounded := size, !c.Retaken || c.Span.Hi != nil
	err = b.retry(cctx, "chunk", func() error {
		if !bounded {
			if err := b.boundTail(cctx, worker, c, size); err != nil {
				return err
			}
			bounded = true
		}
		// Each attempt walks the chunk's rows: the first as many as
		// were reserved for its claim, each retry all of them again.
		if err := b.charge(cctx, limiter, int(c.Scanned)-reserved); err != nil {
			return err
		}
		reserved = 0
		var err error
		changed, busy, err = b.process(cctx, worker, c)
		if err != nil && b.retimed(cctx, err) {
			b.counted(1, err) // the attempt that failed
			changed, busy, err = b.process(cctx, worker, c)
		}
		return err
	})
	elapsed := time.Since(start)
	// The claim's transaction, which committed, and the chunk's, if it
	// reached the database (a look-ahead, the claim's idle check and a
	// retry's failed attempts count their own).
	b.ownTx.Add(1)
	b.counted(1, err)
	if err == nil {
		b.ownActive.Add(int64(busy))
	}
	stopLease()
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(cctx), errLeaseLost) {
		err = errLeaseLost
	}
	switch {
	case errors.Is(err, errLeaseLost):
		return nil // another worker has it; its commit counts
	case errors.Is(err, errNotRunning):
		// Given back, so that whoever resumes the job takes it at once. A
		// lease not given back only makes that wait for it to run out.
		_ = b.release(ctx, worker, c)
		return nil
	case err != nil:
		return fmt.Errorf("backfill %q: chunk %d: %w", b.job.Name, c.Seq, err)
	}
	b.opts.observer.ObserveChunk(ctx, Chunk{Job: b.job.Name, Seq: c.Seq, Worker: worker, Rows: c.Scanned, Changed: changed,
		Size: size, Attempt: c.Attempts, Duration: elapsed})
	b.adapt(c.Scanned, elapsed)
	endTurn()
	return b.rest(ctx, elapsed)
}

// retimed reports whether err refused a chunk's statement timed by the
// database because its table gained rules after the Run read them (a
// data-modifying WITH over a table with DO ALSO rules is not supported),
// having read them again: the chunk is then run again, unwrapped, and so
// are the chunks after it (see timeNone). Before, every chunk failed
// until the next Run read the rules.
func (b *Backfill) retimed(ctx context.Context, err error) bool {
	if b.plan.timing.Load() != timeServer || !pgerr.FeatureNotSupported(err) {
		return false
	}
	if b.plan.timeBy(ctx, b.db) != nil {
		return false // the error returned is the chunk's
	}
	return b.plan.timing.Load() != timeServer
}

// rest waits, after a chunk that took elapsed, for as long as the pace
// asks: elapsed × (1 − d) / d at a share d of the time worked. The pace
// may change meanwhile (at 0.01 a worker rests 99 times its chunk): the
// rest is measured again against each new pace, so that one raised ends
// it at once when it has lasted long enough. At 0 it ends: the next turn
// waits for the pace to return (see waitWhileResting).
func (b *Backfill) rest(ctx context.Context, elapsed time.Duration) error {
	start := time.Now()
	for {
		b.mu.Lock()
		d := b.duty
		if b.paced == nil {
			b.paced = make(chan struct{})
		}
		changed := b.paced
		b.mu.Unlock()
		if d <= 0 || d >= 1 {
			return nil
		}
		left := time.Duration(float64(elapsed)*(1-d)/d) - time.Since(start)
		if left <= 0 {
			return nil
		}
		if b.opts.resting != nil {
			b.opts.resting(left)
		}
		if err := sleepUntil(ctx, left, changed); err != nil {
			return err
		}
	}
}

// process runs one chunk in one transaction with the chunk's timeouts; its
// rows and its checkpoint commit together. A chunk checks that its job
// still runs before its statement and again before it commits (see
// running): a pause or cancel stops it there. On SQLite the transaction
// holds the database's write lock from BEGIN, so the chunk reads its rows
// after every earlier write committed and before any later one: that is
// its row lock.
//
// busy is what the chunk's statement spent in the database, for the
// budget to take off the statistics' active time. On PostgreSQL a Set or
// Into statement times itself by the database's clock, from the Execute
// message to the end of its work (see fill), and a Func's read of its
// rows to the last row read. Its time at the client, less a round trip,
// counted its planning at Bind too, which PostgreSQL does not count as
// active on the extended protocol: over 1,000 partitions 1.9 to 2.9
// times what it counted, over 1,000 inheriting tables 17 times, and on
// PostgreSQL 18 a little more even over a plain table (70ms taken off
// where 67.6ms were counted). Timed by the database, the statement costs
// a little more (its RETURNING made one worker about 4% slower). A
// Set job's table with rules refuses an UPDATE inside a WITH: the
// statement runs as it is there, and none of its time is taken off. The
// catalog is read at New and as each Run starts, and again by a chunk
// refused for rules the table gained during the Run (see retimed). On
// SQLite, which keeps no statistics, it is the time at the client less a round trip (the
// chunk's check's time, a statement that does next to nothing). It
// leaves out on purpose what the database does not count as active
// (the waits for a connection, the gaps between statements, a Func's own
// work) and the small statements around it: taken off, more than the
// database counted would hide as much of the foreground's latency, while
// left in, they only make it read a little slower. A Func's statements
// are left in the same way: only the read of its rows is timed.
func (b *Backfill) process(ctx context.Context, worker string, c *chunk) (changed int64, busy time.Duration, err error) {
	tx, err := b.beginChunk(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	// A pause or cancel that came after the claim stops the chunk before
	// its statement.
	//
	// A worker frozen past its lease (its renewals stopped with it) runs
	// no statement over a chunk another took over: it would hold the
	// rows' locks until its commit found the lease gone, and over an
	// open-ended tail that the other cut since, every row past the cut.
	// A tail cut by another attempt at it (a process with this worker's
	// ID, or this one's commit that went unanswered) is walked as cut.
	// Both read in one statement without a lock, so that the lease's
	// renewals never wait on the chunk's transaction: finish's check is
	// the one that decides.
	start := time.Now()
	cut, err := b.checkChunk(ctx, tx, worker, c)
	if err != nil {
		return 0, 0, err
	}
	trip := time.Since(start)
	if cut != nil {
		*c = *cut
	}
	if b.job.Func != nil && b.job.Check != nil {
		// The rows first, locked, then which of them have a target row, in
		// a snapshot taken after the locks: one statement would re-read a
		// row written while it waited, but judge its target row in the
		// snapshot from before the write.
		if err := b.plan.lockSpan(ctx, tx, c.Span); err != nil {
			return 0, 0, err
		}
	}
	changed, busy, err = b.fill(ctx, tx, c.Span, trip)
	if err != nil {
		return 0, 0, err
	}
	if b.opts.beforeCommit != nil {
		b.opts.beforeCommit(c.Seq)
	}
	if err := b.finish(ctx, tx, worker, c, changed); err != nil {
		return 0, 0, err
	}
	return changed, busy, tx.Commit()
}

// fill does a chunk's work over s in tx: the Set or Into statement, or
// Func over the span's unfilled rows (which a move locks first, see
// process), and returns how many rows it changed, and busy, how long its
// statement ran in the database (see process): by the database's own
// clock where the dialect reads it ([dialect.BackfillQueries]
// BackfillTimed; for Func, the read of its rows to the last row read),
// nothing where the table's rules refuse that, else its time at the
// client less trip, a round trip (for Func, the read of its rows to
// their first answer). Func's own time is never in it.
func (b *Backfill) fill(ctx context.Context, tx *sqlx.Tx, s span, trip time.Duration) (changed int64, busy time.Duration, err error) {
	stmt, vals, err := b.statement(s)
	if err != nil {
		return 0, 0, err
	}
	if b.job.Func == nil {
		timing := b.plan.timing.Load()
		if timing == timeServer {
			var micros int64
			if err := tx.QueryRowxContext(ctx, b.plan.d.BackfillTimed(stmt), vals...).Scan(&changed, &micros); err != nil {
				return 0, 0, err
			}
			return changed, time.Duration(micros) * time.Microsecond, nil
		}
		start := time.Now()
		res, err := tx.ExecContext(ctx, stmt, vals...)
		if err != nil {
			return 0, 0, err
		}
		if timing == timeClient {
			busy = max(0, time.Since(start)-trip)
		}
		changed, err = res.RowsAffected()
		return changed, busy, err
	}
	// Timed to the statement's first answer only: the client's decoding
	// of the rows, long after the database sent them, would be most of
	// the rest.
	start := time.Now()
	rows, err := scanRowsTimed(ctx, tx, stmt, vals, func() { busy = max(0, time.Since(start)-trip) })
	if err != nil {
		return 0, 0, err
	}
	if len(rows) > 0 {
		if _, ok := rows[0][b.plan.timedAs]; ok {
			// Timed by the database (see lockStatement): to the last row
			// read. The column is none of the job's, nor a key.
			busy = 0
			for _, r := range rows {
				if us, ok := r[b.plan.timedAs].(int64); ok {
					busy = max(busy, time.Duration(us)*time.Microsecond)
				}
				delete(r, b.plan.timedAs)
			}
		}
	}
	changed, err = b.job.Func(ctx, tx, rows)
	if err != nil {
		return 0, 0, fmt.Errorf("chunk func: %w", err)
	}
	return changed, busy, nil
}

// beginChunk begins the transaction of a chunk (or of a repair's batch),
// with the chunk's lock and statement timeouts.
func (b *Backfill) beginChunk(ctx context.Context) (*sqlx.Tx, error) {
	tx, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := b.plan.d.SetTimeouts(ctx, tx, b.opts.lockTimeout, b.opts.statementTimeout, true); err != nil {
		_ = tx.Rollback() // the error returned is the one that matters
		return nil, err
	}
	return tx, nil
}

// retry runs fn until it succeeds, fails with an error that retrying cannot
// fix, or the retries run out; between tries it backs off with jitter. A
// statement timeout also halves the chunk size for the chunks to come.
func (b *Backfill) retry(ctx context.Context, what string, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		kind := pgerr.Classify(err)
		if err == nil || !kind.Retryable() || attempt > b.opts.maxRetries {
			return err
		}
		if kind == pgerr.StatementTimeout {
			b.shrink()
		}
		b.counted(1, err) // the attempt that failed
		wait := backoff.Wait(b.opts.backoff, attempt, 100*b.opts.backoff)
		b.opts.observer.ObserveRetry(ctx, Retry{Job: b.job.Name, Op: what, Kind: kind.String(), Attempt: attempt, Wait: wait, Err: err})
		// Counted for the retrospective; best effort, as the database may
		// be what failed. A connection the pool kept may have died with
		// the one that failed (a failover ends them all): each one found
		// dead is dropped, and the count tried again on another, a few
		// times.
		for range 4 {
			_, err := b.db.ExecContext(ctx, b.plan.d.BackfillRetried(), b.job.Name)
			b.counted(1, err)
			if pgerr.Classify(err) != pgerr.Connection {
				break
			}
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (b *Backfill) waitSignals(ctx context.Context) error {
	for {
		var wait time.Duration
		var reason string
		for _, s := range b.opts.signals {
			th, err := s.Throttle(ctx)
			if err != nil {
				th = Throttle{Wait: b.opts.pollInterval, Reason: "signal error: " + err.Error()}
			}
			if th.Wait > wait {
				wait, reason = th.Wait, th.Reason
			}
		}
		if wait <= 0 {
			b.setThrottle("")
			return nil
		}
		b.setThrottle(reason)
		b.shrink()
		b.opts.observer.ObserveThrottle(ctx, Throttle{Job: b.job.Name, Wait: wait, Reason: reason})
		_, err := b.db.ExecContext(ctx, b.plan.d.BackfillThrottled(), b.job.Name, wait.Milliseconds())
		b.counted(1, err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (b *Backfill) setThrottle(reason string) {
	b.mu.Lock()
	changed := b.throttle != reason
	b.throttle = reason
	b.mu.Unlock()
	if changed {
		_, err := b.db.ExecContext(context.Background(), b.plan.d.BackfillThrottle(), b.job.Name, reason)
		b.counted(1, err)
	}
}

func (b *Backfill) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.chunkSize
}

func (b *Backfill) shrink() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.chunkSize = max(b.opts.minChunk, b.chunkSize/2)
}

// adapt steers the chunk size towards the target chunk time from the
// chunk of rows that took elapsed: up by at most half per chunk (double
// while a chunk takes under a quarter of the target, quadruple under an
// eighth), down by
// at most half while the chunk stayed within [WithMaxLockHold]'s bound,
// and, once one ran past it, down at once to the size that would have met
// the target (at least halved): the multiplicative decrease that keeps one
// slow chunk from being followed by another.
func (b *Backfill) adapt(rows int64, elapsed time.Duration) {
	if rows <= 0 || elapsed <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	next := nextChunkSize(b.chunkSize, rows, elapsed, b.opts)
	b.growth = float64(next) / float64(min(int64(b.chunkSize), rows))
	b.chunkSize = next
}

// lookSizes are the chunk sizes, ascending, a look-ahead after a chunk of
// rows rows finds boundaries for: rows itself and, as the chunk size may
// grow after it as much as it did after the last one (before any, by as
// much as it can), the sizes it grows to on the way, up to the ceiling.
func (b *Backfill) lookSizes(rows int) []int {
	b.mu.Lock()
	g := b.growth
	b.mu.Unlock()
	if g == 0 {
		g = 4
	}
	sizes := []int{rows}
	// The growth again, and the steps the sizing takes on the way to it.
	for _, f := range []float64{g, 1.5, 2, 4} {
		if f > g+1e-9 {
			continue
		}
		if n := min(int(f*float64(rows)), b.opts.maxChunk); n > rows && !slices.Contains(sizes, n) {
			sizes = append(sizes, n)
		}
	}
	slices.Sort(sizes)
	return sizes
}

// nextChunkSize is adapt's arithmetic: the size after a chunk of size
// (asked) that walked rows in elapsed.
func nextChunkSize(size int, rows int64, elapsed time.Duration, o options) int {
	target := float64(o.targetChunkTime)
	// The rows walked, not the size asked: a tail chunk, or one whose
	// boundary a look-ahead found for a smaller size, is smaller, and its
	// time says nothing of the size asked.
	cur := float64(size)
	if rows < int64(size) {
		cur = float64(rows)
	}
	ideal := cur * target / float64(elapsed)
	var next float64
	switch {
	case elapsed > o.maxLockHold:
		next = min(ideal, cur/2)
	case ideal < cur:
		next = max(ideal, cur/2)
	case elapsed < o.targetChunkTime/8:
		// Far below the target: four times the rows take at most half
		// of it, at the rate this chunk ran (which its fixed costs only
		// understate).
		next = min(ideal, cur*4)
	case elapsed < o.targetChunkTime/4:
		next = min(ideal, cur*2)
	default:
		next = min(ideal, cur*1.5)
	}
	return min(max(int(next), o.minChunk), o.maxChunk)
}

func sleep(ctx context.Context, d time.Duration) error { return sleepUntil(ctx, d, nil) }

// sleepUntil waits d, or less when wake is closed first.
func sleepUntil(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case <-wake:
		return nil
	}
}

func newWorkerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
