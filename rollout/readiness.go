package rollout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/schemashift/schemashift/ledger"
	"time"
)

// Readiness is whether a migration's next transition would pass its gate
// now. It is a value.
type Readiness struct {
	Migration string       `json:"migration"`
	From      ledger.Phase `json:"from"`
	Next      ledger.Phase `json:"next"`
	Gate      string       `json:"gate"`
	Met       bool         `json:"met"`
	Reason    string       `json:"reason,omitempty"`
	// Final is set when nothing comes after the current phase.
	Final bool `json:"final,omitempty"`

	// stuck: unmet, and no wait changes it (a tripped guardrail waits
	// for an acknowledgement). Not Final: an advance acknowledging the
	// trip comes next.
	stuck bool
}

// Check evaluates the gate of the migration's next transition without
// making it, at the coordinator's clock.
func (c *Coordinator) Check(ctx context.Context, migration string) (Readiness, error) {
	return c.check(ctx, migration, c.now())
}

// CheckAt evaluates the gate of the migration's next transition without
// making it, at now (a reading of [Coordinator.Now]): for a reader that
// judges several things at one time.
func (c *Coordinator) CheckAt(ctx context.Context, migration string, now time.Time) (Readiness, error) {
	return c.check(ctx, migration, now)
}

// check evaluates the gate of the migration's next transition at now.
func (c *Coordinator) check(ctx context.Context, migration string, now time.Time) (Readiness, error) {
	return c.checkAck(ctx, migration, now, false)
}

// checkAck evaluates the gate of the migration's next transition at now,
// as an advance acknowledging a trip or not would judge it. A tripped
// guardrail refuses every advance until it is acknowledged, and no
// wait clears it: unless acknowledged (the advance would clear it), it is
// the gate judged ("guardrail"), unmet, and no wait changes it.
func (c *Coordinator) checkAck(ctx context.Context, migration string, now time.Time, acknowledged bool) (Readiness, error) {
	plan, err := c.plan(migration)
	if err != nil {
		return Readiness{}, err
	}
	tx, err := c.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Readiness{}, fmt.Errorf("check %s: %w", migration, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	row, err := ledger.Read(ctx, c.in(tx), migration)
	if err != nil {
		return Readiness{}, fmt.Errorf("check %s: %w", migration, err)
	}
	cur := row.Status
	r := Readiness{Migration: migration, From: cur.Phase, Next: cur.Phase + 1}
	if cur.Phase == ledger.Contracted {
		r.Next, r.Final, r.Met = cur.Phase, true, false
		r.Reason = "contracted: nothing comes after"
		return r, nil
	}
	in := loaded{row: row}
	if in.begun, in.begunAt, in.begunErr = ledger.ContractBegun(ctx, c.in(tx), cur); in.begunErr != nil {
		return Readiness{}, fmt.Errorf("check %s: %w", migration, in.begunErr)
	}
	// Decided as the advance would decide it, confirmed, acknowledging
	// the trip or not.
	s := decide(Request{Migration: migration, Confirm: true, Acknowledge: acknowledged}, true, "advance", in)
	var refused *RefusedError
	switch {
	case s.begun:
		// The contract's gate was judged when it began: advancing
		// completes it, with no gate, confirmation or acknowledgement.
		r.Gate, r.Met = "contract begun", true
		r.Reason = "the contract began at " + in.begunAt.UTC().Format(time.RFC3339Nano) + "; advance to complete it"
		return r, nil
	case errors.As(s.refusal, &refused):
		// A trip not acknowledged: no wait changes it.
		r.Gate, r.Met, r.stuck, r.Reason = refused.Gate, false, true, refused.Reason
		return r, nil
	case s.refusal != nil:
		return Readiness{}, fmt.Errorf("check %s: %w", migration, s.refusal)
	}
	gate, reason, err := c.gate(ctx, tx, plan, s.to, row, now)
	if err != nil {
		return Readiness{}, fmt.Errorf("check %s: %w", migration, err)
	}
	r.Gate, r.Met, r.Reason = gate, reason == "", reason
	if r.Met {
		// The plan's policies hold the advance until enough others
		// approve it (the performer is not known here: their own
		// approval, set aside by the advance, still counts).
		if pols := plan.PoliciesFor(s.to, false); len(pols) > 0 {
			approvals, err := c.readApprovals(ctx, tx, migration, row.Version)
			if err != nil {
				return Readiness{}, fmt.Errorf("check %s: %w", migration, err)
			}
			if missing := missingOf(pols, approvals, s.to, false); missing != "" {
				r.Gate, r.Met, r.Reason = "approvals", false, missing
			}
		}
	}
	if r.Next == ledger.Contracted && r.Met {
		r.Reason = "needs confirmation: the contract is irreversible"
	}
	return r, nil
}

// AdvanceWhenMet waits until the gate of the migration's next transition
// is met — checking every poll, for at most limit — and then advances
// (r.Migration, actor, reason and confirmation as in [Coordinator.Advance]).
// It returns the readiness it acted on. The advance judges the gate again,
// a moment after the check: if it refuses on that same gate, the refusal
// is in the audit trail and AdvanceWhenMet waits on, so a gate that
// flickers between met and unmet (a fleet window's edge) does not end the
// wait. Any other refusal (a guardrail that tripped in between, say) ends
// it, as does a check that no wait can change (a tripped guardrail not
// acknowledged in r, a contracted migration). limit runs on the coordinator's
// clock ([WithClock]), poll in real time: a clock that stands still never
// reaches the deadline, and a test moves it there.
func (c *Coordinator) AdvanceWhenMet(ctx context.Context, r Request, poll, limit time.Duration) (ledger.Status, Readiness, error) {
	if poll <= 0 {
		return ledger.Status{}, Readiness{}, fmt.Errorf("advance %s when met: %w: poll %v is not positive", r.Migration, ErrInvalidArgument, poll)
	}
	deadline := c.now().Add(limit)
	for {
		now := c.now()
		ready, err := c.checkAck(ctx, r.Migration, now, r.Acknowledge)
		if err != nil {
			return ledger.Status{}, ready, err
		}
		if ready.Met {
			st, err := c.Advance(ctx, r)
			// The advance judges the gate again, later: met a moment ago,
			// it may be unmet now (an instance's last call just left the
			// window). That refusal is in the audit trail; it is waited
			// out like any unmet gate. A refusal by another gate is not
			// what the check judged, and ends the wait.
			var re *RefusedError
			if !errors.As(err, &re) || re.Gate != ready.Gate || !c.now().Before(deadline) {
				return st, ready, err
			}
		}
		if !ready.Met && (ready.Final || ready.stuck) {
			return ledger.Status{}, ready, &RefusedError{Migration: r.Migration, From: ready.From, To: ready.Next, Gate: ready.Gate, Reason: ready.Reason}
		}
		if !ready.Met && now.After(deadline) {
			return ledger.Status{}, ready, &RefusedError{Migration: r.Migration, From: ready.From, To: ready.Next, Gate: ready.Gate,
				Reason: fmt.Sprintf("still unmet after %v: %s", limit, ready.Reason)}
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ledger.Status{}, ready, ctx.Err()
		case <-t.C:
		}
	}
}
