package dualwrite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/flags"
)

// ErrSecondaryWrite is wrapped by the error of a call whose authoritative
// write succeeded and whose write to the other origin failed; see
// [SecondaryWriteError].
var ErrSecondaryWrite = errors.New("secondary write failed")

// SecondaryWriteError reports a failed write to the non-authoritative
// origin. With a cross-store [Writer] the authoritative write has already
// happened; the call should be retried (writes are upserts, so a retry is
// safe) or the failure repaired.
type SecondaryWriteError struct {
	Migration string
	Stage     flags.Stage
	Origin    Origin
	Err       error
	// RepairErr is set when recording the failure for repair failed too.
	RepairErr error
}

func (e *SecondaryWriteError) Error() string {
	msg := fmt.Sprintf("%s: migration %s at %s: write %s: %v", ErrSecondaryWrite, e.Migration, e.Stage, e.Origin, e.Err)
	if e.RepairErr != nil {
		msg += fmt.Sprintf(" (record repair: %v)", e.RepairErr)
	}
	return msg
}

// Unwrap returns [ErrSecondaryWrite], the write's error and any repair error.
func (e *SecondaryWriteError) Unwrap() []error {
	errs := []error{ErrSecondaryWrite, e.Err}
	if e.RepairErr != nil {
		errs = append(errs, e.RepairErr)
	}
	return errs
}

// Repair is a non-authoritative write that failed and must be redone.
type Repair struct {
	Migration string
	Stage     flags.Stage
	// Origin is the shape whose write failed.
	Origin Origin
	// Input is what was written, as given to [Writer.Write].
	Input any
	Err   error
	At    time.Time
}

// RepairQueue records failed non-authoritative writes for a later repair
// (the backfill re-processes them). Record must be durable when it returns
// nil. Implementations must be safe for concurrent use.
type RepairQueue interface {
	Record(ctx context.Context, r Repair) error
}

// RepairQueueFunc adapts a function to a [RepairQueue].
type RepairQueueFunc func(ctx context.Context, r Repair) error

// Record calls f.
func (f RepairQueueFunc) Record(ctx context.Context, r Repair) error { return f(ctx, r) }

// repairTimeout bounds recording one repair.
const repairTimeout = 10 * time.Second

// WriteFunc writes one value to one origin. A write to the new shape must be
// an upsert of its full representation.
type WriteFunc[In any] func(ctx context.Context, in In) error

// Writer writes to the origins the stage table names for each call's stage,
// authoritative first, when the two shapes live in different stores (two
// databases, or a database and a service). For two shapes in one database
// use [TxWriter], whose writes commit together.
//
// When the authoritative write fails, its error is returned and the other
// write is not attempted. When the other write fails, the call fails with a
// [SecondaryWriteError], or, with [WithRepairQueue], the failure is recorded
// and the call succeeds.
//
// A Writer is safe for concurrent use and holds nothing to close.
type Writer[In any] struct {
	source StageSource
	write  [2]WriteFunc[In]
	cfg    *config
}

// NewWriter returns a cross-store writer.
func NewWriter[In any](source StageSource, oldWrite, newWrite WriteFunc[In], opts ...Option) (*Writer[In], error) {
	if source == nil || oldWrite == nil || newWrite == nil {
		return nil, errors.New("new writer: stage source, old and new write funcs are required")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("new writer: %w", err)
	}
	if err := cfg.forbid(cfg.readerOnly, "Writer"); err != nil {
		return nil, fmt.Errorf("new writer: %w", err)
	}
	return &Writer[In]{source: source, write: [2]WriteFunc[In]{Old: oldWrite, New: newWrite}, cfg: cfg}, nil
}

// Write writes in as the call's stage says.
func (w *Writer[In]) Write(ctx context.Context, in In) error {
	stage := w.source.Stage(ctx)
	rt := routeOf(stage)
	if err := w.call(ctx, stage, rt.authority, Authoritative, in); err != nil || !rt.secondary {
		return err
	}
	second := rt.authority.other()
	err := w.call(ctx, stage, second, Secondary, in)
	if err == nil {
		return nil
	}
	failure := &SecondaryWriteError{Migration: w.source.Migration(), Stage: stage, Origin: second, Err: err}
	if w.cfg.repairs == nil {
		return failure
	}
	// The authoritative write happened: recording its repair must not fail
	// because the caller went away.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), repairTimeout)
	defer cancel()
	failure.RepairErr = w.cfg.repairs.Record(rctx, Repair{
		Migration: failure.Migration, Stage: stage, Origin: second, Input: in, Err: err, At: w.cfg.now(),
	})
	if failure.RepairErr != nil {
		return failure
	}
	return nil
}

func (w *Writer[In]) call(ctx context.Context, stage flags.Stage, origin Origin, role Role, in In) error {
	start := w.cfg.clock()
	err := w.write[origin](ctx, in)
	w.cfg.observer.ObserveCall(ctx, Call{
		Migration: w.source.Migration(), Stage: stage, Op: Write, Origin: origin,
		Role: role, Duration: w.cfg.clock() - start, Err: err,
	})
	return err
}

// TxWriteFunc writes one value to one origin through q, which is the
// transaction when both origins are written and the database otherwise.
type TxWriteFunc[In any] func(ctx context.Context, q sqlx.ExtContext, in In) error

// DB is what a [TxWriter] needs of a database; *sqlx.DB has it.
type DB interface {
	sqlx.ExtContext
	BeginTxx(ctx context.Context, opts *sql.TxOptions) (*sqlx.Tx, error)
}

var _ DB = (*sqlx.DB)(nil)

// TxWriter writes both shapes of a value that live in one database. At the
// stages that write both, the two writes run in one transaction, in the
// order of the stage table, and commit together or not at all; at off and
// complete the one write runs on the database directly.
//
// A TxWriter is safe for concurrent use and holds nothing to close.
type TxWriter[In any] struct {
	db     DB
	source StageSource
	write  [2]TxWriteFunc[In]
	cfg    *config
}

// NewTxWriter returns a writer whose dual writes share a transaction on db.
func NewTxWriter[In any](db DB, source StageSource, oldWrite, newWrite TxWriteFunc[In], opts ...Option) (*TxWriter[In], error) {
	if db == nil || source == nil || oldWrite == nil || newWrite == nil {
		return nil, errors.New("new tx writer: db, stage source, old and new write funcs are required")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("new tx writer: %w", err)
	}
	if err := cfg.forbid(cfg.readerOnly, "TxWriter"); err != nil {
		return nil, fmt.Errorf("new tx writer: %w", err)
	}
	if err := cfg.forbid(cfg.writerOnly, "TxWriter (its writes commit together)"); err != nil {
		return nil, fmt.Errorf("new tx writer: %w", err)
	}
	return &TxWriter[In]{db: db, source: source, write: [2]TxWriteFunc[In]{Old: oldWrite, New: newWrite}, cfg: cfg}, nil
}

// Write writes in as the call's stage says. An error from either write, or
// from the commit, rolls both back and is returned; an error of the second
// write is a [SecondaryWriteError].
func (w *TxWriter[In]) Write(ctx context.Context, in In) (err error) {
	stage := w.source.Stage(ctx)
	rt := routeOf(stage)
	if !rt.secondary {
		return w.call(ctx, w.db, stage, rt.authority, Authoritative, in)
	}
	tx, err := w.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin dual write: %w", err)
	}
	// Rolled back on every way out but a commit, a panic included.
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if err := w.both(ctx, tx, stage, rt, in); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit dual write: %w", err)
	}
	return nil
}

// WriteTx writes in within the caller's transaction tx, which the caller
// commits or rolls back.
func (w *TxWriter[In]) WriteTx(ctx context.Context, tx *sqlx.Tx, in In) error {
	stage := w.source.Stage(ctx)
	rt := routeOf(stage)
	if !rt.secondary {
		return w.call(ctx, tx, stage, rt.authority, Authoritative, in)
	}
	return w.both(ctx, tx, stage, rt, in)
}

func (w *TxWriter[In]) both(ctx context.Context, tx *sqlx.Tx, stage flags.Stage, rt route, in In) error {
	if err := w.call(ctx, tx, stage, rt.authority, Authoritative, in); err != nil {
		return err
	}
	second := rt.authority.other()
	if err := w.call(ctx, tx, stage, second, Secondary, in); err != nil {
		return &SecondaryWriteError{Migration: w.source.Migration(), Stage: stage, Origin: second, Err: err}
	}
	return nil
}

func (w *TxWriter[In]) call(ctx context.Context, q sqlx.ExtContext, stage flags.Stage, origin Origin, role Role, in In) error {
	start := w.cfg.clock()
	err := w.write[origin](ctx, q, in)
	w.cfg.observer.ObserveCall(ctx, Call{
		Migration: w.source.Migration(), Stage: stage, Op: Write, Origin: origin,
		Role: role, Duration: w.cfg.clock() - start, Err: err,
	})
	return err
}
