package backfill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/schemashift/schemashift/internal/dialect"
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

	mu        sync.Mutex
	chunkSize int
	throttle  string
}

// New checks the job against the database (its table and key), creates the
// checkpoint tables if needed and registers the job. A job of the same name
// with another definition is refused with [ErrDefinitionChanged].
func New(ctx context.Context, db *sqlx.DB, job Job, opts ...Option) (*Backfill, error) {
	if db == nil {
		return nil, errors.New("new backfill: db is nil")
	}
	if err := job.validate(); err != nil {
		return nil, fmt.Errorf("new backfill: %w", err)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("new backfill %q: %w", job.Name, err)
	}
	d := dialect.Of(db)
	if err := d.CheckPool(ctx, db); err != nil {
		return nil, fmt.Errorf("new backfill %q: %w", job.Name, err)
	}
	for _, s := range o.signals {
		if s, ok := s.(dialectSignal); ok {
			if err := s.supported(); err != nil {
				return nil, fmt.Errorf("new backfill %q: %w", job.Name, err)
			}
		}
	}
	p, err := resolve(ctx, d, db, job)
	if err != nil {
		return nil, fmt.Errorf("new backfill %q: %w", job.Name, err)
	}
	b := &Backfill{db: db, job: job, opts: o, plan: p, hash: job.hash(p.keyCols), chunkSize: o.chunkSize}
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
	if _, err := register(ctx, db, job, b.hash, estimate); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Backfill) dryRender(ctx context.Context) error {
	_, err := b.statement(&args{}, span{}, nil)
	if err != nil {
		return err
	}
	// Explaining the statement checks expressions and columns without
	// touching a row.
	a := &args{}
	stmt, _ := b.statement(a, span{Lo: b.zeroKey(), Hi: b.zeroKey()}, nil)
	if b.job.Func != nil {
		return nil
	}
	tx, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only check
	if _, err := tx.ExecContext(ctx, "EXPLAIN "+stmt, a.vals...); err != nil {
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

// statement renders the chunk statement of a SQL-mode job, or the locking
// read of a Go-mode one.
func (b *Backfill) statement(a *args, s span, keys []Key) (string, error) {
	switch {
	case len(b.job.Set) > 0:
		return b.plan.setStatement(b.job, a, s, keys)
	case b.job.Into != nil:
		return b.plan.intoStatement(b.job, a, s, keys)
	default:
		return b.plan.lockStatement(b.job, a, s, keys)
	}
}

// Name returns the job's name.
func (b *Backfill) Name() string { return b.job.Name }

// State reads the job's progress without running it.
func (b *Backfill) State(ctx context.Context) (Progress, error) {
	return state(ctx, b.plan.d, b.db, b.job.Name)
}

// Run works on the job until it is done, paused past ctx, cancelled, or
// failed. It runs the configured number of workers and returns the final
// progress. While the job is paused, Run waits (polling the table); a
// cancelled job returns [ErrCancelled]. Killing the process at any point
// loses at most the chunks in flight, which the next Run (or another
// worker, once their lease expires) does again.
func (b *Backfill) Run(ctx context.Context) (Progress, error) {
	if st, err := state(ctx, b.plan.d, b.db, b.job.Name); err == nil && st.Status == Done {
		return st, nil
	}
	if _, err := b.db.ExecContext(ctx, `UPDATE schemashift_backfills SET status = CASE WHEN status = 'failed' THEN 'running' ELSE status END,
		error = CASE WHEN status = 'failed' THEN '' ELSE error END, runs = runs + 1, updated_at = `+b.plan.d.Now()+` WHERE job = $1`, b.job.Name); err != nil {
		return Progress{}, fmt.Errorf("run backfill %q: %w", b.job.Name, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	limiter := b.limiter()
	stopProgress := b.reportProgress(gctx)
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
	err := g.Wait()
	stopProgress()
	final, stateErr := state(context.WithoutCancel(ctx), b.plan.d, b.db, b.job.Name)
	if err == nil {
		err = stateErr
	}
	if err != nil && !errors.Is(err, ErrCancelled) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		_, _ = b.db.ExecContext(context.WithoutCancel(ctx), `UPDATE schemashift_backfills SET status = 'failed', error = $2, updated_at = `+b.plan.d.Now()+`
			WHERE job = $1 AND status = 'running'`, b.job.Name, err.Error())
		final.Status, final.Error = Failed, err.Error()
	}
	b.opts.observer.ObserveProgress(ctx, final)
	if b.opts.progress != nil {
		b.opts.progress(final)
	}
	return final, err
}

func (b *Backfill) limiter() *rate.Limiter {
	if b.opts.rowsPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(b.opts.rowsPerSecond), b.opts.maxChunk)
}

// reportProgress calls the progress callback and observer every interval
// until the returned stop is called.
func (b *Backfill) reportProgress(ctx context.Context) (stop func()) {
	if b.opts.progress == nil && !b.opts.observed {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(b.opts.progressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p, err := state(ctx, b.plan.d, b.db, b.job.Name)
				if err != nil {
					continue
				}
				b.mu.Lock()
				p.ChunkSize, p.Throttle = b.chunkSize, b.throttle
				b.mu.Unlock()
				b.opts.observer.ObserveProgress(ctx, p)
				if b.opts.progress != nil {
					b.opts.progress(p)
				}
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// work is one worker's loop: claim, throttle, process, adapt. It returns
// nil when the job is done; done is closed when a sibling found it so.
func (b *Backfill) work(ctx context.Context, worker string, limiter *rate.Limiter, done <-chan struct{}) error {
	for {
		if err := b.waitSignals(ctx); err != nil {
			return err
		}
		size := b.size()
		var (
			c      *chunk
			status Status
		)
		err := b.retry(ctx, "claim", func() error {
			var err error
			c, status, err = b.claim(ctx, worker, size)
			return err
		})
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
		if b.opts.afterClaim != nil {
			b.opts.afterClaim(c.Seq)
		}
		if limiter != nil {
			if err := limiter.WaitN(ctx, int(min(c.Scanned, int64(limiter.Burst())))); err != nil {
				return err
			}
		}
		start := time.Now()
		var changed int64
		err = b.retry(ctx, "chunk", func() error {
			var err error
			changed, err = b.process(ctx, worker, c, nil)
			return err
		})
		elapsed := time.Since(start)
		switch {
		case errors.Is(err, errLeaseLost):
			continue // another worker has it; its commit counts
		case err != nil:
			return fmt.Errorf("backfill %q: chunk %d: %w", b.job.Name, c.Seq, err)
		}
		b.opts.observer.ObserveChunk(ctx, Chunk{Job: b.job.Name, Seq: c.Seq, Worker: worker, Rows: c.Scanned, Changed: changed,
			Size: size, Attempt: c.Attempts, Duration: elapsed})
		b.adapt(c.Scanned, elapsed)
		if d := b.opts.dutyCycle; d < 1 {
			if err := sleep(ctx, time.Duration(float64(elapsed)*(1-d)/d)); err != nil {
				return err
			}
		}
	}
}

// process runs one chunk in one transaction with the chunk's timeouts; its
// rows and its checkpoint commit together. keys, when given, replaces the
// chunk's span (repair of single rows, no checkpoint). On SQLite the
// transaction holds the database's write lock from BEGIN, so the chunk
// reads its rows after every earlier write committed and before any later
// one: that is its row lock.
func (b *Backfill) process(ctx context.Context, worker string, c *chunk, keys []Key) (int64, error) {
	tx, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if err := b.plan.d.SetTimeouts(ctx, tx, b.opts.lockTimeout, b.opts.statementTimeout, true); err != nil {
		return 0, err
	}
	var s span
	if c != nil {
		s = c.Span
	}
	a := &args{}
	stmt, err := b.statement(a, s, keys)
	if err != nil {
		return 0, err
	}
	var changed int64
	if b.job.Func != nil {
		rows, err := tx.QueryxContext(ctx, stmt, a.vals...)
		if err != nil {
			return 0, err
		}
		var batch []map[string]any
		for rows.Next() {
			m := map[string]any{}
			if err := rows.MapScan(m); err != nil {
				rows.Close()
				return 0, err
			}
			batch = append(batch, m)
		}
		if err := rows.Err(); err != nil {
			return 0, err
		}
		if changed, err = b.job.Func(ctx, tx, batch); err != nil {
			return 0, fmt.Errorf("chunk func: %w", err)
		}
	} else {
		res, err := tx.ExecContext(ctx, stmt, a.vals...)
		if err != nil {
			return 0, err
		}
		if changed, err = res.RowsAffected(); err != nil {
			return 0, err
		}
	}
	if c != nil {
		if b.opts.beforeCommit != nil {
			b.opts.beforeCommit(c.Seq)
		}
		if err := b.finish(ctx, tx, worker, c, changed); err != nil {
			return 0, err
		}
	}
	return changed, tx.Commit()
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
		wait := backoff(b.opts.backoff, attempt)
		b.opts.observer.ObserveRetry(ctx, Retry{Job: b.job.Name, Op: what, Kind: kind.String(), Attempt: attempt, Wait: wait, Err: err})
		// Counted for the retrospective; best effort, as the database may be what failed.
		_, _ = b.db.ExecContext(ctx, `UPDATE schemashift_backfills SET retries = retries + 1 WHERE job = $1`, b.job.Name)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// backoff is exponential with full jitter, capped at 100× base.
func backoff(base time.Duration, attempt int) time.Duration {
	ceiling := float64(base) * math.Pow(2, float64(min(attempt, 20)))
	ceiling = min(ceiling, float64(base)*100)
	return time.Duration(ceiling/2 + mrand.Float64()*ceiling/2)
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
		_, _ = b.db.ExecContext(ctx, `UPDATE schemashift_backfills SET throttled_ms = throttled_ms + $2 WHERE job = $1`, b.job.Name, wait.Milliseconds())
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
		_, _ = b.db.ExecContext(context.Background(), `UPDATE schemashift_backfills SET throttle = $2 WHERE job = $1`, b.job.Name, reason)
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

// adapt steers the chunk size towards the target chunk time, at most
// doubling or halving per chunk.
func (b *Backfill) adapt(rows int64, elapsed time.Duration) {
	if rows <= 0 || elapsed <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ideal := float64(b.chunkSize) * float64(b.opts.targetChunkTime) / float64(elapsed)
	next := int(min(max(ideal, float64(b.chunkSize)/2), float64(b.chunkSize)*2))
	b.chunkSize = min(max(next, b.opts.minChunk), b.opts.maxChunk)
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
