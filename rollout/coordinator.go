package rollout

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/ident"
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

// RefusedError says which condition of a gate is unmet.
type RefusedError struct {
	Migration string
	From, To  Phase
	Gate      string
	Reason    string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: %s → %s of %s: %s: %s", ErrGateRefused, e.From, e.To, e.Migration, e.Gate, e.Reason)
}

// Unwrap returns [ErrGateRefused].
func (e *RefusedError) Unwrap() error { return ErrGateRefused }

// Request asks for one transition.
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
	// unrecorded, set on the copy a transition works through, holds the
	// events its connection could not take.
	unrecorded *[]Event
}

const defaultAgeOut = time.Minute

// CoordinatorOption configures a [Coordinator].
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
// The instances' heartbeats are stamped by theirs ([WithInstanceClock]):
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

// NewCoordinator ensures the ledger and registers plans.
func NewCoordinator(ctx context.Context, db *sqlx.DB, plans []Plan, opts ...CoordinatorOption) (*Coordinator, error) {
	c, err := newCoordinator(db, opts)
	if err != nil {
		return nil, fmt.Errorf("new coordinator: %w", err)
	}
	if err := EnsureLedger(ctx, db); err != nil {
		return nil, err
	}
	// Every plan is checked before any is registered: an invalid one
	// leaves nothing behind.
	for i := range plans {
		p := plans[i]
		if err := p.validate(ctx, db); err != nil {
			return nil, err
		}
	}
	for _, p := range plans {
		if err := p.normalize(); err != nil {
			return nil, err
		}
		if err := register(ctx, db, p, c.now()); err != nil {
			return nil, err
		}
		c.plans[p.Migration] = p
	}
	return c, nil
}

func (c *Coordinator) plan(migration string) (Plan, error) {
	p, ok := c.plans[migration]
	if !ok {
		return Plan{}, fmt.Errorf("%w %q: not registered with this coordinator", ErrUnknownMigration, migration)
	}
	return p, nil
}

// Advance moves the migration one phase forward through its gate.
func (c *Coordinator) Advance(ctx context.Context, r Request) (Status, error) {
	return c.transition(ctx, r, true)
}

// Rollback moves the migration back: one phase, or straight to expanded
// (stage off) with r.ToOff. Before the contract any phase can go back,
// with no gate; from expanded back to planned the expand is undone.
func (c *Coordinator) Rollback(ctx context.Context, r Request) (Status, error) {
	return c.transition(ctx, r, false)
}

func (c *Coordinator) transition(ctx context.Context, r Request, forward bool) (Status, error) {
	plan, err := c.plan(r.Migration)
	if err != nil {
		return Status{}, err
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
			return Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, ErrReasonRequired)
		}
	}
	// One transition of a migration at a time, across processes: the DDL
	// operations run between the transaction that decides the transition
	// and the one that records it (a concurrent index build waits for
	// every open snapshot, the ledger's included), and no other transition
	// may commit while they run. The lock and the whole
	// transition share one connection (see Coordinator's pool rule).
	var st Status
	var pinned *Coordinator
	err = c.dialect.Hold(ctx, c.db, "schemashift:"+r.Migration, func(ctx context.Context, one *sqlx.DB) error {
		pinned = c.on(one)
		var err error
		st, err = pinned.transitionLocked(ctx, plan, r, forward, kind)
		return err
	})
	if pinned == nil {
		return Status{}, fmt.Errorf("%s %s: lock migration: %w", kind, r.Migration, err)
	}
	// Events the pinned connection could not take (it broke: a deadline
	// cut a statement off) are recorded now, on the pool.
	return st, errors.Join(err, c.recordAll(context.WithoutCancel(ctx), pinned.unrecorded))
}

// on returns the coordinator working through one, a pool of the one
// connection a transition holds, recording on it what it can.
func (c *Coordinator) on(one *sqlx.DB) *Coordinator {
	pinned := *c
	pinned.db = one
	pinned.unrecorded = &[]Event{}
	return &pinned
}

// recordAll records events, on c's own pool.
func (c *Coordinator) recordAll(ctx context.Context, events *[]Event) error {
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
// c working on the lock's connection.
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
func (c *Coordinator) transitionLocked(ctx context.Context, plan Plan, r Request, forward bool, kind string) (Status, error) {
	now := c.now() // the transition's one reading: the gate's, the phase's start, the events'
	if forward && len(plan.HotQueries) > 0 {
		if st, err := Get(ctx, c.db, r.Migration); err == nil && st.Phase == Planned {
			if err := c.watchPlans(ctx, plan, "before expand", r.Actor); err != nil {
				return Status{}, err
			}
		}
	}
	tx, err := c.db.BeginTxx(ctx, nil)
	if err != nil {
		return Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op; tx may be the second transaction
	var row statusRow
	if err := tx.GetContext(ctx, &row, `SELECT `+statusColumns+` FROM schemashift_migrations WHERE migration = $1`+c.dialect.ForUpdate(), r.Migration); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Status{}, fmt.Errorf("%s: %w %q", kind, ErrUnknownMigration, r.Migration)
		}
		return Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
	}
	cur, err := row.status()
	if err != nil {
		return Status{}, err
	}
	// Fencing: the migration's lock is still this transition's (on SQLite
	// a leased row, which tx, holding the write lock, keeps as it is).
	if err := dialect.CheckHeld(ctx, tx); err != nil {
		return Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
	}
	refuse := func(to Phase, cause error) (Status, error) {
		_ = tx.Rollback() // nothing was written in it; the refusal is recorded apart
		err := c.recordAt(context.WithoutCancel(ctx), Event{Migration: r.Migration, Kind: kind, Accepted: false, Actor: r.Actor,
			FromPhase: cur.Phase.String(), ToPhase: to.String(), FromStage: cur.Stage.String(), ToStage: to.Stage().String(),
			Reason: cause.Error()}, now)
		return cur, errors.Join(cause, err)
	}
	if r.Version != 0 && r.Version != cur.Version {
		return refuse(cur.Phase, fmt.Errorf("%s %s: %w: version is %d, the request read %d", kind, r.Migration, ErrConflict, cur.Version, r.Version))
	}
	if cur.Phase == Contracted {
		return refuse(cur.Phase, fmt.Errorf("%s %s: %w", kind, r.Migration, ErrIrreversible))
	}
	begun, begunAt, err := c.contracting(ctx, tx, row)
	if err != nil {
		return refuse(cur.Phase, fmt.Errorf("%s %s: %w", kind, r.Migration, err))
	}
	if begun && !forward {
		return refuse(cur.Phase, fmt.Errorf("%s %s: %w: the contract began at %s (its operations may have run); advance to complete it",
			kind, r.Migration, ErrIrreversible, begunAt.UTC().Format(time.RFC3339Nano)))
	}
	var to Phase
	if forward {
		to = cur.Phase + 1
	} else {
		switch {
		case cur.Phase == Planned:
			return refuse(cur.Phase, fmt.Errorf("rollback %s: nothing to roll back at planned", r.Migration))
		case r.ToOff && cur.Phase > Expanded:
			to = Expanded
		default:
			to = cur.Phase - 1
		}
	}
	reason := r.Reason
	if r.Force {
		reason = "forced: " + reason
	}
	if begun {
		// Decided when it began: no gate, confirmation or trip stops
		// what has been done from being recorded.
		reason = strings.TrimSpace("completes the contract begun at " + begunAt.UTC().Format(time.RFC3339Nano) + "; " + reason)
		reason = strings.TrimSuffix(reason, ";")
	} else {
		if forward && to == Contracted && !r.Confirm {
			return refuse(to, fmt.Errorf("advance %s: %w", r.Migration, ErrConfirmRequired))
		}
		if forward && row.Tripped != "" && !r.Acknowledge {
			return refuse(to, &RefusedError{Migration: r.Migration, From: cur.Phase, To: to, Gate: "guardrail",
				Reason: "a guardrail tripped (" + row.Tripped + "); advance with acknowledgement once the cause is dealt with"})
		}
		if forward && !r.Force {
			if gate, reason, err := c.gate(ctx, tx, plan, to, row, now); err != nil {
				return refuse(to, fmt.Errorf("advance %s: check gate: %w", r.Migration, err))
			} else if reason != "" {
				return refuse(to, &RefusedError{Migration: r.Migration, From: cur.Phase, To: to, Gate: gate, Reason: reason})
			}
		}
	}
	// The transition is decided. Its ddl operations run now, outside the
	// ledger transaction (a concurrent index build waits for every open
	// snapshot, the ledger's included), on this connection, under the
	// lock; the raw statements below, in the transaction that records it.
	if ops, key, revert := transitionOps(plan, forward, to); len(ops) > 0 {
		if to == Contracted && !begun {
			if _, err := tx.ExecContext(ctx, `INSERT INTO schemashift_events (migration, kind, accepted, actor, from_phase, to_phase, from_stage, to_stage, version, reason, at)
				VALUES ($1, 'contracting', true, $2, $3, $4, $5, $6, $7, $8, $9)`, r.Migration, r.Actor, cur.Phase.String(), to.String(),
				cur.Stage.String(), to.Stage().String(), cur.Version, strings.TrimSpace("the contract's operations run; no rollback from here. "+reason),
				dialect.Stamp(now)); err != nil {
				return refuse(to, fmt.Errorf("%s %s: record the contract's intent: %w", kind, r.Migration, err))
			}
		}
		if err := tx.Commit(); err != nil {
			return Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
		}
		if err := c.runOps(ctx, r, cur, key, ops, revert, now); err != nil {
			if to == Contracted {
				err = fmt.Errorf("%w (the contract has begun: it cannot be rolled back; advance again to complete it)", err)
			}
			return cur, err
		}
		if tx, err = c.db.BeginTxx(ctx, nil); err != nil {
			return Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
		}
		var again statusRow
		if err := tx.GetContext(ctx, &again, `SELECT `+statusColumns+` FROM schemashift_migrations WHERE migration = $1`+c.dialect.ForUpdate(), r.Migration); err != nil {
			return refuse(to, fmt.Errorf("%s %s: %w", kind, r.Migration, err))
		}
		if err := dialect.CheckHeld(ctx, tx); err != nil {
			return refuse(to, fmt.Errorf("%s %s: %w", kind, r.Migration, err))
		}
		if again.Version != row.Version {
			// Under the lock nothing else transitions it; if something
			// did, the ledger is left as it is (a contract begun stays
			// begun: the next advance completes it).
			return refuse(to, fmt.Errorf("%s %s: %w: version is %d after the ddl operations, %d before", kind, r.Migration, ErrConflict, again.Version, row.Version))
		}
		row = again
	}
	switch {
	case forward && to == Expanded:
		err = c.runDDL(ctx, tx, plan.Expand, false)
	case forward && to == Contracted:
		err = c.runDDL(ctx, tx, plan.Contract, false)
	case !forward && to == Planned:
		err = c.runDDL(ctx, tx, plan.Expand, true)
	}
	if err != nil {
		return refuse(to, fmt.Errorf("%s %s: %w", kind, r.Migration, err))
	}
	t, err := c.totals(ctx, tx, r.Migration)
	if err != nil {
		return refuse(to, err)
	}
	lat, err := latencies(ctx, tx, r.Migration)
	if err != nil {
		return refuse(to, err)
	}
	tripped := row.Tripped
	switch {
	case r.trip != "":
		tripped = r.trip
	case forward && r.Acknowledge:
		tripped = ""
	}
	var next statusRow
	if err := tx.GetContext(ctx, &next, `UPDATE schemashift_migrations SET phase = $2, stage = $3, version = version + 1,
			phase_since = $13, updated_at = $13, matched_base = $4, mismatched_base = $5,
			base_old_total = $6, base_old_errors = $7, base_new_total = $8, base_new_errors = $9, tripped = $10,
			base_latency = `+c.dialect.JSON("$12")+`
		WHERE migration = $1 AND version = $11 RETURNING `+statusColumns,
		r.Migration, to.String(), to.Stage().String(), t.Matched, t.Mismatched, t.OldTotal, t.OldErrors, t.NewTotal, t.NewErrors,
		tripped, cur.Version, string(mustJSON(lat)), dialect.Stamp(now)); err != nil {
		return refuse(to, fmt.Errorf("%s %s: %w", kind, r.Migration, err))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schemashift_events (migration, kind, accepted, actor, from_phase, to_phase, from_stage, to_stage, version, reason, at)
		VALUES ($1, $2, true, $3, $4, $5, $6, $7, $8, $9, $10)`, r.Migration, kind, r.Actor, cur.Phase.String(), to.String(),
		cur.Stage.String(), to.Stage().String(), next.Version, reason, dialect.Stamp(now)); err != nil {
		return refuse(to, fmt.Errorf("%s %s: record event: %w", kind, r.Migration, err))
	}
	if err := tx.Commit(); err != nil {
		return Status{}, fmt.Errorf("%s %s: %w", kind, r.Migration, err)
	}
	if to == Expanded && forward || to == Contracted || to == Planned {
		// After a DDL step: has a hot query's plan changed?
		if err := c.watchPlans(context.WithoutCancel(ctx), plan, "after "+kind+" to "+to.String(), r.Actor); err != nil {
			return next.status()
		}
	}
	return next.status()
}

// contracting says whether the contract of the migration at row has
// begun (its intent recorded, its operations run or running) without
// the transition being recorded yet, and since when.
func (c *Coordinator) contracting(ctx context.Context, q sqlx.QueryerContext, row statusRow) (bool, time.Time, error) {
	if row.Phase != Complete.String() {
		return false, time.Time{}, nil
	}
	var at []time.Time
	if err := sqlx.SelectContext(ctx, q, &at, `SELECT at FROM schemashift_events
		WHERE migration = $1 AND kind = 'contracting' AND accepted AND version = $2 AND at >= $3 ORDER BY id LIMIT 1`,
		row.Migration, row.Version, dialect.Stamp(row.PhaseSince)); err != nil {
		return false, time.Time{}, fmt.Errorf("read the contract's intent: %w", err)
	}
	if len(at) == 0 {
		return false, time.Time{}, nil
	}
	return true, at[0], nil
}

// transitionOps are the plan's ddl operations for the transition to to,
// the key they are recorded under, and whether they are reverted: the
// expand's on the way to expanded, reverted on the way back to planned;
// the contract's on the way to contracted.
func transitionOps(plan Plan, forward bool, to Phase) (ops []ddl.Op, key string, revert bool) {
	switch {
	case forward && to == Expanded:
		return plan.ExpandOps, plan.Migration, false
	case forward && to == Contracted:
		return plan.ContractOps, plan.Migration + ":contract", false
	case !forward && to == Planned:
		return plan.ExpandOps, plan.Migration, true
	}
	return nil, "", false
}

// runOps applies (or reverts) the ddl operations of a transition already
// decided, from cur, at now.
func (c *Coordinator) runOps(ctx context.Context, r Request, cur Status, key string, ops []ddl.Op, revert bool, now time.Time) error {
	// What the database could not do safely (SQLite builds an index
	// without CONCURRENTLY) goes into the audit trail as it happens.
	var noteErr error // the first note the audit trail refused
	e, err := ddl.NewExecutor(c.db, ddl.WithNotes(func(ctx context.Context, n ddl.Note) {
		if err := c.recordAt(context.WithoutCancel(ctx), Event{Migration: r.Migration, Kind: "ddl-note", Accepted: true, Actor: r.Actor,
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
		recErr := c.recordAt(context.WithoutCancel(ctx), Event{Migration: r.Migration, Kind: "ddl", Accepted: false, Actor: r.Actor,
			FromPhase: cur.Phase.String(), Reason: err.Error()}, now)
		return errors.Join(fmt.Errorf("%s: %w", r.Migration, err), recErr, noteErr)
	}
	return noteErr
}

// ErrInvalidArgument is wrapped by the error of a call given a value it
// cannot work with (a nil pool or option, a non-positive interval).
var ErrInvalidArgument = errors.New("invalid argument")

// newCoordinator checks db and applies opts.
func newCoordinator(db *sqlx.DB, opts []CoordinatorOption) (*Coordinator, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: db is nil", ErrInvalidArgument)
	}
	d, err := dialects.ForPool(db)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	c := &Coordinator{db: db, dialect: d, plans: map[string]Plan{}, ageOut: defaultAgeOut, clock: time.Now}
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

// ErrAudit is wrapped by the error of an event the audit trail could not
// take; the error it joins (a refusal, say) is still the one to branch on.
var ErrAudit = errors.New("record in the audit trail")

// record records e at the clock's time now.
func (c *Coordinator) record(ctx context.Context, e Event) error { return c.recordAt(ctx, e, c.now()) }

// recordAt records e at the time at of the decision it records (kept in
// e.At if it has to wait for the pool).
func (c *Coordinator) recordAt(ctx context.Context, e Event, at time.Time) error {
	if !e.At.IsZero() {
		at = e.At
	}
	e.At = at
	if _, err := c.db.ExecContext(ctx, `INSERT INTO schemashift_events (migration, kind, accepted, actor, from_phase, to_phase, from_stage, to_stage, reason, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, e.Migration, e.Kind, e.Accepted, e.Actor, e.FromPhase, e.ToPhase, e.FromStage, e.ToStage, e.Reason,
		dialect.Stamp(at)); err != nil {
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

// totals sums what every instance reported for a migration.
type totals struct {
	Matched    int64 `db:"matched"`
	Mismatched int64 `db:"mismatched"`
	OldTotal   int64 `db:"old_total"`
	OldErrors  int64 `db:"old_errors"`
	NewTotal   int64 `db:"new_total"`
	NewErrors  int64 `db:"new_errors"`
}

// since counts the comparisons made since the phase of row began.
func (t totals) since(row statusRow) Consistency {
	out := Consistency{Matched: t.Matched - row.Matched, Mismatched: t.Mismatched - row.Mismatched}
	if n := out.Matched + out.Mismatched; n > 0 {
		out.Ratio = float64(out.Matched) / float64(n)
	}
	return out
}

func (c *Coordinator) totals(ctx context.Context, q sqlx.QueryerContext, migration string) (totals, error) {
	var t totals
	err := sqlx.GetContext(ctx, q, &t, `SELECT coalesce(sum(matched), 0) AS matched, coalesce(sum(mismatched), 0) AS mismatched,
		coalesce(sum(old_total), 0) AS old_total, coalesce(sum(old_errors), 0) AS old_errors,
		coalesce(sum(new_total), 0) AS new_total, coalesce(sum(new_errors), 0) AS new_errors
		FROM schemashift_instances WHERE migration = $1`, migration)
	if err != nil {
		err = fmt.Errorf("sum heartbeats: %w", err)
	}
	return t, err
}

// gate checks the condition of the transition from cur to to, judged at
// now. It returns the gate's name and, when unmet, why.
func (c *Coordinator) gate(ctx context.Context, tx *sqlx.Tx, plan Plan, to Phase, row statusRow, now time.Time) (string, string, error) {
	switch to {
	case Planned, Expanded:
		return "expand", "", nil
	case DualWrite:
		missing, err := missingColumns(ctx, tx, plan.Columns)
		if err != nil {
			return "", "", err
		}
		if len(missing) > 0 {
			return "schema", "the expand's columns are missing: " + strings.Join(missing, ", "), nil
		}
		return "schema", "", nil
	case Backfill:
		reason, err := c.fleetAtLeast(ctx, tx, plan, flags.DualWrite, now)
		return "fleet at dualwrite", reason, err
	case Verify:
		for _, j := range plan.Backfills {
			st, err := backfillState(ctx, tx, j.Name, now)
			if err != nil {
				return "", "", err
			}
			if st != "done" {
				return "backfill done", fmt.Sprintf("backfill %q is %s", j.Name, st), nil
			}
		}
		return "backfill done", "", nil
	case Shadow:
		for _, j := range plan.Backfills {
			reason, err := verifiedSinceDone(ctx, tx, j.Name)
			if err != nil {
				return "", "", err
			}
			if reason != "" {
				return "verification passed", reason, nil
			}
		}
		return "verification passed", "", nil
	case Live, Rampdown:
		reason, err := c.consistency(ctx, tx, plan, row)
		return "shadow consistency", reason, err
	case Complete:
		reason, err := c.fleetAtLeast(ctx, tx, plan, flags.Rampdown, now)
		return "fleet at rampdown", reason, err
	case Contracted:
		reason, err := c.fleetAtLeast(ctx, tx, plan, flags.Complete, now)
		if reason != "" || err != nil {
			return "fleet only complete", reason, err
		}
		return "fleet only complete", "", nil
	}
	return "", fmt.Sprintf("no transition to %s", to), nil
}

func missingColumns(ctx context.Context, q sqlx.QueryerContext, cols []Column) ([]string, error) {
	d, err := dialects.For(ctx, q)
	if err != nil {
		return nil, err
	}
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
func backfillState(ctx context.Context, q sqlx.QueryerContext, job string, now time.Time) (string, error) {
	d, err := dialects.For(ctx, q)
	if err != nil {
		return "", err
	}
	exists, err := d.TableExists(ctx, q, ident.Table{Name: "schemashift_backfills"})
	if err != nil || !exists {
		return "not started", err
	}
	p, err := backfill.StateAt(ctx, q, job, now)
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
func (c *Coordinator) consistency(ctx context.Context, q sqlx.QueryerContext, plan Plan, row statusRow) (string, error) {
	t, err := c.totals(ctx, q, plan.Migration)
	if err != nil {
		return "", err
	}
	since := t.since(row)
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
func (c *Coordinator) fleetAtLeast(ctx context.Context, q sqlx.QueryerContext, plan Plan, min flags.Stage, now time.Time) (string, error) {
	fleet, err := readFleet(ctx, q, plan.Migration, c.ageOut, now)
	if err != nil {
		return "", err
	}
	if len(fleet.Instances) == 0 {
		return "no live instance reports heartbeats for this migration: the fleet cannot be seen", nil
	}
	var problems []string
	for _, in := range fleet.Instances {
		name := fmt.Sprintf("instance %s (%s %s)", in.ID, in.Service, in.Build)
		if in.FirstSeen.After(fleet.Now.Add(-plan.Window)) {
			problems = append(problems, name+" has not been seen for a whole window yet")
			continue
		}
		recent := false // positive evidence: an idle instance proves nothing
		for s, at := range in.StageSeen {
			if !at.After(fleet.Now.Add(-plan.Window)) {
				continue
			}
			if s < min {
				problems = append(problems, fmt.Sprintf("%s evaluated %s %s ago", name, s, fleet.Now.Sub(at).Round(time.Millisecond)))
			} else {
				recent = true
			}
		}
		if !recent {
			problems = append(problems, fmt.Sprintf("%s made no call at %s or later in the last %v", name, min, plan.Window))
		}
		if min == flags.Complete && in.LastOldCall != nil && in.LastOldCall.After(fleet.Now.Add(-plan.Window)) {
			problems = append(problems, fmt.Sprintf("%s called the old path %s ago", name, fleet.Now.Sub(*in.LastOldCall).Round(time.Millisecond)))
		}
	}
	for _, in := range fleet.Unaware {
		problems = append(problems, fmt.Sprintf("instance %s (%s %s) is live but does not know this migration", in.ID, in.Service, in.Build))
	}
	if len(problems) > 0 {
		return strings.Join(problems, "; "), nil
	}
	return "", nil
}

// InstanceState is what the ledger knows of one instance for one migration.
type InstanceState struct {
	ID          string                    `json:"id"`
	Service     string                    `json:"service"`
	Build       string                    `json:"build"`
	FirstSeen   time.Time                 `json:"first_seen"`
	LastSeen    time.Time                 `json:"last_seen"`
	MinStage    string                    `json:"min_stage"`
	MaxStage    string                    `json:"max_stage"`
	StageSeen   map[flags.Stage]time.Time `json:"stage_seen"`
	LastOldCall *time.Time                `json:"last_old_call,omitempty"`
	OldCalls    int64                     `json:"old_calls"`
	Matched     int64                     `json:"matched"`
	Mismatched  int64                     `json:"mismatched"`
	// ShadowDrops counts shadow reads never compared: the reader's bound
	// was full, or it was closed (a call sampled out is none).
	ShadowDrops int64 `json:"shadow_drops"`
}

// Fleet is the live instances of one migration, as the ledger sees them.
type Fleet struct {
	// Now is the time it was read at, by the coordinator's clock: the
	// instances are those seen within the age-out before it.
	Now       time.Time       `json:"now"`
	Instances []InstanceState `json:"instances"`
	// Unaware are live instances of the same services that do not report
	// this migration: old builds.
	Unaware []InstanceState `json:"unaware,omitempty"`
}

// readFleet reads the instances of migration live at now: seen within
// ageOut before it.
func readFleet(ctx context.Context, q sqlx.QueryerContext, migration string, ageOut time.Duration, now time.Time) (Fleet, error) {
	f := Fleet{Now: now}
	since := dialect.Stamp(now.Add(-ageOut))
	type instRow struct {
		ID          string     `db:"instance_id"`
		Service     string     `db:"service"`
		Build       string     `db:"build_version"`
		FirstSeen   time.Time  `db:"first_seen"`
		LastSeen    time.Time  `db:"last_seen"`
		StageSeen   string     `db:"stage_seen"`
		MinStage    string     `db:"min_stage"`
		MaxStage    string     `db:"max_stage"`
		LastOldCall *time.Time `db:"last_old_call"`
		OldCalls    int64      `db:"old_calls"`
		Matched     int64      `db:"matched"`
		Mismatched  int64      `db:"mismatched"`
		ShadowDrops int64      `db:"shadow_drops"`
	}
	var rows []instRow
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT instance_id, service, build_version, first_seen, last_seen, CAST(stage_seen AS text) AS stage_seen,
			min_stage, max_stage, last_old_call, old_calls, matched, mismatched, shadow_drops
		FROM schemashift_instances WHERE migration = $1 AND last_seen > $2 ORDER BY service, instance_id`,
		migration, since); err != nil {
		return f, fmt.Errorf("read fleet: %w", err)
	}
	for _, r := range rows {
		in := InstanceState{ID: r.ID, Service: r.Service, Build: r.Build, FirstSeen: r.FirstSeen, LastSeen: r.LastSeen,
			MinStage: r.MinStage, MaxStage: r.MaxStage, LastOldCall: r.LastOldCall, OldCalls: r.OldCalls, Matched: r.Matched,
			Mismatched: r.Mismatched, ShadowDrops: r.ShadowDrops, StageSeen: map[flags.Stage]time.Time{}}
		var seen map[string]time.Time
		if err := json.Unmarshal([]byte(r.StageSeen), &seen); err != nil {
			return f, fmt.Errorf("read fleet: stages of %s: %w", r.ID, err)
		}
		for name, at := range seen {
			s, err := flags.ParseStage(name)
			if err != nil {
				return f, fmt.Errorf("read fleet: %w", err)
			}
			in.StageSeen[s] = at
		}
		f.Instances = append(f.Instances, in)
	}
	var unaware []instRow
	if err := sqlx.SelectContext(ctx, q, &unaware, `SELECT i.instance_id, i.service, i.build_version, i.first_seen, i.last_seen
		FROM schemashift_instances i
		WHERE i.migration = '' AND i.last_seen > $2
		  AND i.service IN (SELECT service FROM schemashift_instances WHERE migration = $1)
		  AND NOT EXISTS (SELECT 1 FROM schemashift_instances k WHERE k.instance_id = i.instance_id AND k.migration = $1)
		ORDER BY i.service, i.instance_id`, migration, since); err != nil {
		return f, fmt.Errorf("read fleet: %w", err)
	}
	for _, r := range unaware {
		f.Unaware = append(f.Unaware, InstanceState{ID: r.ID, Service: r.Service, Build: r.Build, FirstSeen: r.FirstSeen, LastSeen: r.LastSeen})
	}
	return f, nil
}

// Migrations returns the names of the coordinator's migrations, sorted.
func (c *Coordinator) Migrations() []string { return c.migrations() }

// Plan returns the plan of a migration.
func (c *Coordinator) Plan(migration string) (Plan, error) { return c.plan(migration) }

// Fleet reads the live instances of a migration, at the coordinator's
// clock.
func (c *Coordinator) Fleet(ctx context.Context, migration string) (Fleet, error) {
	return readFleet(ctx, c.db, migration, c.ageOut, c.now())
}

// RunBackfills runs the plan's backfill jobs (the migration must be in its
// backfill phase), with opts for every job. The jobs run on the
// coordinator's clock (backfill.WithClock) unless opts set another.
func (c *Coordinator) RunBackfills(ctx context.Context, migration string, opts ...backfill.Option) error {
	plan, err := c.plan(migration)
	if err != nil {
		return err
	}
	st, err := Get(ctx, c.db, migration)
	if err != nil {
		return err
	}
	if st.Phase != Backfill {
		return fmt.Errorf("run backfills of %s: the migration is at %s, not backfill", migration, st.Phase)
	}
	opts = append([]backfill.Option{backfill.WithClock(c.clock)}, opts...)
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
func verifiedSinceDone(ctx context.Context, q sqlx.QueryerContext, job string) (string, error) {
	var row struct {
		Verify  string `db:"verify_status"`
		Status  string `db:"status"`
		Current bool   `db:"current"`
	}
	err := sqlx.GetContext(ctx, q, &row, `SELECT verify_status, status,
		coalesce(verify_started_at >= finished_at, false) AS current FROM schemashift_backfills WHERE job = $1`, job)
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
