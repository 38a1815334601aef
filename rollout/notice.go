package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/schemashift/schemashift/ledger"
)

// NoticeKind says what a [Notice] tells of.
type NoticeKind string

// The kinds of notice.
const (
	// NoticeTransition: a transition was made (an advance or a rollback).
	NoticeTransition NoticeKind = "transition"
	// NoticeRefused: a transition was asked for and refused (a gate, a
	// policy, a conflict); Reason says why.
	NoticeRefused NoticeKind = "refused"
	// NoticeGateMet: a scheduled advance found its gate met and is about
	// to advance.
	NoticeGateMet NoticeKind = "gate-met"
	// NoticeGuardrailTrip: a guardrail tripped and stepped the migration
	// back.
	NoticeGuardrailTrip NoticeKind = "guardrail-trip"
	// NoticeScheduled: an advance was scheduled ([Coordinator.Schedule]);
	// Due says when it is to run.
	NoticeScheduled NoticeKind = "scheduled"
	// NoticeScheduleCancelled: a schedule was cancelled, by an operator
	// or because it can no longer run (its deadline passed, the migration
	// moved).
	NoticeScheduleCancelled NoticeKind = "schedule-cancelled"
	// NoticeScheduleRan: a schedule's advance was made.
	NoticeScheduleRan NoticeKind = "schedule-ran"
	// NoticeDeadlineNear: a migration's sunset ([Sunset]) is within its
	// warning; NoticeDeadlinePassed: it has passed and old-path callers
	// remain. Each is told once per sunset date by a coordinator that
	// judges the deadline (status, the board); its ID is the same from
	// every coordinator.
	NoticeDeadlineNear   NoticeKind = "deadline-near"
	NoticeDeadlinePassed NoticeKind = "deadline-passed"
)

// Notice is one thing that happened, or is about to, to a migration: for
// the observers of a coordinator ([WithNotifier]) and the receivers of a
// [Webhook]. It is a value.
//
// ID is stable: the same happening has the same ID however often it is
// delivered (a webhook's retries, two coordinators noticing one
// schedule's end), so that a receiver deduplicates on it. It is derived
// from the migration, the version the notice is of, its kind, and the
// audit trail's event (or the schedule) it tells of.
type Notice struct {
	ID        string       `json:"id"`
	Kind      NoticeKind   `json:"kind"`
	Migration string       `json:"migration"`
	From      ledger.Phase `json:"from"`
	To        ledger.Phase `json:"to"`
	// Version is the migration's version the notice is of: the one a
	// transition made, the one a refusal or a schedule read.
	Version int64  `json:"version"`
	Actor   string `json:"actor"`
	Reason  string `json:"reason,omitempty"`
	// Gate is the gate judged, where one was (a refusal, a gate met).
	Gate string `json:"gate,omitempty"`
	// Schedule is the schedule's id, of the schedule kinds; Due is when
	// it is to run.
	Schedule string    `json:"schedule,omitempty"`
	Due      time.Time `json:"due,omitzero"`
	// At is when it happened, on the coordinator's clock.
	At time.Time `json:"at"`
}

// noticeID is the stable id of a notice from its parts.
func noticeID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p) // length-prefixed: no two lists of parts spell alike
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Notifier is told of every notice of a coordinator ([WithNotifier]),
// one at a time, in the order they happened, after the ledger committed
// what they tell of. It should return promptly: the coordinator hands it
// notices from a delivery goroutine of its own, never from a transition,
// so a slow Notifier delays only the notices after it (and past the
// queue's bound, [Coordinator.DroppedNotices], loses them), and a
// Notifier that panics loses that notice only. A [Webhook] is one.
type Notifier interface {
	Notify(ctx context.Context, n Notice)
}

// defaultNoticeQueue is how many notices wait for a slow Notifier before
// the next is dropped.
const defaultNoticeQueue = 1024

// WithNotifier tells n of every notice of the coordinator (see
// [Notifier]): transitions, refusals, guardrail trips and schedules. The
// coordinator holds at most 1024 notices for n ([WithNoticeQueue]); past
// that it drops them and counts them ([Coordinator.DroppedNotices]).
func WithNotifier(n Notifier) CoordinatorOption {
	return func(c *Coordinator) error {
		switch {
		case n == nil:
			return fmt.Errorf("%w: notifier is nil", ErrInvalidArgument)
		case c.notices != nil:
			return fmt.Errorf("%w: a notifier is set already", ErrInvalidArgument)
		}
		c.notices = &noticeQueue{to: n, max: defaultNoticeQueue}
		c.deadlinesTold = &sync.Map{}
		return nil
	}
}

// WithNoticeQueue sets how many notices wait for a slow Notifier before
// the next is dropped (default 1024). It comes after [WithNotifier],
// and is refused without one.
func WithNoticeQueue(size int) CoordinatorOption {
	return func(c *Coordinator) error {
		switch {
		case c.notices == nil:
			return fmt.Errorf("%w: a notice queue without a notifier (WithNotifier comes first)", ErrInvalidArgument)
		case size <= 0:
			return fmt.Errorf("%w: notice queue %d is not positive", ErrInvalidArgument, size)
		}
		c.notices.max = size
		return nil
	}
}

// noticeQueue is the notices waiting for a Notifier, and their delivery:
// a goroutine that runs while notices wait and ends once none does, so
// that the coordinator, which has nothing to close, keeps nothing
// running at rest. It is written here rather than taken from a library:
// it is a slice, a mutex and a flag.
type noticeQueue struct {
	to  Notifier
	max int

	mu       sync.Mutex
	pending  []Notice
	running  bool
	idle     chan struct{} // closed when the delivery ends; nil when none runs
	dropped  int64
	panicked int64
}

// push queues n for delivery, or drops it when the queue is full. It
// never blocks.
func (q *noticeQueue) push(n Notice) {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) >= q.max {
		q.dropped++
		return
	}
	q.pending = append(q.pending, n)
	if !q.running {
		q.running, q.idle = true, make(chan struct{})
		go q.deliver(q.idle)
	}
}

// deliver hands the queue's notices to the Notifier, oldest first, until
// none waits.
func (q *noticeQueue) deliver(idle chan struct{}) {
	defer close(idle)
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		n := q.pending[0]
		q.pending[0] = Notice{}
		q.pending = q.pending[1:]
		q.mu.Unlock()
		q.one(n)
	}
}

// one delivers n, a panic of the Notifier caught and counted.
func (q *noticeQueue) one(n Notice) {
	defer func() {
		if recover() != nil {
			q.mu.Lock()
			q.panicked++
			q.mu.Unlock()
		}
	}()
	q.to.Notify(context.Background(), n)
}

// ErrNoNotifier is returned by [Coordinator.FlushNotices] of a
// coordinator made without [WithNotifier].
var ErrNoNotifier = errors.New("no notifier")

// FlushNotices waits until every notice queued so far has been handed to
// the coordinator's Notifier, or ctx ends: before a process exits, or in
// a test.
func (c *Coordinator) FlushNotices(ctx context.Context) error {
	q := c.notices
	if q == nil {
		return ErrNoNotifier
	}
	for {
		q.mu.Lock()
		idle, running := q.idle, q.running
		q.mu.Unlock()
		if !running {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("flush notices: %w", ctx.Err())
		}
	}
}

// DroppedNotices returns how many notices the coordinator dropped, its
// Notifier too slow to take them, and how many the Notifier panicked on.
func (c *Coordinator) DroppedNotices() (dropped, panicked int64) {
	q := c.notices
	if q == nil {
		return 0, 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped, q.panicked
}

// notify queues n for the coordinator's Notifier, if it has one, at its
// clock's time when n has none, with its id when n has none.
func (c *Coordinator) notify(n Notice) {
	if c.notices == nil {
		return
	}
	if n.At.IsZero() {
		n.At = c.now()
	}
	if n.ID == "" {
		n.ID = noticeID(n.Migration, fmt.Sprint(n.Version), string(n.Kind), n.Schedule, n.At.UTC().Format(time.RFC3339Nano))
	}
	c.notices.push(n)
}

// noticeTransition queues the notice of a transition asked for by r
// (forward or back, its kind), called once the transition is over (its
// ledger transaction committed or rolled back, its lock released): st
// and err are what the transition returned. A transition made notices
// "transition" (or "guardrail-trip", of a guardrail's step back); a
// refused one "refused". What the notice tells (the phases, the
// reason, the id) is read from the audit trail's event of it, so that
// the notice says what the ledger says: one read on the pool, once the
// transition is over, bounded by the commit grace ([WithCommitGrace]);
// the notice tells what the transition knew when it fails.
func (c *Coordinator) noticeTransition(ctx context.Context, r Request, forward bool, kind string, st ledger.Status, err error) {
	if c.notices == nil || st.Migration == "" {
		return // no notifier, or the transition never read the migration
	}
	n := Notice{Migration: r.Migration, Version: st.Version, Actor: r.Actor, Reason: r.Reason, At: c.now()}
	if n.Actor == "" {
		n.Actor = anonymous
	}
	if err == nil {
		n.Kind, n.To = NoticeTransition, st.Phase
		if r.trip != "" {
			n.Kind = NoticeGuardrailTrip
		}
		n.From = st.Phase - 1
		if !forward {
			n.From = st.Phase + 1
		}
	} else {
		n.Kind, n.From, n.To, n.Reason = NoticeRefused, st.Phase, st.Phase+1, err.Error()
		if !forward {
			n.To = max(st.Phase, 1) - 1
		}
		var re *RefusedError
		var pe *PolicyError
		switch {
		case errors.As(err, &re):
			n.From, n.To, n.Gate = re.From, re.To, re.Gate
		case errors.As(err, &pe):
			n.From, n.To, n.Gate = pe.From, pe.To, "policy"
		}
	}
	// The event the ledger recorded of it, read on the pool, apart from
	// the transition: its id and phases are the notice's.
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.grace)
	defer cancel()
	events, aerr := ledger.Audit(readCtx, c.db, r.Migration, 50)
	if aerr == nil {
		for i := len(events) - 1; i >= 0; i-- {
			e := events[i]
			match := e.Kind == kind && e.Accepted == (err == nil)
			if err == nil {
				match = match && e.Version != nil && *e.Version == st.Version
			} else {
				match = match && e.Reason == err.Error()
			}
			if !match {
				continue
			}
			if from, perr := ledger.ParsePhase(e.FromPhase); perr == nil {
				n.From = from
			}
			if to, perr := ledger.ParsePhase(e.ToPhase); perr == nil {
				n.To = to
			}
			n.At, n.Reason = e.At, e.Reason
			n.ID = noticeID(r.Migration, fmt.Sprint(n.Version), string(n.Kind), fmt.Sprint(e.ID))
			break
		}
	}
	c.notify(n)
}
