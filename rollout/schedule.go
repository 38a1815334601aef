package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/ledger"
)

// ScheduleState is where a [Schedule] stands.
type ScheduleState string

// The states of a schedule.
const (
	// SchedulePending: waiting for its time, or for its gate.
	SchedulePending ScheduleState = "pending"
	// ScheduleRunning: a runner holds it, judging its gate or advancing.
	ScheduleRunning ScheduleState = "running"
	// ScheduleRan: its advance was made.
	ScheduleRan ScheduleState = "ran"
	// ScheduleCancelled: it will never run: cancelled by an operator,
	// its deadline passed with its gate unmet, or the migration moved
	// since it was scheduled.
	ScheduleCancelled ScheduleState = "cancelled"
)

// DefaultScheduleWindow is how long after its time a schedule made by
// [Coordinator.Schedule] goes on waiting for its gate.
const DefaultScheduleWindow = time.Hour

// scheduleClaim is how long a runner's claim of a schedule lasts: past
// it (the runner died), another may take the schedule over; the ledger's
// compare-and-set still makes its advance once.
const scheduleClaim = 5 * time.Minute

// Schedule is an advance to be made at a time if its gate is met then:
// "advance to live at 14:00 UTC". It is of one version of the migration,
// the one it was scheduled at: once the migration moves otherwise, it is
// cancelled. It is a value.
type Schedule struct {
	ID        string       `json:"id"`
	Migration string       `json:"migration"`
	To        ledger.Phase `json:"to"`
	Version   int64        `json:"version"`
	// Due is when it is to run; Until, when it stops waiting for an
	// unmet gate.
	Due     time.Time     `json:"due"`
	Until   time.Time     `json:"until"`
	Actor   string        `json:"actor"`
	Reason  string        `json:"reason"`
	Confirm bool          `json:"confirm,omitempty"`
	State   ScheduleState `json:"state"`
	// Outcome says what the last attempt found (why the gate is unmet,
	// what the advance made, why it was cancelled).
	Outcome   string    `json:"outcome,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Errors of the schedules.
var (
	// ErrUnknownSchedule: no schedule has the id.
	ErrUnknownSchedule = errors.New("unknown schedule")
	// ErrScheduleOver: the schedule ran or was cancelled already, or a
	// runner holds it now.
	ErrScheduleOver = errors.New("the schedule is not pending")
)

// Schedule schedules r's advance (the migration's next, at its current
// version, or r.Version when set) for at, on the coordinator's clock: at
// at, or the first run of [Coordinator.RunDueSchedules] after it, the
// advance is made if its gate is met; if not, why is recorded and
// noticed, and it is tried again at each run until [DefaultScheduleWindow]
// after at, when it is cancelled. It is recorded in the audit trail
// (kind "schedule") and noticed ("scheduled") at once.
//
// r.Actor (the caller's identity, which the coordinator does not
// authenticate) and r.Reason are required; a forced advance cannot be
// scheduled; r.Confirm is needed for the contract's, as for
// [Coordinator.Advance].
func (c *Coordinator) Schedule(ctx context.Context, r Request, at time.Time) (Schedule, error) {
	return c.ScheduleUntil(ctx, r, at, at.Add(DefaultScheduleWindow))
}

// ScheduleUntil is [Coordinator.Schedule] that waits for an unmet gate
// until until rather than for [DefaultScheduleWindow].
func (c *Coordinator) ScheduleUntil(ctx context.Context, r Request, at, until time.Time) (Schedule, error) {
	if _, err := c.plan(r.Migration); err != nil {
		return Schedule{}, err
	}
	now := c.now()
	s := Schedule{Migration: r.Migration, Due: dialect.Tick(at), Until: dialect.Tick(until), Actor: r.Actor, Reason: r.Reason, Confirm: r.Confirm,
		State: SchedulePending, CreatedAt: now, UpdatedAt: now}
	var id [8]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	s.ID = hex.EncodeToString(id[:])
	tx, release, err := c.begin(ctx)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %s: %w", r.Migration, err)
	}
	defer release()
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op
	row, err := ledger.Lock(ctx, c.in(tx), r.Migration)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %s: %w", r.Migration, err)
	}
	s.Version, s.To = row.Version, row.Phase+1
	fail := func(sentinel error, format string, args ...any) (Schedule, error) {
		cause := fmt.Errorf("schedule %s: %w: %s", r.Migration, sentinel, fmt.Sprintf(format, args...))
		_ = tx.Rollback() // nothing written to keep: the refusal is recorded apart
		return Schedule{}, errors.Join(cause, c.recordAt(context.WithoutCancel(ctx), scheduleEvent("schedule", s, false, cause.Error()), now))
	}
	switch {
	case r.Version != 0 && r.Version != row.Version:
		return fail(ErrConflict, "version is %d, the request read %d", row.Version, r.Version)
	case checkIdentity(r.Actor) != nil:
		return fail(ErrInvalidArgument, "%v: a schedule needs the caller's identity", checkIdentity(r.Actor))
	case strings.TrimSpace(r.Reason) == "":
		return fail(ErrReasonRequired, "a schedule needs a reason")
	case r.Force || r.ToOff || r.Acknowledge:
		return fail(ErrInvalidArgument, "only a plain advance can be scheduled (not forced, acknowledging or rolling back)")
	case row.Phase == ledger.Contracted:
		return fail(ErrIrreversible, "nothing comes after contracted")
	case s.To == ledger.Contracted && !r.Confirm:
		return fail(ErrConfirmRequired, "the contract's advance is scheduled with confirmation")
	case at.Before(now):
		return fail(ErrInvalidArgument, "%s is in the past (the clock reads %s)", s.Due.Format(time.RFC3339), now.Format(time.RFC3339))
	case !until.After(at):
		return fail(ErrInvalidArgument, "it waits until %s, not after its time %s", s.Until.Format(time.RFC3339), s.Due.Format(time.RFC3339))
	}
	if _, err := tx.ExecContext(ctx, c.dialect.InsertSchedule(), s.ID, s.Migration, s.To.String(), s.Version, dialect.Stamp(s.Due),
		dialect.Stamp(s.Until), s.Actor, s.Reason, s.Confirm, dialect.Stamp(now)); err != nil {
		return Schedule{}, fmt.Errorf("schedule %s: %w", r.Migration, err)
	}
	if err := ledger.Record(ctx, c.in(tx), scheduleEvent("schedule", s, true, s.Reason)); err != nil {
		return Schedule{}, fmt.Errorf("schedule %s: %w: %w", r.Migration, ErrAudit, err)
	}
	if err := tx.Commit(); err != nil {
		return Schedule{}, fmt.Errorf("schedule %s: %w", r.Migration, err)
	}
	c.noticeSchedule(NoticeScheduled, s, s.Actor, s.Reason, now)
	return s, nil
}

// scheduleEvent is the audit trail's event of something done to s.
func scheduleEvent(kind string, s Schedule, accepted bool, reason string) ledger.Event {
	v := s.Version
	return ledger.Event{Migration: s.Migration, Kind: kind, Accepted: accepted, Actor: s.Actor, FromPhase: (s.To - 1).String(),
		ToPhase: s.To.String(), FromStage: (s.To - 1).Stage().String(), ToStage: s.To.Stage().String(), Version: &v,
		Reason: fmt.Sprintf("schedule %s at %s: %s", s.ID, s.Due.UTC().Format(time.RFC3339), reason), At: s.UpdatedAt}
}

// noticeSchedule notices kind of s, its id stable for the schedule and
// kind: the notices of one schedule's end, by two runners, are one.
func (c *Coordinator) noticeSchedule(kind NoticeKind, s Schedule, actor, reason string, at time.Time) {
	c.notify(Notice{ID: noticeID(s.Migration, fmt.Sprint(s.Version), string(kind), s.ID), Kind: kind, Migration: s.Migration,
		From: s.To - 1, To: s.To, Version: s.Version, Actor: actor, Reason: reason, Schedule: s.ID, Due: s.Due, At: at})
}

// CancelSchedule cancels a pending schedule, by actor (the caller's
// identity) for reason: it never runs. One a runner holds at the moment,
// or that is over, is refused with [ErrScheduleOver]. It is recorded in
// the audit trail (kind "schedule-cancel") and noticed.
func (c *Coordinator) CancelSchedule(ctx context.Context, id, actor, reason string) (Schedule, error) {
	s, err := c.ReadSchedule(ctx, id)
	if err != nil {
		return Schedule{}, err
	}
	if err := checkIdentity(actor); err != nil {
		return Schedule{}, fmt.Errorf("cancel schedule %s: %w: %v", id, ErrInvalidArgument, err)
	}
	if strings.TrimSpace(reason) == "" {
		return Schedule{}, fmt.Errorf("cancel schedule %s: %w", id, ErrReasonRequired)
	}
	s.Actor = actor
	ok, err := c.settle(ctx, s, SchedulePending, ScheduleCancelled, "cancelled by "+actor+": "+reason, "schedule-cancel")
	if err != nil {
		return Schedule{}, err
	}
	if !ok {
		now, _ := c.ReadSchedule(ctx, id)
		return Schedule{}, fmt.Errorf("cancel schedule %s: %w: it is %s", id, ErrScheduleOver, now.State)
	}
	c.noticeSchedule(NoticeScheduleCancelled, s, actor, reason, c.now())
	return c.ReadSchedule(ctx, id)
}

// settle moves s from state from to to with outcome, and records kind
// in the audit trail with it, in one transaction: false when s was no
// longer in from (another runner, a cancel, got there first).
func (c *Coordinator) settle(ctx context.Context, s Schedule, from, to ScheduleState, outcome, kind string) (bool, error) {
	now := c.now()
	tx, release, err := c.begin(ctx)
	if err != nil {
		return false, fmt.Errorf("settle schedule %s: %w", s.ID, err)
	}
	defer release()
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op
	res, err := tx.ExecContext(ctx, c.dialect.SettleSchedule(), s.ID, string(to), outcome, dialect.Stamp(now), string(from))
	if err != nil {
		return false, fmt.Errorf("settle schedule %s: %w", s.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if kind != "" {
		s.UpdatedAt = now
		if err := ledger.Record(ctx, c.in(tx), scheduleEvent(kind, s, true, outcome)); err != nil {
			return false, fmt.Errorf("settle schedule %s: %w: %w", s.ID, ErrAudit, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("settle schedule %s: %w", s.ID, err)
	}
	return true, nil
}

// scheduleRow is a schedule as its table keeps it.
type scheduleRow struct {
	ID           string       `db:"id"`
	Migration    string       `db:"migration"`
	To           string       `db:"to_phase"`
	Version      int64        `db:"version"`
	Due          dialect.Time `db:"due_at"`
	Until        dialect.Time `db:"until_at"`
	Actor        string       `db:"actor"`
	Reason       string       `db:"reason"`
	Confirm      bool         `db:"confirm"`
	State        string       `db:"state"`
	ClaimedUntil dialect.Time `db:"claimed_until"`
	Outcome      string       `db:"outcome"`
	CreatedAt    dialect.Time `db:"created_at"`
	UpdatedAt    dialect.Time `db:"updated_at"`
}

func (r scheduleRow) schedule() (Schedule, error) {
	to, err := ledger.ParsePhase(r.To)
	if err != nil {
		return Schedule{}, fmt.Errorf("read schedule %s: %w", r.ID, err)
	}
	return Schedule{ID: r.ID, Migration: r.Migration, To: to, Version: r.Version, Due: r.Due.UTC(), Until: r.Until.UTC(), Actor: r.Actor,
		Reason: r.Reason, Confirm: r.Confirm, State: ScheduleState(r.State), Outcome: r.Outcome, CreatedAt: r.CreatedAt.UTC(),
		UpdatedAt: r.UpdatedAt.UTC()}, nil
}

func (c *Coordinator) readSchedules(ctx context.Context, q sqlx.QueryerContext, query string, args ...any) ([]Schedule, error) {
	exists, err := c.dialect.TableExists(ctx, q, ident.Table{Name: "schemashift_schedules"})
	if err != nil || !exists {
		return nil, err // an older ledger, read only: no schedule
	}
	var rows []scheduleRow
	if err := sqlx.SelectContext(ctx, q, &rows, query, args...); err != nil {
		return nil, fmt.Errorf("read schedules: %w", err)
	}
	out := make([]Schedule, 0, len(rows))
	for _, r := range rows {
		s, err := r.schedule()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// ReadSchedule reads one schedule.
func (c *Coordinator) ReadSchedule(ctx context.Context, id string) (Schedule, error) {
	s, err := c.readSchedules(ctx, c.db, c.dialect.ReadSchedule(), id)
	if err != nil {
		return Schedule{}, err
	}
	if len(s) == 0 {
		return Schedule{}, fmt.Errorf("%w %q", ErrUnknownSchedule, id)
	}
	return s[0], nil
}

// Schedules reads the last limit schedules of a migration ("" for every
// migration's), by due time, latest first: for a status, the board and
// the runbook.
func (c *Coordinator) Schedules(ctx context.Context, migration string, limit int) ([]Schedule, error) {
	return c.readSchedules(ctx, c.db, c.dialect.ListSchedules(), migration, limit)
}

// RunSchedules runs [Coordinator.RunDueSchedules] every poll (real time;
// what is due is judged on the coordinator's clock) until ctx ends, and
// returns ctx's error, or the first error of a run. It starts no
// goroutine: it is the caller's loop, run beside [Coordinator.Watch] or
// in a process of its own. Any number of coordinators may run it on one
// ledger: each schedule is run by one of them at a time (a claim that
// lasts five minutes, taken by a compare-and-set), and its advance is the
// ledger's compare-and-set of the version it was scheduled at, made once.
func (c *Coordinator) RunSchedules(ctx context.Context, poll time.Duration) error {
	if poll <= 0 {
		return fmt.Errorf("run schedules: %w: poll %v is not positive", ErrInvalidArgument, poll)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := c.RunDueSchedules(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RunDueSchedules runs, once, every schedule of the coordinator's
// migrations due at its clock, and returns them as they were left. Each
// is claimed first (one a runner elsewhere holds is passed over), then:
//
//   - past its Until, it is cancelled ("schedule-cancelled"), its last
//     outcome said;
//   - the migration moved since it was scheduled: it ran if the ledger's
//     transition from its version is its advance (a runner that stopped
//     before saying so), else it is cancelled;
//   - its gate unmet: it waits on (pending), and why is recorded in the
//     audit trail (kind "schedule-wait") and noticed ("refused") each
//     time the reason changes;
//   - its gate met: that is noticed ("gate-met"), and the advance made as
//     r of [Coordinator.Advance] with the schedule's actor, reason
//     (prefixed "schedule <id>:") and version; made, it ran
//     ("schedule-ran"); refused (the gate unmet again a moment after the
//     check, a policy), it waits on.
func (c *Coordinator) RunDueSchedules(ctx context.Context) ([]Schedule, error) {
	now := c.now()
	due, err := c.readSchedules(ctx, c.db, c.dialect.DueSchedules(), dialect.Stamp(now))
	if err != nil {
		return nil, err
	}
	var out []Schedule
	for _, s := range due {
		if _, ok := c.plans[s.Migration]; !ok {
			continue // another coordinator's migration
		}
		res, err := c.db.ExecContext(ctx, c.dialect.ClaimSchedule(), s.ID, dialect.Stamp(now.Add(scheduleClaim)), dialect.Stamp(now))
		if err != nil {
			return out, fmt.Errorf("claim schedule %s: %w", s.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return out, fmt.Errorf("claim schedule %s: %w", s.ID, err)
			}
			continue // another runner holds it, or it is over
		}
		if err := c.runSchedule(ctx, s, now); err != nil {
			return out, err
		}
		if s, err = c.ReadSchedule(ctx, s.ID); err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}

// runSchedule runs s, claimed, at now.
func (c *Coordinator) runSchedule(ctx context.Context, s Schedule, now time.Time) error {
	cancel := func(outcome string) error {
		ok, err := c.settle(ctx, s, ScheduleRunning, ScheduleCancelled, outcome, "schedule-cancel")
		if ok {
			c.noticeSchedule(NoticeScheduleCancelled, s, s.Actor, outcome, c.now())
		}
		return err
	}
	ran := func(outcome string) error {
		ok, err := c.settle(ctx, s, ScheduleRunning, ScheduleRan, outcome, "schedule-ran")
		if ok {
			c.noticeSchedule(NoticeScheduleRan, s, s.Actor, outcome, c.now())
		}
		return err
	}
	wait := func(outcome, gate string) error {
		if _, err := c.settle(ctx, s, ScheduleRunning, SchedulePending, outcome, ""); err != nil {
			return err
		}
		if outcome == s.Outcome {
			return nil // said already
		}
		s.UpdatedAt = c.now()
		if err := c.recordAt(context.WithoutCancel(ctx), scheduleEvent("schedule-wait", s, false, outcome), s.UpdatedAt); err != nil {
			return err
		}
		n := Notice{Kind: NoticeRefused, Migration: s.Migration, From: s.To - 1, To: s.To, Version: s.Version, Actor: s.Actor,
			Reason: outcome, Gate: gate, Schedule: s.ID, Due: s.Due, At: s.UpdatedAt}
		c.notify(n)
		return nil
	}
	row, err := ledger.Read(ctx, c.db, s.Migration)
	if err != nil {
		return fmt.Errorf("run schedule %s: %w", s.ID, err)
	}
	if row.Version != s.Version {
		return c.moved(ctx, s, row, ran, cancel)
	}
	if now.After(s.Until) {
		return cancel(fmt.Sprintf("its gate was still unmet at %s: %s", s.Until.Format(time.RFC3339), s.Outcome))
	}
	ready, err := c.check(ctx, s.Migration, now)
	if err != nil {
		_ = wait("the gate could not be judged: "+err.Error(), "") // the error is returned; tried again next run
		return fmt.Errorf("run schedule %s: %w", s.ID, err)
	}
	if !ready.Met {
		return wait(fmt.Sprintf("gate %q unmet: %s", ready.Gate, ready.Reason), ready.Gate)
	}
	c.notify(Notice{ID: noticeID(s.Migration, fmt.Sprint(s.Version), string(NoticeGateMet), s.ID), Kind: NoticeGateMet,
		Migration: s.Migration, From: ready.From, To: ready.Next, Version: s.Version, Actor: s.Actor, Gate: ready.Gate,
		Reason: ready.Reason, Schedule: s.ID, Due: s.Due, At: now})
	st, err := c.Advance(ctx, Request{Migration: s.Migration, Version: s.Version, Actor: s.Actor, Reason: scheduleMark(s) + s.Reason,
		Confirm: s.Confirm})
	switch {
	case err == nil:
		return ran(fmt.Sprintf("advanced to %s at version %d", st.Phase, st.Version))
	case errors.Is(err, ErrConflict):
		row, rerr := ledger.Read(ctx, c.db, s.Migration)
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		return c.moved(ctx, s, row, ran, cancel)
	}
	var re *RefusedError
	var pe *PolicyError
	if errors.As(err, &re) || errors.As(err, &pe) {
		return wait("the advance was refused: "+err.Error(), ready.Gate)
	}
	_ = wait("the advance failed: "+err.Error(), "") // the error is returned; tried again next run
	return fmt.Errorf("run schedule %s: %w", s.ID, err)
}

// scheduleMark begins the reason of a schedule's advance: how the
// ledger's event of it is told from others.
func scheduleMark(s Schedule) string { return "schedule " + s.ID + ": " }

// moved settles s, whose migration is at row, moved since s was
// scheduled: ran, if the ledger's transition from s's version is s's
// advance (another runner made it), else cancelled.
func (c *Coordinator) moved(ctx context.Context, s Schedule, row ledger.Row, ran, cancel func(string) error) error {
	events, err := ledger.Audit(ctx, c.db, s.Migration, 200)
	if err != nil {
		return fmt.Errorf("run schedule %s: %w", s.ID, err)
	}
	for _, e := range events {
		if e.Accepted && e.Version != nil && *e.Version == s.Version+1 && e.Kind == "advance" && strings.HasPrefix(e.Reason, scheduleMark(s)) {
			return ran(fmt.Sprintf("advanced to %s at version %d", e.ToPhase, *e.Version))
		}
	}
	return cancel(fmt.Sprintf("the migration moved since it was scheduled (version %d, now %d at %s)", s.Version, row.Version, row.Phase))
}
