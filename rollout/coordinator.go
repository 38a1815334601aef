package rollout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/internal/pgerr"
	"github.com/schemashift/schemashift/ledger"
)

// Errors a caller can branch on.
var (
	// ErrGateRefused is wrapped by a [RefusedError].
	ErrGateRefused = errors.New("gate refused")
	// ErrConflict: the migration moved since the caller read it (another
	// coordinator won).
	ErrConflict = errors.New("migration changed since it was read")
	// ErrIrreversible: the contract is applied, or has begun (its
	// operations may have run); nothing moves back.
	ErrIrreversible = errors.New("migration is contracted")
	// ErrConfirmRequired: the contract step needs explicit confirmation.
	ErrConfirmRequired = errors.New("the contract step is irreversible and needs confirmation")
	// ErrReasonRequired: a forced transition needs a reason.
	ErrReasonRequired = errors.New("a forced transition needs a reason")
)

// RefusedError says which condition of a gate is unmet. It is a value,
// safe to share.
type RefusedError struct {
	Migration string
	From, To  ledger.Phase
	Gate      string
	Reason    string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: %s → %s of %s: %s: %s", ErrGateRefused, e.From, e.To, e.Migration, e.Gate, e.Reason)
}

// Unwrap returns [ErrGateRefused].
func (e *RefusedError) Unwrap() error { return ErrGateRefused }

// Request asks for one transition. It is a value: a Request may be
// reused, and shared by callers that do not change it.
type Request struct {
	Migration string
	// Version, when set, is the version the caller read: the transition is
	// refused with [ErrConflict] if the migration moved since.
	Version int64
	// ToOff makes a rollback go straight back to expanded (stage off)
	// instead of one phase back. At expanded, a rollback undoes the expand.
	ToOff  bool
	Actor  string
	Reason string
	// Force skips the gate (not the contract's confirmation); it needs a
	// reason and is recorded as forced.
	Force bool
	// Confirm acknowledges that the contract step is irreversible.
	Confirm bool
	// Acknowledge clears a tripped guardrail so that the migration may
	// advance again: the operator has looked at why it tripped.
	Acknowledge bool

	trip string // set by a guardrail: recorded with the rollback, atomically
}

// Coordinator moves migrations through their phases. It is safe for
// concurrent use, from any number of processes: every transition is a
// compare-and-set on the ledger row. It holds nothing to close.
//
// Pool rule: a transition ([Coordinator.Advance], [Coordinator.Rollback],
// a guardrail's step back) needs one connection of the pool, which it
// holds from the migration's lock to its end and runs everything on (the
// ledger transaction, the gate's reads, the ddl operations, concurrent
// index builds included, the audit trail). So any pool size works, one
// connection included: n transitions at once hold at most n connections
// and wait for one otherwise, never for a second while holding one. On
// PostgreSQL the lock is a session advisory lock on that connection; on
// SQLite it is a leased row that holds no connection.
//
// Every time it decides on or stores is its clock's ([WithClock]).
type Coordinator struct {
	db      *sqlx.DB
	dialect dialect.Dialect
	plans   map[string]Plan
	ageOut  time.Duration
	trips   TripObserver
	clock   func() time.Time
	// grace is how long a ledger transaction outlives its caller's
	// context (see begin).
	grace time.Duration
	// unrecorded, set on the copy a transition works through, holds the
	// events its connection could not take.
	unrecorded *[]ledger.Event
	// pool is the coordinator's own pool, on the copy a transition works
	// through (whose db is its one connection): for a read the lost
	// connection cannot make.
	pool *sqlx.DB
	// checks are the milestone checks' functions and, on a transition's
	// copy, its runs to record (see check.go).
	checks checkSet
	// readOnly: opened by OpenReadOnly, it records nothing of its own
	// accord (a sunset seen overdue).
	readOnly bool
	// notices are the notices waiting for the notifier ([WithNotifier]).
	notices *noticeQueue
	// deadlinesTold are the deadline notices told (see noticeDeadline):
	// shared by a coordinator's copies.
	deadlinesTold *sync.Map
}

const defaultAgeOut = time.Minute

// defaultCommitGrace is [WithCommitGrace]'s default.
const defaultCommitGrace = 2 * time.Second

// WithCommitGrace sets how long a transition's COMMIT may go on after the
// caller's context ended (default 2s). A COMMIT cut off the moment the
// context ends may have landed all the same, and the caller, told of an
// error, would take a transition made for one refused; one that hangs (a
// synchronous standby gone) must not hold the migration's lock forever
// either. Past the grace the COMMIT is cancelled, and the transition reads
// the ledger again to say whether it was made ([ErrOutcomeUnknown] when
// it cannot tell).
func WithCommitGrace(d time.Duration) CoordinatorOption {
	return func(c *Coordinator) error {
		if d <= 0 {
			return fmt.Errorf("%w: commit grace %v is not positive", ErrInvalidArgument, d)
		}
		c.grace = d
		return nil
	}
}

// CoordinatorOption configures a [Coordinator] when it is made.
type CoordinatorOption func(*Coordinator) error

// WithAgeOut sets after how long without a heartbeat an instance no longer
// counts as live (default 1m).
func WithAgeOut(d time.Duration) CoordinatorOption {
	return func(c *Coordinator) error {
		if d <= 0 {
			return fmt.Errorf("%w: age out %v is not positive", ErrInvalidArgument, d)
		}
		c.ageOut = d
		return nil
	}
}

// WithClock sets the clock the coordinator reads (default time.Now).
// Every time it decides on is the clock's, read once per decision and
// passed to the database as a parameter, never the database's now(): the
// fleet's windows (how long an instance has been seen, which stages it
// evaluated within the plan's window, its last old-path call) and which
// instances aged out ([WithAgeOut]); when a phase began (phase_since) and
// the ledger row was updated; the time of each event it records, of a
// guardrail's [Trip] and of a recorded query plan; the deadline of
// [Coordinator.AdvanceWhenMet]; the board's times; a retrospective's
// current phase; whether a backfill is stalled; and, on SQLite, the lease
// of the migration's lock. The backfills and verifications it runs
// ([Coordinator.RunBackfills], [Coordinator.VerifyBackfills]) get it
// through backfill.WithClock, so that the gate to shadow compares when a
// verification started with when its job finished on one clock.
//
// The instances' heartbeats are stamped by theirs ([fleet.WithClock]):
// a fleet and its coordinators should share one, and with time.Now their
// hosts' clocks must agree to well within the smaller of the age-out
// ([WithAgeOut], default one minute) and the plan's window: an instance
// whose clock is behind by more than the age-out looks aged out at every
// heartbeat, and the fleet gates do not see it. A clock that stands
// still lets no window pass: a test moves it instead of waiting. What
// waits runs on real time, whatever the clock: the poll of AdvanceWhenMet,
// the interval of [Coordinator.Watch], lock retries and renewals.
func WithClock(now func() time.Time) CoordinatorOption {
	return func(c *Coordinator) error {
		if now == nil {
			return fmt.Errorf("%w: clock is nil", ErrInvalidArgument)
		}
		c.clock = now
		return nil
	}
}

// now reads the coordinator's clock once, at the microsecond the database
// keeps.
func (c *Coordinator) now() time.Time { return dialect.Tick(c.clock()) }

// NewCoordinator ensures the ledger and registers plans, on db.
func NewCoordinator(ctx context.Context, db Pool, plans []Plan, opts ...CoordinatorOption) (*Coordinator, error) {
	c, err := newCoordinator(db, opts)
	if err != nil {
		return nil, fmt.Errorf("new coordinator: %w", err)
	}
	if err := ledger.Ensure(ctx, c.db); err != nil {
		return nil, err
	}
	// Every plan is checked before any is registered: an invalid one
	// leaves nothing behind.
	for i := range plans {
		p := plans[i]
		if err := p.validate(ctx, c.db); err != nil {
			return nil, err
		}
	}
	if err := checkSequence(ctx, c.db, plans); err != nil {
		return nil, fmt.Errorf("new coordinator: %w", err)
	}
	for _, p := range plans {
		if err := p.Normalize(); err != nil {
			return nil, err
		}
		if err := register(ctx, c.db, p, c.now()); err != nil {
			return nil, err
		}
		c.plans[p.Migration] = p
	}
	return c, nil
}

func (c *Coordinator) plan(migration string) (Plan, error) {
	p, ok := c.plans[migration]
	if !ok {
		return Plan{}, fmt.Errorf("%w %q: not registered with this coordinator", ledger.ErrUnknownMigration, migration)
	}
	return p, nil
}

// Advance moves the migration one phase forward through its gate.
func (c *Coordinator) Advance(ctx context.Context, r Request) (ledger.Status, error) {
	return c.transition(ctx, r, true)
}

// Rollback moves the migration back: one phase, or straight to expanded
// (stage off) with r.ToOff. Before the contract any phase can go back,
// with no gate; from expanded back to planned the expand is undone.
func (c *Coordinator) Rollback(ctx context.Context, r Request) (ledger.Status, error) {
	return c.transition(ctx, r, false)
}

func (c *Coordinator) transition(ctx context.Context, r Request, forward bool) (ledger.Status, error) {
	plan, err := c.plan(r.Migration)
	if err != nil {
		return ledger.Status{}, err
	}
	if r.Actor == "" {
		r.Actor = "unknown"
	}
	kind := "advance"
	if !forward {
		kind = "rollback"
	}
	if r.Force {
		kind = "force-" + kind
		if strings.TrimSpace(r.Reason) == "" {
			return ledger.Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, ErrReasonRequired)
		}
	}
	// One transition of a migration at a time, across processes: the DDL
	// operations run between the transaction that decides the transition
	// and the one that records it (a concurrent index build waits for
	// every open snapshot, the ledger's included), and no other transition
	// may commit while they run. The lock and the whole
	// transition share one connection (see Coordinator's pool rule).
	var st ledger.Status
	var pinned *Coordinator
	err = c.dialect.Hold(ctx, c.db, "schemashift:"+r.Migration, func(ctx context.Context, one *sqlx.DB) error {
		pinned = c.on(one)
		var err error
		st, err = pinned.transitionLocked(ctx, plan, r, forward, kind)
		return err
	})
	if pinned == nil {
		return ledger.Status{}, fmt.Errorf("%s %s: lock migration: %w", kind, r.Migration, err)
	}
	// Events the pinned connection could not take (it broke: a deadline
	// cut a statement off) are recorded now, on the pool.
	err = errors.Join(err, c.recordAll(context.WithoutCancel(ctx), pinned.unrecorded),
		c.recordChecks(context.WithoutCancel(ctx), r.Actor, pinned.checks.runs))
	c.noticeTransition(ctx, r, forward, kind, st, err) // committed, the lock released
	return st, err
}

// on returns the coordinator working through one, a pool of the one
// connection a transition holds, recording on it what it can.
func (c *Coordinator) on(one *sqlx.DB) *Coordinator {
	pinned := *c
	pinned.db, pinned.pool = one, c.db
	pinned.unrecorded = &[]ledger.Event{}
	pinned.checks.runs = &[]CheckRun{}
	return &pinned
}

// recordAll records events, on c's own pool.
func (c *Coordinator) recordAll(ctx context.Context, events *[]ledger.Event) error {
	if events == nil {
		return nil
	}
	var errs []error
	for _, e := range *events {
		errs = append(errs, c.record(ctx, e))
	}
	return errors.Join(errs...)
}

// transitionLocked is the transition, under the migration's lock, with
// c working on the lock's connection. It is a pipeline:
//
//	load     the row, locked and fenced, and the contract's intent ([Coordinator.load])
//	decide   where it goes, and whether it is refused, from what was loaded alone ([decide])
//	gate     the gate's reads, when the decision needs them, and its verdict ([step.judge])
//	effects  the ddl operations, then the raw statements ([Coordinator.effects])
//	set      the compare-and-set of the row with its event ([Coordinator.set])
//
// A refusal at any step is recorded ([Coordinator.refuse]); every error
// is returned, one after the transition is made (a hot query's plan that
// could not be recorded) with the status it made.
//
// It reads the clock once: the gate, the phase's start and the events
// are all judged and stamped at that reading. The decision is made once,
// in the ledger transaction that reads the row: a transition with ddl
// operations (which may have to run outside a transaction) commits that
// decision first, runs the operations, and then records the transition
// in a second transaction that does not judge the gate again: operations
// run only for a transition that is then made. The contract's decision is
// recorded before its operations run, as an intent in the ledger (an
// accepted "contracting" event at the version of complete): from then on
// the migration cannot be rolled back (what the old code reads may be
// gone), and the next advance, with no gate, completes it, so that a
// process killed between the operations and the ledger leaves a contract
// that is finished, never undone.
func (c *Coordinator) transitionLocked(ctx context.Context, plan Plan, r Request, forward bool, kind string) (ledger.Status, error) {
	now := c.now() // the transition's one reading: the gate's, the phase's start, the events'
	if forward && len(plan.HotQueries) > 0 {
		st, err := ledger.Get(ctx, c.db, r.Migration)
		if err != nil {
			return ledger.Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
		}
		if st.Phase == ledger.Planned {
			if err := c.watchPlans(ctx, plan, "before expand", r.Actor); err != nil {
				return ledger.Status{}, err
			}
		}
	}
	var releases []func()
	defer func() {
		for _, release := range releases {
			release()
		}
	}()
	begin := func() (*sqlx.Tx, error) {
		tx, release, err := c.begin(ctx)
		if release != nil {
			releases = append(releases, release)
		}
		return tx, err
	}
	tx, err := begin()
	if err != nil {
		return ledger.Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op; tx may be the second transaction
	in, err := c.load(ctx, tx, r.Migration)
	if err != nil {
		return ledger.Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
	}
	s := decide(r, forward, kind, in)
	if s.refusal == nil && forward && !s.begun { // forced advances too: the gate's is not the only word
		s.refusal = c.judgePolicies(ctx, tx, plan, r, s.from, s.to)
	}
	if s.refusal == nil && s.gated {
		gate, unmet, err := c.gate(ctx, tx, plan, s.to, in.row, now)
		s = s.judge(r, gate, unmet, err)
	}
	if s.refusal != nil {
		return c.refuse(ctx, tx, r, kind, s.from.Status, s.to, s.refusal, now)
	}
	tx, refusal, err := c.effects(ctx, tx, begin, plan, r, forward, kind, &s, now)
	if refusal != nil {
		return c.refuse(ctx, tx, r, kind, s.from.Status, s.to, refusal, now)
	}
	if err != nil {
		return s.from.Status, err
	}
	next, err := c.set(ctx, tx, r, forward, kind, s, now)
	if err != nil {
		return c.refuse(ctx, tx, r, kind, s.from.Status, s.to, err, now)
	}
	if err := tx.Commit(); err != nil {
		if err := c.committed(ctx, r.Migration, next.Status, err); err != nil {
			return ledger.Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
		}
	}
	if _, ok := transitionDDL(plan, forward, s.to); ok {
		// After a DDL step: has a hot query's plan changed?
		// The transition is made: a plan watch that fails is noted in the
		// audit trail, never returned, because a caller reads an error as
		// "not made" (a retry would move the migration again, a guardrail
		// would lose its trip).
		if err := c.watchPlans(context.WithoutCancel(ctx), plan, "after "+kind+" to "+s.to.String(), r.Actor); err != nil {
			// The note is advisory too: a ledger that refuses it refuses
			// nothing the transition needed, and the transition stands.
			_ = c.recordAt(context.WithoutCancel(ctx), ledger.Event{Migration: r.Migration, Kind: "query-plan", Accepted: false, Actor: r.Actor,
				Reason: "after " + kind + " to " + s.to.String() + ": query plans not recorded: " + err.Error()}, now)
		}
	}
	return next.Status, nil
}

// loaded is what a transition or a check decides on: the migration's
// row and whether its contract has begun (or why that could not be read).
type loaded struct {
	row      ledger.Row
	begun    bool
	begunAt  time.Time
	begunErr error
}

// load reads, in tx, the migration's row, locked ([Coordinator.lock]),
// and whether its contract has begun.
func (c *Coordinator) load(ctx context.Context, tx *sqlx.Tx, migration string) (loaded, error) {
	row, err := c.lock(ctx, tx, migration)
	if err != nil {
		return loaded{}, err
	}
	in := loaded{row: row}
	in.begun, in.begunAt, in.begunErr = ledger.ContractBegun(ctx, c.in(tx), row.Status)
	return in, nil
}

// lock reads, in tx, the migration's row, locked, and checks that the
// migration's lock is still this transition's (fencing: on SQLite a
// leased row, which tx, holding the write lock, keeps as it is).
func (c *Coordinator) lock(ctx context.Context, tx *sqlx.Tx, migration string) (ledger.Row, error) {
	row, err := ledger.Lock(ctx, c.in(tx), migration)
	if err != nil {
		return ledger.Row{}, err
	}
	if err := dialect.CheckHeld(ctx, tx); err != nil {
		return ledger.Row{}, err
	}
	return row, nil
}

// step is a transition decided from what was loaded.
type step struct {
	from ledger.Row
	// to is where it goes; of a refusal, the phase recorded as the one
	// it asked for.
	to ledger.Phase
	// reason is the reason recorded with it.
	reason string
	// begun: it completes a contract begun, with no gate.
	begun bool
	// gated: the gate of to is yet to be judged ([step.judge]).
	gated bool
	// refusal, when set, is why it is refused.
	refusal error
}

// decide decides r from what was loaded, reading nothing: the version
// the request read, a contract applied or begun, where the transition
// goes, the confirmation of the contract and an unacknowledged trip. A
// forward transition not forced is left gated.
func decide(r Request, forward bool, kind string, in loaded) step {
	cur := in.row.Status
	s := step{from: in.row, to: cur.Phase}
	refuse := func(to ledger.Phase, cause error) step {
		s.to, s.refusal = to, cause
		return s
	}
	switch {
	case r.Version != 0 && r.Version != cur.Version:
		return refuse(cur.Phase, fmt.Errorf("%s %s: %w: version is %d, the request read %d", kind, r.Migration, ErrConflict, cur.Version, r.Version))
	case cur.Phase == ledger.Contracted:
		return refuse(cur.Phase, fmt.Errorf("%s %s: %w", kind, r.Migration, ErrIrreversible))
	case in.begunErr != nil:
		return refuse(cur.Phase, fmt.Errorf("%s %s: %w", kind, r.Migration, in.begunErr))
	case in.begun && !forward:
		return refuse(cur.Phase, fmt.Errorf("%s %s: %w: the contract began at %s (its operations may have run); advance to complete it",
			kind, r.Migration, ErrIrreversible, in.begunAt.UTC().Format(time.RFC3339Nano)))
	}
	switch {
	case forward:
		s.to = cur.Phase + 1
	case cur.Phase == ledger.Planned:
		return refuse(cur.Phase, fmt.Errorf("rollback %s: nothing to roll back at planned", r.Migration))
	case r.ToOff && cur.Phase > ledger.Expanded:
		s.to = ledger.Expanded
	default:
		s.to = cur.Phase - 1
	}
	s.reason = r.Reason
	if r.Force {
		s.reason = "forced: " + s.reason
	}
	if in.begun {
		// Decided when it began: no gate, confirmation or trip stops
		// what has been done from being recorded.
		s.begun = true
		s.reason = strings.TrimSpace("completes the contract begun at " + in.begunAt.UTC().Format(time.RFC3339Nano) + "; " + s.reason)
		s.reason = strings.TrimSuffix(s.reason, ";")
		return s
	}
	if forward && s.to == ledger.Contracted && !r.Confirm {
		return refuse(s.to, fmt.Errorf("advance %s: %w", r.Migration, ErrConfirmRequired))
	}
	if forward && in.row.Tripped != "" && !r.Acknowledge {
		return refuse(s.to, &RefusedError{Migration: r.Migration, From: cur.Phase, To: s.to, Gate: "guardrail",
			Reason: "a guardrail tripped (" + in.row.Tripped + "); advance with acknowledgement once the cause is dealt with"})
	}
	if forward && in.row.Tripped != "" {
		// The audit trail says what was passed over, not only why.
		s.reason = strings.TrimSpace("acknowledged the tripped guardrail (" + in.row.Tripped + "); " + s.reason)
		s.reason = strings.TrimSuffix(s.reason, ";")
	}
	s.gated = forward && !r.Force
	return s
}

// judge is s once its gate is judged (gate's name, why it is unmet or
// "", or the error of its reads): refused unless it is met.
func (s step) judge(r Request, gate, unmet string, err error) step {
	s.gated = false
	switch {
	case err != nil:
		s.refusal = fmt.Errorf("advance %s: check gate: %w", r.Migration, err)
	case unmet != "":
		s.refusal = &RefusedError{Migration: r.Migration, From: s.from.Phase, To: s.to, Gate: gate, Reason: unmet}
	}
	return s
}

// refuse records the refusal of a transition from cur to to, apart from
// tx, and returns cur with its cause.
func (c *Coordinator) refuse(ctx context.Context, tx *sqlx.Tx, r Request, kind string, cur ledger.Status, to ledger.Phase, cause error, now time.Time) (ledger.Status, error) {
	_ = tx.Rollback() // nothing was written in it to keep; the refusal is recorded apart
	err := c.recordAt(context.WithoutCancel(ctx), ledger.Event{Migration: r.Migration, Kind: kind, Accepted: false, Actor: r.Actor,
		FromPhase: cur.Phase.String(), ToPhase: to.String(), FromStage: cur.Stage.String(), ToStage: to.Stage().String(),
		Reason: cause.Error()}, now)
	return cur, errors.Join(cause, err)
}

// effects applies the decided transition s to the database. Its ddl
// operations run first, outside the ledger transaction (a concurrent
// index build waits for every open snapshot, the ledger's included), on
// this connection, under the lock: tx, which holds the decision (and a
// contract's intent), is committed, and the transition goes on in a
// second transaction, returned, with s.from read again in it. The raw
// statements run in the transaction returned, which records the
// transition. A refusal (to record) and an error (returned as it is) are
// told apart.
func (c *Coordinator) effects(ctx context.Context, tx *sqlx.Tx, begin func() (*sqlx.Tx, error), plan Plan, r Request, forward bool, kind string, s *step, now time.Time) (_ *sqlx.Tx, refusal, err error) {
	d, ok := transitionDDL(plan, forward, s.to)
	if !ok {
		return tx, nil, nil
	}
	if len(d.ops) > 0 {
		cur := s.from.Status
		if s.to == ledger.Contracted && !s.begun {
			if err := ledger.Record(ctx, c.in(tx), ledger.Event{Migration: r.Migration, Kind: "contracting", Accepted: true, Actor: r.Actor,
				FromPhase: cur.Phase.String(), ToPhase: s.to.String(), FromStage: cur.Stage.String(), ToStage: s.to.Stage().String(), Version: &cur.Version,
				Reason: strings.TrimSpace("the contract's operations run; no rollback from here. " + s.reason), At: now}); err != nil {
				return tx, fmt.Errorf("%s %s: record the contract's intent: %w", kind, r.Migration, err), nil
			}
		}
		if err := tx.Commit(); err != nil {
			return tx, nil, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
		}
		if err := c.runOps(ctx, r, cur, d.key, d.ops, d.revert, now); err != nil {
			if s.to == ledger.Contracted {
				err = fmt.Errorf("%w (the contract has begun: it cannot be rolled back; advance again to complete it)", err)
			}
			return tx, nil, err
		}
		second, err := begin()
		if err != nil { // tx stays the first, committed: its deferred Rollback is a no-op, where a nil one would panic
			return tx, nil, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
		}
		tx = second
		again, err := c.lock(ctx, tx, r.Migration)
		if err != nil {
			return tx, fmt.Errorf("%s %s: %w", kind, r.Migration, err), nil
		}
		if again.Version != s.from.Version {
			// Under the lock nothing else transitions it; if something
			// did, the ledger is left as it is (a contract begun stays
			// begun: the next advance completes it).
			return tx, fmt.Errorf("%s %s: %w: version is %d after the ddl operations, %d before", kind, r.Migration, ErrConflict,
				again.Version, s.from.Version), nil
		}
		s.from = again
	}
	if err := c.runDDL(ctx, tx, d.steps, d.revert); err != nil {
		return tx, fmt.Errorf("%s %s: %w", kind, r.Migration, err), nil
	}
	return tx, nil, nil
}

// set makes the transition s in tx: the compare-and-set of the row with
// its event, the fleet's totals and latencies now the new phase's
// baseline, and the trip it holds from then on (a guardrail's, or none
// once acknowledged).
func (c *Coordinator) set(ctx context.Context, tx *sqlx.Tx, r Request, forward bool, kind string, s step, now time.Time) (ledger.Row, error) {
	t, err := fleet.Sum(ctx, c.in(tx), r.Migration)
	if err != nil {
		return ledger.Row{}, err
	}
	lat, err := fleet.Latencies(ctx, c.in(tx), r.Migration)
	if err != nil {
		return ledger.Row{}, err
	}
	tripped := s.from.Tripped
	switch {
	case r.trip != "":
		tripped = r.trip
	case forward && r.Acknowledge:
		tripped = ""
	}
	next, err := ledger.Set(ctx, c.in(tx), ledger.Move{From: s.from.Status, To: s.to, Base: t, BaseLatency: lat, Tripped: tripped,
		Kind: kind, Actor: r.Actor, Reason: s.reason, At: now})
	if err != nil {
		return ledger.Row{}, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
	}
	return next, nil
}

// AdvanceDDL is the DDL the advance to phase to runs, as the coordinator
// runs it: the plan's ddl operations, then its raw statements (the
// expand's on the way to expanded, the contract's on the way to
// contracted). ok is false for an advance that runs none.
func (p Plan) AdvanceDDL(to ledger.Phase) (ops []ddl.Op, steps []Step, ok bool) {
	d, ok := transitionDDL(p, true, to)
	return d.ops, d.steps, ok
}

// ddlStep is the DDL of a transition: the plan's ddl operations, the key
// they are recorded under, its raw statements, and whether they are
// undone (the expand's, on the way back to planned).
type ddlStep struct {
	ops    []ddl.Op
	key    string
	steps  []Step
	revert bool
}

// transitionDDL is the DDL of the transition to to, if it has any: the
// expand's on the way to expanded, undone on the way back to planned;
// the contract's on the way to contracted.
func transitionDDL(plan Plan, forward bool, to ledger.Phase) (ddlStep, bool) {
	switch {
	case forward && to == ledger.Expanded:
		return ddlStep{ops: plan.ExpandOps, key: plan.Migration, steps: plan.Expand}, true
	case forward && to == ledger.Contracted:
		return ddlStep{ops: plan.ContractOps, key: plan.Migration + ":contract", steps: plan.Contract}, true
	case !forward && to == ledger.Planned:
		return ddlStep{ops: plan.ExpandOps, key: plan.Migration, steps: plan.Expand, revert: true}, true
	}
	return ddlStep{}, false
}

// runOps applies (or reverts) the ddl operations of a transition already
// decided, from cur, at now.
func (c *Coordinator) runOps(ctx context.Context, r Request, cur ledger.Status, key string, ops []ddl.Op, revert bool, now time.Time) error {
	// What the database could not do safely (SQLite builds an index
	// without CONCURRENTLY) goes into the audit trail as it happens.
	var noteErr error // the first note the audit trail refused
	e, err := ddl.NewExecutor(c.db, ddl.WithNotes(func(ctx context.Context, n ddl.Note) {
		if err := c.recordAt(context.WithoutCancel(ctx), ledger.Event{Migration: r.Migration, Kind: "ddl-note", Accepted: true, Actor: r.Actor,
			FromPhase: cur.Phase.String(), Reason: n.String()}, now); err != nil && noteErr == nil {
			noteErr = err
		}
	}))
	if err != nil {
		return err
	}
	if revert {
		err = e.Revert(ctx, key, ops)
	} else {
		err = e.Apply(ctx, key, ops)
	}
	if err != nil {
		recErr := c.recordAt(context.WithoutCancel(ctx), ledger.Event{Migration: r.Migration, Kind: "ddl", Accepted: false, Actor: r.Actor,
			FromPhase: cur.Phase.String(), Reason: err.Error()}, now)
		return errors.Join(fmt.Errorf("%s: %w", r.Migration, err), recErr, noteErr)
	}
	return noteErr
}

// ErrInvalidArgument is wrapped by the error of a call given a value it
// cannot work with (a nil pool or option, a non-positive interval).
var ErrInvalidArgument = errors.New("invalid argument")

// newCoordinator checks db and applies opts.
func newCoordinator(db Pool, opts []CoordinatorOption) (*Coordinator, error) {
	x, d, err := sqlxPool(db)
	if err != nil {
		return nil, err
	}
	c := &Coordinator{db: x, dialect: d, plans: map[string]Plan{}, ageOut: defaultAgeOut, clock: time.Now, grace: defaultCommitGrace}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i+1)
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// sqlxPool returns db as the *sqlx.DB the coordinator works on, and its
// dialect; a nil db, or one of no supported database, is refused with
// [ErrInvalidArgument].
func sqlxPool(db Pool) (*sqlx.DB, dialect.Dialect, error) {
	if db == nil {
		return nil, nil, fmt.Errorf("%w: db is nil", ErrInvalidArgument)
	}
	x, d, err := dialects.Sqlx(db)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return x, d, nil
}

// ErrAudit is wrapped by the error of an event the audit trail could not
// take; the error it joins (a refusal, say) is still the one to branch on.
var ErrAudit = errors.New("record in the audit trail")

// begin begins a ledger transaction on c's pool, and returns what ends
// its context, to call once it is over. ctx ends each statement; the
// transaction's own context (its BEGIN and COMMIT) outlives ctx by the
// commit grace ([WithCommitGrace]) and no more: a COMMIT cut off the
// moment ctx ends may have landed all the same, and one that hangs must
// not hold the migration's lock for good.
func (c *Coordinator) begin(ctx context.Context) (*sqlx.Tx, func(), error) {
	txCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var grace *time.Timer
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		grace = time.AfterFunc(c.grace, cancel)
	})
	release := func() {
		stop()
		mu.Lock()
		if grace != nil {
			grace.Stop()
		}
		mu.Unlock()
		cancel()
	}
	tx, err := c.db.BeginTxx(txCtx, nil)
	if err != nil {
		release()
		return nil, nil, err
	}
	return tx, release, nil
}

// ErrOutcomeUnknown is wrapped by the error of a transition whose COMMIT
// failed without the database saying why (the connection lost, the
// commit grace over) and whose outcome a fresh read could not settle:
// it may have been made. Read the migration's status before acting again.
var ErrOutcomeUnknown = errors.New("the transition's outcome is unknown")

// committed settles a transition whose COMMIT returned err: nil when the
// ledger shows it made (want's version and phase), err when the database
// refused the COMMIT or the ledger shows it not made, and err wrapping
// [ErrOutcomeUnknown] when the read fails too or the COMMIT may still
// land.
func (c *Coordinator) committed(ctx context.Context, migration string, want ledger.Status, err error) error {
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.grace)
	defer cancel()
	pool := c.pool
	if pool == nil {
		pool = c.db
	}
	st, rerr := ledger.Get(readCtx, pool, migration) // on the pool: the transition's connection may be the one lost
	switch {
	case rerr == nil && st.Version >= want.Version && st.Phase == want.Phase:
		return nil
	case rerr == nil && pgerr.Answered(err):
		return err // the database said no: nothing landed
	case rerr != nil:
		return fmt.Errorf("%w (and reading the ledger again failed: %v): %w", ErrOutcomeUnknown, rerr, err)
	}
	return fmt.Errorf("%w (the ledger does not show it yet; the COMMIT may still land): %w", ErrOutcomeUnknown, err)
}

// in is tx as the packages the coordinator stands on take it: bound to
// c's dialect, which they then use as it is rather than probe tx for it.
func (c *Coordinator) in(tx *sqlx.Tx) *dialects.Bound { return dialects.Bind(tx, c.dialect) }

// record records e at the clock's time now.
func (c *Coordinator) record(ctx context.Context, e ledger.Event) error {
	return c.recordAt(ctx, e, c.now())
}

// recordAt records e at the time at of the decision it records (kept in
// e.At if it has to wait for the pool).
func (c *Coordinator) recordAt(ctx context.Context, e ledger.Event, at time.Time) error {
	if !e.At.IsZero() {
		at = e.At
	}
	e.At = at
	if err := ledger.Record(ctx, c.db, e); err != nil {
		if c.unrecorded != nil {
			// On a transition's connection: tried again on the pool once
			// the transition gives it back, and an error then.
			*c.unrecorded = append(*c.unrecorded, e)
			return nil
		}
		return fmt.Errorf("%w: %s event of %s: %w", ErrAudit, e.Kind, e.Migration, err)
	}
	return nil
}

// runDDL runs steps (or their reverses, last first) with a short lock
// timeout, so a long transaction holding the table makes the step fail
// fast instead of queueing every query behind it.
func (c *Coordinator) runDDL(ctx context.Context, tx *sqlx.Tx, steps []Step, down bool) error {
	if err := c.dialect.SetTimeouts(ctx, tx, 5*time.Second, 0, true); err != nil {
		return err
	}
	for i := range steps {
		s := steps[i]
		q := s.SQL
		if down {
			s = steps[len(steps)-1-i]
			q = s.Down
			if strings.TrimSpace(q) == "" {
				return fmt.Errorf("undo expand: step %q has no Down statement", s.SQL)
			}
		}
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("run DDL %q: %w", q, err)
		}
	}
	return nil
}

// gate checks the condition of the transition from cur to to, judged at
// now. It returns the gate's name and, when unmet, why.
func (c *Coordinator) gate(ctx context.Context, tx *sqlx.Tx, plan Plan, to ledger.Phase, row ledger.Row, now time.Time) (string, string, error) {
	if reason, err := c.requirementsMet(ctx, tx, plan, to); err != nil || reason != "" {
		return "sequence", reason, err
	}
	if reason, err := c.checksMet(ctx, tx, plan, to, now); err != nil || reason != "" {
		return "checks", reason, err
	}
	if gate, reason, err := c.aggregatesMet(ctx, tx, plan, to, row.Phase, now); err != nil || reason != "" {
		return gate, reason, err
	}
	switch to {
	case ledger.Planned, ledger.Expanded:
		return "expand", "", nil
	case ledger.DualWrite:
		missing, err := missingColumns(ctx, c.dialect, tx, plan.Columns)
		if err != nil {
			return "", "", err
		}
		if len(missing) > 0 {
			return "schema", "the expand's columns are missing: " + strings.Join(missing, ", "), nil
		}
		return "schema", "", nil
	case ledger.Backfill:
		reason, err := c.fleetAtLeast(ctx, tx, plan, flags.DualWrite, now)
		return "fleet at dualwrite", reason, err
	case ledger.Verify:
		for _, j := range plan.Backfills {
			st, err := c.backfillState(ctx, tx, j.Name, now)
			if err != nil {
				return "", "", err
			}
			if st != "done" {
				return "backfill done", fmt.Sprintf("backfill %q is %s", j.Name, st), nil
			}
		}
		return "backfill done", "", nil
	case ledger.Shadow:
		for _, j := range plan.Backfills {
			reason, err := verifiedSinceDone(ctx, c.dialect, tx, j.Name)
			if err != nil {
				return "", "", err
			}
			if reason != "" {
				return "verification passed", reason, nil
			}
		}
		return "verification passed", "", nil
	case ledger.Live, ledger.Rampdown:
		reason, err := c.consistency(ctx, tx, plan, row)
		return "shadow consistency", reason, err
	case ledger.Complete:
		reason, err := c.fleetAtLeast(ctx, tx, plan, flags.Rampdown, now)
		return "fleet at rampdown", reason, err
	case ledger.Contracted:
		reason, err := c.fleetAtLeast(ctx, tx, plan, flags.Complete, now)
		if reason != "" || err != nil {
			return "fleet only complete", reason, err
		}
		return "fleet only complete", "", nil
	}
	return "", fmt.Sprintf("no transition to %s", to), nil
}

// missingColumns lists the columns of cols that q, of dialect d, lacks.
func missingColumns(ctx context.Context, d dialect.Dialect, q sqlx.QueryerContext, cols []Column) ([]string, error) {
	var missing []string
	tables := map[string][]dialect.Column{} // each table's catalog read once
	for _, c := range cols {
		have, ok := tables[c.Table]
		if !ok {
			t, err := ident.ParseTable(c.Table)
			if err != nil {
				return nil, err
			}
			if have, err = d.Columns(ctx, q, t); err != nil {
				return nil, fmt.Errorf("check column %s.%s: %w", c.Table, c.Column, err)
			}
			tables[c.Table] = have
		}
		if !slices.ContainsFunc(have, func(h dialect.Column) bool { return h.Name == c.Column }) {
			missing = append(missing, c.Table+"."+c.Column)
		}
	}
	return missing, nil
}

// backfillState is job's status as the gate reads it, judged at now.
func (c *Coordinator) backfillState(ctx context.Context, q *sqlx.Tx, job string, now time.Time) (string, error) {
	exists, err := c.dialect.TableExists(ctx, q, ident.Table{Name: "schemashift_backfills"})
	if err != nil || !exists {
		return "not started", err
	}
	p, err := backfill.StateAt(ctx, c.in(q), job, now)
	if errors.Is(err, backfill.ErrUnknownJob) {
		return "not started", nil
	}
	if err != nil {
		return "", err
	}
	if p.Stall != nil {
		return fmt.Sprintf("stalled: no live worker since %s (last: %s); start one with `backfill run`",
			p.Stall.Since.UTC().Format(time.RFC3339), p.Stall.Worker), nil
	}
	return string(p.Status), nil
}

// consistency checks the shadow comparisons reported since the phase began.
func (c *Coordinator) consistency(ctx context.Context, q *sqlx.Tx, plan Plan, row ledger.Row) (string, error) {
	t, err := fleet.Sum(ctx, c.in(q), plan.Migration)
	if err != nil {
		return "", err
	}
	since := t.Since(row.Base)
	total := since.Matched + since.Mismatched
	if total < plan.MinComparisons {
		return fmt.Sprintf("%d comparisons since %s began, %d required", total, row.Phase, plan.MinComparisons), nil
	}
	if since.Ratio < plan.ShadowConsistency {
		return fmt.Sprintf("consistency %.4f over %d comparisons, %.4f required", since.Ratio, total, plan.ShadowConsistency), nil
	}
	return "", nil
}

// fleetAtLeast checks that every live instance evaluated only stages ≥ min
// for the plan's whole window, and at least one of them in the window (an
// idle instance proves nothing), and, for complete, made no old-path call:
// the window that ends at now.
func (c *Coordinator) fleetAtLeast(ctx context.Context, q *sqlx.Tx, plan Plan, min flags.Stage, now time.Time) (string, error) {
	live, err := fleet.Read(ctx, c.in(q), plan.Migration, c.ageOut, now)
	if err != nil {
		return "", err
	}
	if len(live.Instances) == 0 {
		return "no live instance reports heartbeats for this migration: the fleet cannot be seen", nil
	}
	var problems []string
	for _, in := range live.Instances {
		name := fmt.Sprintf("instance %s (%s %s)", in.ID, in.Service, in.Build)
		if in.FirstSeen.After(live.Now.Add(-plan.Window)) {
			problems = append(problems, name+" has not been seen for a whole window yet")
			continue
		}
		recent := false // positive evidence: an idle instance proves nothing
		for s, at := range in.StageSeen {
			if !at.After(live.Now.Add(-plan.Window)) {
				continue
			}
			if s < min {
				problems = append(problems, fmt.Sprintf("%s evaluated %s %s ago", name, s, live.Now.Sub(at).Round(time.Millisecond)))
			} else {
				recent = true
			}
		}
		if !recent {
			problems = append(problems, fmt.Sprintf("%s made no call at %s or later in the last %v", name, min, plan.Window))
		}
		if min == flags.Complete && in.LastOldCall != nil && in.LastOldCall.After(live.Now.Add(-plan.Window)) {
			problems = append(problems, fmt.Sprintf("%s called the old path %s ago", name, live.Now.Sub(*in.LastOldCall).Round(time.Millisecond)))
		}
	}
	for _, in := range live.Unaware {
		problems = append(problems, fmt.Sprintf("instance %s (%s %s) is live but does not know this migration", in.ID, in.Service, in.Build))
	}
	if len(problems) > 0 {
		return strings.Join(problems, "; "), nil
	}
	return "", nil
}

// Migrations returns the names of the coordinator's migrations, sorted.
func (c *Coordinator) Migrations() []string { return c.migrations() }

func (c *Coordinator) migrations() []string {
	names := make([]string, 0, len(c.plans))
	for n := range c.plans {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Plan returns the plan of a migration.
func (c *Coordinator) Plan(migration string) (Plan, error) { return c.plan(migration) }

// DB returns the pool the coordinator works on: the ledger's, for the
// readers of the ledger, the fleet and the backfills (the board, the
// reports) to read what the coordinator judges. A *sql.DB given to
// [NewCoordinator] or [Open] comes back wrapped, sharing its pool: it is
// still the caller's to close, once.
func (c *Coordinator) DB() *sqlx.DB { return c.db }

// Now reads the coordinator's clock ([WithClock]) once, at the
// microsecond the database keeps: the time a reader judges what it
// shows at, as the coordinator would.
func (c *Coordinator) Now() time.Time { return c.now() }

// AgeOut returns after how long without a heartbeat an instance no
// longer counts as live ([WithAgeOut]).
func (c *Coordinator) AgeOut() time.Duration { return c.ageOut }

// Fleet reads the live instances of a migration, at the coordinator's
// clock.
func (c *Coordinator) Fleet(ctx context.Context, migration string) (fleet.Fleet, error) {
	return fleet.Read(ctx, c.db, migration, c.ageOut, c.now())
}

// RunBackfills runs the plan's backfill jobs (the migration must be in its
// backfill phase), with opts for every job. The jobs run on the
// coordinator's clock (backfill.WithClock) unless opts set another.
func (c *Coordinator) RunBackfills(ctx context.Context, migration string, opts ...backfill.Option) error {
	plan, err := c.plan(migration)
	if err != nil {
		return err
	}
	st, err := ledger.Get(ctx, c.db, migration)
	if err != nil {
		return err
	}
	if st.Phase != ledger.Backfill {
		return fmt.Errorf("run backfills of %s: the migration is at %s, not backfill", migration, st.Phase)
	}
	opts = append(planOptions(plan, c.clock), opts...)
	for _, j := range plan.Backfills {
		b, err := backfill.New(ctx, c.db, j, opts...)
		if err != nil {
			return err
		}
		if _, err := b.Run(ctx); err != nil {
			return err
		}
	}
	return nil
}

// VerifyBackfills verifies every backfill job of the plan, on the
// coordinator's clock; the results are what the gate to shadow reads.
func (c *Coordinator) VerifyBackfills(ctx context.Context, migration string, o backfill.VerifyOptions) ([]backfill.Report, error) {
	plan, err := c.plan(migration)
	if err != nil {
		return nil, err
	}
	var reports []backfill.Report
	for _, j := range plan.Backfills {
		b, err := backfill.New(ctx, c.db, j, backfill.WithClock(c.clock))
		if err != nil {
			return reports, err
		}
		rep, err := b.Verify(ctx, o)
		if err != nil {
			return reports, err
		}
		reports = append(reports, rep)
	}
	return reports, nil
}

// verifiedSinceDone says why job's verification does not count, or "" when
// it does: it passed, without repairing anything, and started after the
// job finished (both stamps of the clock of the backfill that made them:
// the coordinator's, for those it runs), so that a verification of a job
// half done, or one a later run or repair made stale, is refused.
func verifiedSinceDone(ctx context.Context, d dialect.Dialect, q sqlx.QueryerContext, job string) (string, error) {
	var row struct {
		Verify  string `db:"verify_status"`
		Status  string `db:"status"`
		Current bool   `db:"current"`
	}
	err := sqlx.GetContext(ctx, q, &row, d.BackfillVerification(), job)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	switch {
	case row.Verify == "":
		return fmt.Sprintf("verification of %q: not run", job), nil
	case row.Verify == "repaired":
		return fmt.Sprintf("verification of %q: repaired rows; verify again, so that a verification that started after the repair passes", job), nil
	case row.Verify != "passed":
		return fmt.Sprintf("verification of %q: %s", job, row.Verify), nil
	case row.Status != "done":
		return fmt.Sprintf("verification of %q passed while the job was %s; verify again once it is done", job, row.Status), nil
	case !row.Current:
		return fmt.Sprintf("verification of %q started before the job last finished; verify again", job), nil
	}
	return "", nil
}
