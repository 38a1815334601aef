package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/ledger"
)

// DefaultSunsetWarn is how long before a [Sunset]'s date its warning
// starts when the plan leaves Warn zero.
const DefaultSunsetWarn = 7 * 24 * time.Hour

// Sunset is the date by which the old path should be gone: every
// instance off it, the migration contracted. It is a value, part of a
// [Plan]'s definition (At as an instant: the same date written in
// another zone is the same definition). The zero Sunset sets none.
//
// It gates no transition: it is a deadline the board, the status and the
// runbook show ([Coordinator.Deadline]), warning from Warn before At and
// overdue from At on, and past it naming the instances whose heartbeats
// still report old-path calls (see [DeadlineState]).
type Sunset struct {
	// At is the date. Zero: no sunset.
	At time.Time
	// Warn is how long before At the warning starts (default
	// [DefaultSunsetWarn]); not negative.
	Warn time.Duration
}

// sunsetJSON is a Sunset as the ledger stores it: At in UTC, so that
// the definition hash does not depend on the zone it was written in.
type sunsetJSON struct {
	At   string        `json:"at"`
	Warn time.Duration `json:"warn"`
}

// MarshalJSON writes At in UTC, RFC 3339 with its fraction of a second.
func (s Sunset) MarshalJSON() ([]byte, error) {
	return json.Marshal(sunsetJSON{At: s.At.UTC().Format(time.RFC3339Nano), Warn: s.Warn})
}

// UnmarshalJSON reads what MarshalJSON writes, At in UTC.
func (s *Sunset) UnmarshalJSON(b []byte) error {
	var j sunsetJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	at, err := time.Parse(time.RFC3339Nano, j.At)
	if err != nil {
		return fmt.Errorf("sunset: %w", err)
	}
	*s = Sunset{At: at.UTC(), Warn: j.Warn}
	return nil
}

// IsZero reports whether s sets no sunset (the JSON of a plan leaves it
// out then, so that a plan without one hashes as it did before sunsets).
func (s Sunset) IsZero() bool { return s.At.IsZero() && s.Warn == 0 }

func (s Sunset) String() string {
	if s.At.IsZero() {
		return "none"
	}
	return s.At.UTC().Format(time.RFC3339) + " (warning " + s.Warn.String() + " before)"
}

// checkSunset refuses a sunset that could not be judged as meant (a
// warning without a date, a negative warning, a date RFC 3339 cannot
// write) and sets the warning left zero to its default. The date is kept
// in UTC.
func (p *Plan) checkSunset() error {
	s := &p.Sunset
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: sunset: %s", ErrInvalidPlan, p.Migration, fmt.Sprintf(format, args...))
	}
	switch {
	case s.At.IsZero() && s.Warn != 0:
		return fail("a warning of %v before no date", s.Warn)
	case s.At.IsZero():
		return nil
	case s.Warn < 0:
		return fail("warning %v is negative", s.Warn)
	case s.At.UTC().Year() < 1 || s.At.UTC().Year() > 9999:
		return fail("date %v is outside the years 1 to 9999", s.At)
	}
	s.At = s.At.UTC()
	if s.Warn == 0 {
		s.Warn = DefaultSunsetWarn
	}
	return nil
}

// DeadlineStatus is where a migration stands against its [Sunset].
type DeadlineStatus string

// The deadline statuses.
const (
	// DeadlineNone: the plan sets no sunset.
	DeadlineNone DeadlineStatus = "none"
	// DeadlineOK: the date is further off than the warning.
	DeadlineOK DeadlineStatus = "ok"
	// DeadlineWarning: the date is within the warning, not yet here.
	DeadlineWarning DeadlineStatus = "warning"
	// DeadlineOverdue: the date has come, and the migration is not
	// contracted.
	DeadlineOverdue DeadlineStatus = "overdue"
	// DeadlineDone: the migration is contracted, the old path gone;
	// whatever the date.
	DeadlineDone DeadlineStatus = "done"
)

// LateCaller is a live instance whose heartbeats reported old-path
// calls after the sunset's date: whom to chase. It is a value.
type LateCaller struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	Build   string `json:"build"`
	// LastOldCall is the heartbeat that last reported an old-path call
	// (the calls were made in the interval before it).
	LastOldCall time.Time `json:"last_old_call"`
	// OldCalls is every old-path call the instance reported for the
	// migration, before the date too.
	OldCalls int64 `json:"old_calls"`
}

func (l LateCaller) String() string {
	return fmt.Sprintf("instance %s (service %s, build %s) last at %s", strconv.Quote(l.ID), strconv.Quote(l.Service),
		strconv.Quote(l.Build), l.LastOldCall.UTC().Format(time.RFC3339Nano))
}

// DeadlineState is a migration against its [Sunset], judged at Now. It
// is a value.
type DeadlineState struct {
	Migration string         `json:"migration"`
	State     DeadlineStatus `json:"state"`
	// At and Warn are the plan's sunset (zero for none).
	At   time.Time     `json:"at,omitzero"`
	Warn time.Duration `json:"warn,omitempty"`
	// Now is when it was judged, by the coordinator's clock; Left is At
	// minus Now: negative once overdue (0 without a sunset).
	Now  time.Time     `json:"now"`
	Left time.Duration `json:"left"`
	// LateCallers are, once the date has come, the live instances that
	// reported old-path calls after it (by service, build and id), an
	// instance whose last old-path call came before it not among them.
	LateCallers []LateCaller `json:"late_callers,omitempty"`
}

// Deadline judges migration against its plan's [Sunset] at the
// coordinator's clock ([WithClock]): the time left, the status, and
// once overdue the live instances (fleet heartbeats within the age-out,
// [WithAgeOut]) that made old-path calls after the date.
//
// The first time any coordinator sees a migration overdue with late
// callers, it records it in the audit trail: an event of kind
// "sunset-overdue", actor "sunset", naming the late callers (the first
// 20, and how many more). It is recorded once per migration, whatever
// the number of polls and of coordinators polling at once (a row of the
// ledger's table schemashift_sunset_overdue, written with the event in
// one transaction, says it was). A coordinator opened with
// [OpenReadOnly] records nothing: it reports. An event it could not
// record is an error matching [ErrAudit], with the state judged.
func (c *Coordinator) Deadline(ctx context.Context, migration string) (DeadlineState, error) {
	return c.DeadlineAt(ctx, migration, c.now())
}

// DeadlineAt is [Coordinator.Deadline] judged at now (a reading of
// [Coordinator.Now]): for a reader that judges several things at one
// time.
func (c *Coordinator) DeadlineAt(ctx context.Context, migration string, now time.Time) (DeadlineState, error) {
	plan, err := c.plan(migration)
	if err != nil {
		return DeadlineState{}, err
	}
	s := DeadlineState{Migration: migration, State: DeadlineNone, Now: now}
	if plan.Sunset.At.IsZero() {
		return s, nil
	}
	s.At, s.Warn = plan.Sunset.At.UTC(), plan.Sunset.Warn
	s.Left = s.At.Sub(now) // saturates: a date centuries off is no overflow
	row, err := ledger.Read(ctx, c.db, migration)
	if err != nil {
		return s, fmt.Errorf("deadline %s: %w", migration, err)
	}
	switch {
	case row.Status.Phase == ledger.Contracted:
		s.State = DeadlineDone
		return s, nil
	case s.Left > s.Warn:
		s.State = DeadlineOK
		return s, nil
	case s.Left > 0:
		s.State = DeadlineWarning
		c.noticeDeadline(NoticeDeadlineNear, s, row.Status, fmt.Sprintf("the old path should be gone in %s (by %s)", s.Left.Round(time.Minute), s.At.Format(time.RFC3339)))
		return s, nil
	}
	s.State = DeadlineOverdue
	live, err := fleet.Read(ctx, c.db, migration, c.ageOut, now)
	if err != nil {
		return s, fmt.Errorf("deadline %s: %w", migration, err)
	}
	for _, in := range live.Instances {
		if in.LastOldCall != nil && in.LastOldCall.After(s.At) {
			s.LateCallers = append(s.LateCallers, LateCaller{ID: in.ID, Service: in.Service, Build: in.Build,
				LastOldCall: in.LastOldCall.UTC(), OldCalls: in.OldCalls})
		}
	}
	slices.SortFunc(s.LateCallers, func(a, b LateCaller) int {
		return strings.Compare(a.Service+"\x00"+a.Build+"\x00"+a.ID, b.Service+"\x00"+b.Build+"\x00"+b.ID)
	})
	if len(s.LateCallers) > 0 {
		names := make([]string, 0, min(len(s.LateCallers), lateCallersNamed))
		for _, l := range s.LateCallers[:min(len(s.LateCallers), lateCallersNamed)] {
			names = append(names, l.String())
		}
		c.noticeDeadline(NoticeDeadlinePassed, s, row.Status, fmt.Sprintf("past %s, %d live instances still call the old path: %s",
			s.At.Format(time.RFC3339), len(s.LateCallers), strings.Join(names, ", ")))
	}
	if len(s.LateCallers) > 0 && !c.readOnly {
		if err := c.noteOverdue(ctx, s, row.Status, now); err != nil {
			return s, err
		}
	}
	return s, nil
}

// lateCallersNamed is how many late callers the audit event names.
const lateCallersNamed = 20

// noteOverdue records, once per migration, that s is overdue with late
// callers: the ledger's row says whether it was, read first so that a
// poll that finds it writes nothing, and is written with the event in
// one transaction, so that of two coordinators racing one records it.
func (c *Coordinator) noteOverdue(ctx context.Context, s DeadlineState, cur ledger.Status, now time.Time) error {
	var noted int
	if err := c.db.GetContext(ctx, &noted, c.dialect.SunsetNoted(), s.Migration); err != nil {
		return fmt.Errorf("%w: sunset of %s: %w", ErrAudit, s.Migration, err)
	}
	if noted > 0 {
		return nil
	}
	tx, err := c.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: sunset of %s: %w", ErrAudit, s.Migration, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	res, err := tx.ExecContext(ctx, c.dialect.NoteSunset(), s.Migration, dialect.Stamp(s.At), dialect.Stamp(now))
	if err != nil {
		return fmt.Errorf("%w: sunset of %s: %w", ErrAudit, s.Migration, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%w: sunset of %s: %w", ErrAudit, s.Migration, err)
	}
	if n == 0 {
		return nil // another coordinator noted it first
	}
	names := make([]string, 0, min(len(s.LateCallers), lateCallersNamed))
	for _, l := range s.LateCallers[:min(len(s.LateCallers), lateCallersNamed)] {
		names = append(names, l.String())
	}
	reason := fmt.Sprintf("the old path's sunset was %s; old-path calls after it from %d instance(s): %s",
		s.At.Format(time.RFC3339Nano), len(s.LateCallers), strings.Join(names, "; "))
	if more := len(s.LateCallers) - len(names); more > 0 {
		reason += fmt.Sprintf("; and %d more", more)
	}
	if err := ledger.Record(ctx, c.in(tx), ledger.Event{Migration: s.Migration, Kind: "sunset-overdue", Accepted: true, Actor: "sunset",
		FromPhase: cur.Phase.String(), FromStage: cur.Stage.String(), Reason: reason, At: now}); err != nil {
		return fmt.Errorf("%w: sunset of %s: %w", ErrAudit, s.Migration, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: sunset of %s: %w", ErrAudit, s.Migration, err)
	}
	return nil
}

// Overdue is how long ago the date passed (0 before it).
func (d DeadlineState) Overdue() time.Duration {
	if d.Left < 0 {
		return -d.Left
	}
	return 0
}

// noticeDeadline tells the notifier, once per process, migration and
// sunset date, that the deadline s is near or passed; the notice's ID is
// the same from every coordinator, for receivers to deduplicate on.
func (c *Coordinator) noticeDeadline(kind NoticeKind, s DeadlineState, cur ledger.Status, reason string) {
	if c.notices == nil {
		return
	}
	at := s.At.UTC().Format(time.RFC3339Nano)
	if _, told := c.deadlinesTold.LoadOrStore(string(kind)+"\x00"+s.Migration+"\x00"+at, true); told {
		return
	}
	c.notify(Notice{ID: noticeID(s.Migration, string(kind), at), Kind: kind, Migration: s.Migration, From: cur.Phase, To: cur.Phase,
		Version: cur.Version, Actor: "sunset", Reason: reason, Due: s.At, At: s.Now})
}
