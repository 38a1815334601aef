package fleet

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
)

// Instance reports what one running service instance does, per migration,
// to the ledger: the stages it evaluated, its calls to the old path and its
// shadow comparisons — matched, or not (a mismatch, or a failure: a read's
// error, a timeout, a panic) — and the shadow reads it dropped. The gates
// read these heartbeats, so a failed comparison counts against consistency
// as a mismatch does; the board shows each instance's drops.
//
// An Instance is safe for concurrent use. Start begins the periodic
// heartbeat; Close stops it, sends a last one and waits.
//
// A heartbeat's times are its clock's ([WithClock]).
type Instance struct {
	db       *sqlx.DB
	dialect  dialect.Dialect
	id       string
	service  string
	build    string
	interval time.Duration
	clock    func() time.Time
	// Samples are kept for sampleAge and at most sampleRows of them per
	// migration (0: derived from the age and the interval).
	sampleAge  time.Duration
	sampleRows int
	// sampling: the ledger has its samples table (an addition outside its
	// versions, which a ledger an older build made lacks until an Ensure
	// adds it); looked for at each heartbeat until found.
	sampling atomic.Bool

	mu         sync.RWMutex
	migrations map[string]*window
	beat       sync.Mutex // one heartbeat at a time: they land in the order of their clock readings

	lastErr atomic.Pointer[error]
	life    sync.Mutex // guards stop, done, closed: Start and Close may race
	stop    context.CancelFunc
	done    chan struct{}
	closed  bool
	once    sync.Once
}

// taken is what one heartbeat took from a window.
type taken struct {
	seen                            uint32
	old, matched, mismatched, drops int64
	calls, errs                     [2]int64
	latency                         Latency
}

// window accumulates one heartbeat interval.
type window struct {
	seen       atomic.Uint32 // bit per stage
	oldCalls   atomic.Int64
	matched    atomic.Int64
	mismatched atomic.Int64
	drops      atomic.Int64    // shadow reads dropped
	calls      [2]atomic.Int64 // by dualwrite.Origin
	errs       [2]atomic.Int64
	latency    [2][Buckets]atomic.Int64
}

// Option configures an [Instance] when it is made ([NewInstance]).
type Option func(*Instance) error

// WithID names the instance (default: host/pid/random).
func WithID(id string) Option {
	return func(i *Instance) error {
		if id == "" {
			return fmt.Errorf("%w: instance id is empty", ErrInvalidArgument)
		}
		i.id = id
		return nil
	}
}

// WithHeartbeat sets the heartbeat interval (default 10s).
func WithHeartbeat(d time.Duration) Option {
	return func(i *Instance) error {
		if d <= 0 {
			return fmt.Errorf("%w: heartbeat %v is not positive", ErrInvalidArgument, d)
		}
		i.interval = d
		return nil
	}
}

// WithClock sets the clock the instance stamps its heartbeats with
// (default time.Now), read once per heartbeat and passed to the database
// as a parameter: when it was first and last seen, when it evaluated each
// stage, and its last old-path call. The coordinator's gates compare
// these with its own clock (rollout.WithClock), so a fleet and its
// coordinators should share one, or agree to well within the smaller of
// the coordinator's age-out (rollout.WithAgeOut, default one minute) and
// the plan's window: an instance whose clock is behind by more than the age-out
// looks aged out at every heartbeat, and the fleet gates do not see it.
// The heartbeat's interval is real time, whatever the clock.
func WithClock(now func() time.Time) Option {
	return func(i *Instance) error {
		if now == nil {
			return fmt.Errorf("%w: clock is nil", ErrInvalidArgument)
		}
		i.clock = now
		return nil
	}
}

// DefaultSampleAge is how long a heartbeat's samples are kept unless
// [WithSampleRetention] says otherwise.
const DefaultSampleAge = 7 * 24 * time.Hour

// WithSampleRetention sets how long the samples of an instance's
// heartbeats are kept ([Samples] reads them), and how many at most per
// migration, whatever their age: each heartbeat deletes its instance's
// samples older than age by its clock, and all but the last rows. The
// default is [DefaultSampleAge], and as many rows as the age holds at the
// heartbeat's interval, a tenth more (7 days at 10 s: 66,528): the row
// cap bounds the table when the clock stands still or heartbeats come
// faster than the interval. rows 0 keeps that default cap for the age
// given.
func WithSampleRetention(age time.Duration, rows int) Option {
	return func(i *Instance) error {
		if age <= 0 || rows < 0 {
			return fmt.Errorf("%w: sample retention %v, %d rows: the age must be positive and the rows not negative", ErrInvalidArgument, age, rows)
		}
		i.sampleAge, i.sampleRows = age, rows
		return nil
	}
}

// NewInstance returns the heartbeat of one instance of service, built as
// build, for the given migrations, sent on db, a pool of a supported
// database (a nil one, or one of another driver, is refused with
// [ErrInvalidArgument]).
func NewInstance(db Pool, service, build string, migrations []string, opts ...Option) (*Instance, error) {
	if db == nil || service == "" || build == "" {
		return nil, fmt.Errorf("new instance: %w: db, service and build are required", ErrInvalidArgument)
	}
	x, d, err := dialects.Sqlx(db)
	if err != nil {
		return nil, fmt.Errorf("new instance: %w: %w", ErrInvalidArgument, err)
	}
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand's Read never fails
	i := &Instance{db: x, dialect: d, service: service, build: build, interval: 10 * time.Second, clock: time.Now, sampleAge: DefaultSampleAge,
		id: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:])), migrations: map[string]*window{}}
	for n, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("new instance: %w: option %d is nil", ErrInvalidArgument, n+1)
		}
		if err := o(i); err != nil {
			return nil, fmt.Errorf("new instance: %w", err)
		}
	}
	if i.sampleRows == 0 {
		n := int64(i.sampleAge / i.interval)
		i.sampleRows = int(min(max(1, n+n/10), math.MaxInt32))
	}
	for _, m := range migrations {
		i.migrations[m] = &window{}
	}
	return i, nil
}

// ID returns the instance's id.
func (i *Instance) ID() string { return i.id }

// Record notes one evaluation of a migration's stage and whether the call
// took the old path.
func (i *Instance) Record(migration string, s flags.Stage, oldPath bool) {
	w := i.window(migration)
	if s.Valid() {
		for {
			old := w.seen.Load()
			if old&(1<<s) != 0 || w.seen.CompareAndSwap(old, old|1<<s) {
				break
			}
		}
	}
	if oldPath {
		w.oldCalls.Add(1)
	}
}

func (i *Instance) window(migration string) *window {
	i.mu.RLock()
	w := i.migrations[migration]
	i.mu.RUnlock()
	if w != nil {
		return w
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if w = i.migrations[migration]; w == nil {
		w = &window{}
		i.migrations[migration] = w
	}
	return w
}

// Observer returns a dualwrite observer that feeds this instance's
// heartbeat: pass it to the adapters (and to flags.WithObserver through
// dualwrite.Observers with your own).
func (i *Instance) Observer() dualwrite.Observer { return instanceObserver{i} }

type instanceObserver struct{ i *Instance }

func (o instanceObserver) ObserveCall(_ context.Context, c dualwrite.Call) {
	o.i.Record(c.Migration, c.Stage, c.Origin == dualwrite.Old)
	if c.Origin <= dualwrite.New {
		w := o.i.window(c.Migration)
		w.calls[c.Origin].Add(1)
		if c.Err != nil {
			w.errs[c.Origin].Add(1)
		}
		w.latency[c.Origin][bucketOf(c.Duration)].Add(1)
	}
}

// ObserveComparison counts a match only when both reads agreed; a failure
// (c.Fault) counts with the mismatches, so that consistency is matches over
// all comparisons, failures included.
func (o instanceObserver) ObserveComparison(_ context.Context, c dualwrite.Comparison) {
	w := o.i.window(c.Migration)
	if c.Match && c.Fault == dualwrite.NoFault {
		w.matched.Add(1)
	} else {
		w.mismatched.Add(1)
	}
}

// ObserveShadowDrop counts a shadow read that was never compared: its
// reader was full or closed. A call sampled out is not reported, so not
// counted.
func (o instanceObserver) ObserveShadowDrop(_ context.Context, d dualwrite.ShadowDrop) {
	o.i.window(d.Migration).drops.Add(1)
}

func (o instanceObserver) ObserveFallback(context.Context, flags.Fallback) {}

// Beat sends one heartbeat now, at one time of the instance's clock: the
// instance itself, and per migration what it did since the last one.
func (i *Instance) Beat(ctx context.Context) error {
	// Heartbeats are serialised, and the clock is read after what the
	// window holds is taken: whatever a heartbeat reports was recorded
	// before its time, and a later heartbeat never lands before an earlier
	// one (two at once, the background one and a caller's, would otherwise
	// stamp a stage at the time of the one that read the clock first).
	i.beat.Lock()
	defer i.beat.Unlock()
	// The transaction's own context is never cancelled: ctx ends each
	// statement, not the COMMIT. A COMMIT cut off by ctx (pgx interrupts
	// it) may have landed all the same, and its counts, given back to the
	// window as for a failure, were then counted twice (a heartbeat cut
	// off as its instance closed, resent by Close's last one).
	tx, err := i.db.BeginTxx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	i.mu.RLock()
	names := make([]string, 0, len(i.migrations))
	windows := make([]*window, 0, len(i.migrations))
	for m, w := range i.migrations {
		names, windows = append(names, m), append(windows, w)
	}
	i.mu.RUnlock()
	took := make([]taken, len(windows))
	for k, w := range windows {
		took[k] = taken{seen: w.seen.Swap(0), old: w.oldCalls.Swap(0), matched: w.matched.Swap(0), mismatched: w.mismatched.Swap(0),
			drops: w.drops.Swap(0),
			calls: [2]int64{w.calls[0].Swap(0), w.calls[1].Swap(0)}, errs: [2]int64{w.errs[0].Swap(0), w.errs[1].Swap(0)}}
		for b := range Buckets {
			took[k].latency.Old[b] = w.latency[0][b].Swap(0)
			took[k].latency.New[b] = w.latency[1][b].Swap(0)
		}
	}
	now := dialect.Tick(i.clock())
	at := dialect.Stamp(now)
	d := i.dialect
	if _, err := tx.ExecContext(ctx, d.BeatInstance(), i.id, i.service, i.build, at); err != nil {
		i.restore(windows, took)
		return fmt.Errorf("heartbeat: %w", err)
	}
	for k, m := range names {
		t := took[k]
		seen := map[string]time.Time{}
		minS, maxS := "", ""
		for _, s := range flags.Stages() {
			if t.seen&(1<<s) != 0 {
				seen[s.String()] = now
				if minS == "" {
					minS = s.String()
				}
				maxS = s.String()
			}
		}
		// The histograms add up bucket by bucket, here rather than in SQL
		// (which has no common spelling for it), under the row's lock.
		lat, err := i.storedLatency(ctx, tx, d, m)
		if err != nil {
			i.restore(windows, took)
			return fmt.Errorf("heartbeat %s: %w", m, err)
		}
		for b := range Buckets {
			lat.Old[b] += t.latency.Old[b]
			lat.New[b] += t.latency.New[b]
		}
		if _, err := tx.ExecContext(ctx, d.BeatMigration(),
			i.id, m, i.service, i.build, string(mustJSON(seen)), minS, maxS, t.old, t.matched, t.mismatched,
			t.calls[0], t.errs[0], t.calls[1], t.errs[1], string(mustJSON(lat)), t.drops, at); err != nil {
			i.restore(windows, took)
			return fmt.Errorf("heartbeat %s: %w", m, err)
		}
		if err := i.sample(ctx, tx, m, t, now); err != nil {
			i.restore(windows, took)
			return fmt.Errorf("heartbeat %s: %w", m, err)
		}
	}
	if err := tx.Commit(); err != nil {
		// Not given back: a COMMIT that failed may still have landed (the
		// connection lost as it ran), and counts sent twice would pass a
		// gate on comparisons never made. At worst one heartbeat's counts
		// are lost, on a failure the error reports.
		return fmt.Errorf("heartbeat: commit (its counts are not resent): %w", err)
	}
	return nil
}

// sample records the window t of migration as a sample at now, unless it
// saw no call and no comparison, and prunes the instance's samples of it
// to the retention: two range deletes, of what aged out since the last
// heartbeat and of what one more sample put over the cap. It runs after
// BeatMigration, whose row lock (and before it the instance's own row's)
// queues a second heartbeat of the same instance behind this one, so
// that the next number is read once.
func (i *Instance) sample(ctx context.Context, tx *sqlx.Tx, migration string, t taken, now time.Time) error {
	d := i.dialect
	if !i.sampling.Load() {
		ok, err := d.TableExists(ctx, tx, samplesTable)
		if err != nil {
			return fmt.Errorf("look for the samples table: %w", err)
		}
		if !ok {
			return nil // a ledger of an older build: totals only, until an Ensure adds the table
		}
		i.sampling.Store(true)
	}
	if _, err := tx.ExecContext(ctx, d.PruneSamplesBefore(), migration, i.id, dialect.Stamp(now.Add(-i.sampleAge))); err != nil {
		return fmt.Errorf("prune samples: %w", err)
	}
	if t.calls[0]+t.calls[1]+t.matched+t.mismatched == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, d.InsertSample(), migration, i.id, dialect.Stamp(now),
		t.calls[0], t.errs[0], t.calls[1], t.errs[1], t.matched, t.mismatched, t.latency.compact()); err != nil {
		return fmt.Errorf("record sample: %w", err)
	}
	if _, err := tx.ExecContext(ctx, d.PruneSamplesOver(), migration, i.id, i.sampleRows); err != nil {
		return fmt.Errorf("prune samples: %w", err)
	}
	return nil
}

// storedLatency reads the histograms the ledger holds for the instance
// and migration, locking the row (zero when there is none yet).
func (i *Instance) storedLatency(ctx context.Context, tx *sqlx.Tx, d dialect.Dialect, migration string) (Latency, error) {
	var p Latency
	var raw string
	err := tx.GetContext(ctx, &raw, d.LockLatency(), i.id, migration)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return p, fmt.Errorf("read latency: %w", err)
	}
	return p, nil
}

// restore puts back what a failed heartbeat took, so the next one sends it.
func (i *Instance) restore(windows []*window, took []taken) {
	for k, w := range windows {
		for {
			old := w.seen.Load()
			if w.seen.CompareAndSwap(old, old|took[k].seen) {
				break
			}
		}
		w.oldCalls.Add(took[k].old)
		w.matched.Add(took[k].matched)
		w.mismatched.Add(took[k].mismatched)
		w.drops.Add(took[k].drops)
		for o := range 2 {
			w.calls[o].Add(took[k].calls[o])
			w.errs[o].Add(took[k].errs[o])
		}
		for b := range Buckets {
			w.latency[0][b].Add(took[k].latency.Old[b])
			w.latency[1][b].Add(took[k].latency.New[b])
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Errors of an [Instance]'s life.
var (
	// ErrStarted: Start was called on an instance already started.
	ErrStarted = errors.New("instance already started")
	// ErrClosed: Start was called on an instance already closed.
	ErrClosed = errors.New("instance closed")
)

// Start sends a heartbeat every interval until Close. An instance starts
// once: a second Start, or one after Close, is refused ([ErrStarted],
// [ErrClosed]) rather than leaving a second heartbeat running.
func (i *Instance) Start(ctx context.Context) error {
	i.life.Lock()
	defer i.life.Unlock()
	switch {
	case i.closed:
		return fmt.Errorf("start instance %s: %w", i.id, ErrClosed)
	case i.stop != nil:
		return fmt.Errorf("start instance %s: %w", i.id, ErrStarted)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	i.stop = cancel
	i.done = make(chan struct{})
	done := i.done
	go func() {
		defer close(done)
		t := time.NewTicker(i.interval)
		defer t.Stop()
		for {
			if err := i.Beat(ctx); err != nil && ctx.Err() == nil {
				i.lastErr.Store(&err)
			} else if err == nil {
				i.lastErr.Store(nil)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Err returns the last heartbeat's error, or nil.
func (i *Instance) Err() error {
	if p := i.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops the heartbeat, sends a last one so nothing recorded is lost,
// and waits. It is idempotent.
func (i *Instance) Close() error {
	var err error
	i.once.Do(func() {
		i.life.Lock()
		i.closed = true
		stop, done := i.stop, i.done
		i.life.Unlock()
		if stop != nil {
			stop()
			<-done
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = i.Beat(ctx)
	})
	return err
}
