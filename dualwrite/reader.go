package dualwrite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime/debug"
	"sync"
	"time"

	"github.com/schemashift/schemashift/flags"
)

// ErrShadowTimeout is wrapped by the error of a shadow read that outlived
// its timeout.
var ErrShadowTimeout = errors.New("shadow read timed out")

// ErrShadowPanic is wrapped by the error of a shadow read (or comparison)
// that panicked; see [PanicError].
var ErrShadowPanic = errors.New("shadow read panicked")

// PanicError carries a recovered panic and its stack.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("%v: %v", ErrShadowPanic, e.Value) }

// Unwrap returns [ErrShadowPanic].
func (e *PanicError) Unwrap() error { return ErrShadowPanic }

// ReadFunc reads one value from one origin.
type ReadFunc[In, Out any] func(ctx context.Context, in In) (Out, error)

// Reader reads through the origin the stage table names for each call's
// stage. At shadow and live it also reads the other origin in the
// background, compares the two results and reports the comparison; the
// caller only ever gets the authoritative result, and never waits for the
// shadow read.
//
// A Reader is safe for concurrent use. Close it when done: Close stops new
// shadow reads, cancels those in flight and waits for them.
type Reader[In, Out any] struct {
	source StageSource
	read   [2]ReadFunc[In, Out] // by Origin
	cmp    Comparator[Out]
	cfg    *config

	cloneIn, cloneOut bool // copy what the shadow goroutine keeps reading
	quietErrors       bool // describe errors instead of quoting them: they may hold sensitive values

	slots chan struct{} // one per shadow read in flight

	life  context.Context // cancelled by Close
	close context.CancelFunc

	mu       sync.Mutex
	idle     sync.Cond // signalled when inflight drops to 0
	inflight int
	closed   bool
}

// NewReader returns a reader of the migration whose stage source yields.
// old and new read the same value from each shape.
func NewReader[In, Out any](source StageSource, oldRead, newRead ReadFunc[In, Out], opts ...Option) (*Reader[In, Out], error) {
	if source == nil || oldRead == nil || newRead == nil {
		return nil, errors.New("new reader: stage source, old and new read funcs are required")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("new reader: %w", err)
	}
	if err := cfg.forbid(cfg.writerOnly, "Reader"); err != nil {
		return nil, fmt.Errorf("new reader: %w", err)
	}
	r := &Reader[In, Out]{
		source: source,
		read:   [2]ReadFunc[In, Out]{Old: oldRead, New: newRead},
		cfg:    cfg,
		slots:  make(chan struct{}, cfg.shadowConcurrency),
	}
	r.idle.L = &r.mu
	// The reader's own lifetime, ended by Close; no caller's ctx outlives it.
	r.life, r.close = context.WithCancel(context.Background())
	red := redactor{names: make(map[string]bool, len(cfg.sensitive)), root: reflect.TypeFor[Out]()}
	for _, n := range cfg.sensitive {
		red.names[n] = true
	}
	r.quietErrors = red.active()
	r.cloneIn, r.cloneOut = needsClone(reflect.TypeFor[In]()), needsClone(reflect.TypeFor[Out]())
	switch cmp := cfg.comparator.(type) {
	case nil:
		r.cmp = deepDiff[Out](red)
	case Comparator[Out]:
		r.cmp = func(old, new Out) []Diff {
			diffs := cmp(old, new)
			for i := range diffs {
				if diffs[i].whole {
					diffs[i].Old = red.format(reflect.ValueOf(&old).Elem(), false)
					diffs[i].New = red.format(reflect.ValueOf(&new).Elem(), false)
					diffs[i].whole = false
				}
			}
			return red.redact(diffs)
		}
	default:
		var zero Out
		return nil, fmt.Errorf("new reader: WithComparator: %T does not compare %T", cmp, zero)
	}
	return r, nil
}

// Read reads in through the authoritative origin of the call's stage and
// returns its result unchanged, error included.
func (r *Reader[In, Out]) Read(ctx context.Context, in In) (out Out, err error) {
	stage := r.source.Stage(ctx)
	rt := routeOf(stage)
	if rt.shadow {
		if handoff := r.startShadow(ctx, stage, rt.authority.other(), in); handoff != nil {
			done := false
			defer func() {
				kept := out
				if done && r.cloneOut {
					kept = deepCopy(out) // the caller may change out once it has it
				}
				handoff <- authResult[Out]{out: kept, err: err, ok: done}
			}()
			out, err = r.call(ctx, stage, rt.authority, in)
			done = true
			return out, err
		}
	}
	return r.call(ctx, stage, rt.authority, in)
}

func (r *Reader[In, Out]) call(ctx context.Context, stage flags.Stage, origin Origin, in In) (Out, error) {
	start := r.cfg.clock()
	out, err := r.read[origin](ctx, in)
	r.cfg.observer.ObserveCall(ctx, Call{
		Migration: r.source.Migration(), Stage: stage, Op: Read, Origin: origin,
		Role: Authoritative, Duration: r.cfg.clock() - start, Err: err,
	})
	return out, err
}

// authResult hands the authoritative result to the shadow goroutine; ok is
// false when the authoritative read panicked.
type authResult[Out any] struct {
	out Out
	err error
	ok  bool
}

// startShadow launches the shadow read of origin, unless it is sampled out,
// the bound is reached or the reader is closed. It returns the channel on
// which the caller hands over the authoritative result, or nil.
func (r *Reader[In, Out]) startShadow(ctx context.Context, stage flags.Stage, origin Origin, in In) chan authResult[Out] {
	rate := r.cfg.sampleRate
	if rate < 1 && (rate == 0 || rand.Float64() >= rate) {
		return nil
	}
	drop := func(reason DropReason) chan authResult[Out] {
		r.cfg.observer.ObserveShadowDrop(ctx, ShadowDrop{Migration: r.source.Migration(), Stage: stage, Reason: reason})
		return nil
	}
	if r.cloneIn {
		in = deepCopy(in) // the caller may change in once Read returns
	}
	select {
	case r.slots <- struct{}{}:
	default:
		return drop(DropFull)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.slots
		return drop(DropClosed)
	}
	r.inflight++
	r.mu.Unlock()

	handoff := make(chan authResult[Out], 1)
	// The shadow read keeps the call's values (trace, evaluation context)
	// but not its cancellation: the caller returns before it ends.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.shadowTimeout)
	go func() {
		defer r.finished()
		defer cancel()
		stop := context.AfterFunc(r.life, cancel)
		defer stop()
		r.shadow(sctx, stage, origin, in, handoff)
	}()
	return handoff
}

// shadow reads origin, waits for the authoritative result and reports
// exactly one comparison (a match, a mismatch or a failure) or one drop;
// nothing when the authoritative read panicked, which is the caller's.
func (r *Reader[In, Out]) shadow(ctx context.Context, stage flags.Stage, origin Origin, in In, handoff <-chan authResult[Out]) {
	migration := r.source.Migration()
	report := func(d time.Duration, err error) {
		safely(func() {
			r.cfg.observer.ObserveCall(ctx, Call{Migration: migration, Stage: stage, Op: Read, Origin: origin, Role: ShadowRole, Duration: d, Err: err})
		})
	}
	observe := func(c Comparison) {
		c.Migration, c.Stage = migration, stage
		safely(func() { r.cfg.observer.ObserveComparison(ctx, c) })
	}
	dropped := func() {
		safely(func() {
			r.cfg.observer.ObserveShadowDrop(ctx, ShadowDrop{Migration: migration, Stage: stage, Reason: DropClosed})
		})
	}
	start := r.cfg.clock()
	out, panicked, err := r.readRecovering(ctx, origin, in)
	elapsed := r.cfg.clock() - start
	if !panicked && ctx.Err() != nil {
		// Late or cancelled: whatever it returned is not compared.
		closed := !errors.Is(ctx.Err(), context.DeadlineExceeded)
		cause := ErrShadowTimeout
		if closed {
			cause = context.Canceled
		}
		if err != nil {
			err = fmt.Errorf("%w: %w", cause, err)
		} else {
			err = cause
		}
		report(elapsed, err)
		if closed {
			dropped() // Close abandoned it: not the shadow path's failure
		} else {
			observe(Comparison{Fault: FaultTimeout})
		}
		return
	}
	report(elapsed, err)
	if panicked {
		observe(Comparison{Fault: FaultPanic})
		return
	}

	// The authoritative read always ends (it returns or panics, and Read
	// hands over either way); the shadow timeout does not apply to it.
	var auth authResult[Out]
	select {
	case auth = <-handoff: // preferred when Close races with a handed-over result
	default:
		select {
		case auth = <-handoff:
		case <-r.life.Done():
			dropped()
			return
		}
	}
	if !auth.ok {
		return
	}
	var c Comparison
	func() {
		defer func() {
			if v := recover(); v != nil {
				report(0, fmt.Errorf("compare: %w", &PanicError{Value: v, Stack: debug.Stack()}))
				c = Comparison{Fault: FaultPanic}
			}
		}()
		c = r.compare(origin, auth.out, auth.err, out, err)
		if c.Match || c.Fault != NoFault || !r.cfg.recheck {
			return
		}
		// A write that commits between the two reads looks like a
		// divergence of two values; a real one survives reading both again,
		// back to back. A failure is never rechecked: a read that fails once
		// in twenty would otherwise pass as a match nineteen times in twenty.
		authOut, authErr := r.read[origin.other()](ctx, in)
		shadowOut, shadowErr := r.read[origin](ctx, in)
		if ctx.Err() == nil {
			c = r.compare(origin, authOut, authErr, shadowOut, shadowErr)
			c.Rechecked = true
		}
	}()
	observe(c)
}

// readRecovering reads origin, turning a panic into a [PanicError].
func (r *Reader[In, Out]) readRecovering(ctx context.Context, origin Origin, in In) (out Out, panicked bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			panicked, err = true, &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	out, err = r.read[origin](ctx, in)
	return out, false, err
}

// safely runs an observer call on a shadow goroutine: an observer that
// panics there must not take the process down.
func safely(fn func()) {
	defer func() { _ = recover() }()
	fn()
}

// compare compares the authoritative result with the shadow read of origin,
// as old against new.
func (r *Reader[In, Out]) compare(shadowOrigin Origin, authOut Out, authErr error, shadowOut Out, shadowErr error) Comparison {
	if shadowOrigin == Old {
		return r.compareResults(shadowOut, authOut, shadowErr, authErr)
	}
	return r.compareResults(authOut, shadowOut, authErr, shadowErr)
}

// compareResults compares two reads, errors included: two values match
// when the comparator finds no difference; two reads that both found no
// row (sql.ErrNoRows, which pgx.ErrNoRows wraps) agree that it is absent;
// any other failure, even the same one on both sides (a database that is
// down), is a fault, never a match.
func (r *Reader[In, Out]) compareResults(old, new Out, oldErr, newErr error) Comparison {
	switch {
	case oldErr == nil && newErr == nil:
		diffs := r.cmp(old, new)
		return Comparison{Match: len(diffs) == 0, Diffs: diffs}
	case errors.Is(oldErr, sql.ErrNoRows) && errors.Is(newErr, sql.ErrNoRows):
		return Comparison{Match: true}
	}
	return Comparison{Fault: FaultError, Diffs: []Diff{{Path: "error", Old: r.describe(oldErr), New: r.describe(newErr)}}}
}

// describe renders an error for a report. When the value holds sensitive
// fields, an error's text may quote them (a unique violation names the
// key's value), so only its type and SQLSTATE are shown.
func (r *Reader[In, Out]) describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	if !r.quietErrors {
		return truncate(err.Error())
	}
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		return fmt.Sprintf("%T (SQLSTATE %s, text withheld)", coded, coded.SQLState())
	}
	return fmt.Sprintf("%T (text withheld)", err)
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func (r *Reader[In, Out]) finished() {
	<-r.slots
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight--
	if r.inflight == 0 {
		r.idle.Broadcast()
	}
}

// Wait blocks until no shadow read is in flight, without closing the
// reader. Under steady traffic that may be never: on shutdown, stop the
// traffic first, or use Close.
func (r *Reader[In, Out]) Wait() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.inflight > 0 {
		r.idle.Wait()
	}
}

// Close stops starting shadow reads, cancels those in flight and waits for
// them to return; a cancelled shadow read's call is reported with its error,
// and the read as dropped ([DropClosed]), not compared. To let them finish
// instead, call [Reader.Wait] first. Reads after Close still return the
// authoritative result. Close is idempotent.
func (r *Reader[In, Out]) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.close()
	r.Wait()
	return nil
}
