package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/ledger"
)

// Guardrail is a halt condition of a plan, measured while a phase is in
// force (since the phase began). When one trips, the coordinator steps the
// migration back one phase (or, for a failing verification, pauses the
// backfill), records why, and refuses to advance it again until an
// operator acknowledges the trip. It is a value, part of a [Plan].
type Guardrail struct {
	// Phases it watches (default: shadow and live, where reads are compared).
	Phases []ledger.Phase
	// MinConsistency trips when the share of matching shadow comparisons
	// falls below it; a failed comparison (a read's error, a timeout, a
	// panic) counts against it as a mismatch does.
	MinConsistency float64
	// MaxErrorRate trips when the share of failed calls of either path
	// (old or new) rises above it.
	MaxErrorRate float64
	// MaxLatencyRatio trips when the new path's p99 latency exceeds this
	// multiple of the old path's (both measured since the phase began).
	MaxLatencyRatio float64
	// HaltOnFailedVerification pauses the backfill and trips when a
	// verification of the plan's backfills failed.
	HaltOnFailedVerification bool
	// MinSamples is how many comparisons (or calls, for error rates) must
	// be seen before a ratio is judged (default 100).
	MinSamples int64
}

func (g Guardrail) watches(p ledger.Phase) bool {
	phases := g.Phases
	if len(phases) == 0 {
		phases = []ledger.Phase{ledger.Shadow, ledger.Live}
	}
	for _, w := range phases {
		if w == p {
			return true
		}
	}
	return false
}

// Trip is a guardrail that tripped. It is a value.
type Trip struct {
	Migration string       `json:"migration"`
	Phase     ledger.Phase `json:"phase"` // the phase in force when it tripped
	Reason    string       `json:"reason"`
	Action    string       `json:"action"` // what the coordinator did
	At        time.Time    `json:"at"`
}

// TripObserver is told about every trip. It must be safe for concurrent
// use.
type TripObserver interface {
	ObserveTrip(ctx context.Context, t Trip)
}

// WithTripObserver reports trips to o.
func WithTripObserver(o TripObserver) CoordinatorOption {
	return func(c *Coordinator) error {
		if o == nil {
			return fmt.Errorf("%w: trip observer is nil", ErrInvalidArgument)
		}
		c.trips = o
		return nil
	}
}

// Guard evaluates the guardrails of every migration once and acts on those
// that trip. It returns the trips.
func (c *Coordinator) Guard(ctx context.Context) ([]Trip, error) {
	var trips []Trip
	for _, name := range c.migrations() {
		plan := c.plans[name]
		if len(plan.Guardrails) == 0 {
			continue
		}
		row, err := ledger.Read(ctx, c.db, name)
		if err != nil {
			return trips, fmt.Errorf("guard %s: %w", name, err)
		}
		st := row.Status
		now := c.now()
		reason, pause, err := c.tripped(ctx, plan, st.Phase, row, now)
		if err != nil {
			return trips, err
		}
		if reason == "" {
			continue
		}
		t := Trip{Migration: name, Phase: st.Phase, Reason: reason, At: now}
		if pause {
			t.Action = "held the migration at " + st.Phase.String()
			for _, j := range plan.Backfills {
				err := backfill.Pause(ctx, c.db, j.Name)
				switch {
				case err == nil:
					t.Action = "paused the backfill"
				case errors.Is(err, backfill.ErrUnknownJob), errors.Is(err, backfill.ErrWrongStatus):
					// not running: nothing to pause
				default:
					return trips, err
				}
			}
			if err := ledger.Trip(ctx, c.db, name, reason); err != nil {
				return trips, err
			}
			if err := c.recordAt(ctx, ledger.Event{Migration: name, Kind: "guardrail", Accepted: true, Actor: "guardrail", FromPhase: st.Phase.String(),
				ToPhase: st.Phase.String(), Reason: "guardrail tripped: " + reason + "; " + t.Action}, now); err != nil {
				return trips, err
			}
		} else {
			_, err := c.Rollback(ctx, Request{Migration: name, Version: st.Version, Actor: "guardrail", Reason: "guardrail tripped: " + reason, trip: reason})
			if errors.Is(err, ErrConflict) {
				continue // someone moved it meanwhile; judged again next time
			}
			if errors.Is(err, ErrIrreversible) {
				continue // a contract has begun: the only way is forward, which a guardrail does not take
			}
			if err != nil {
				return trips, err
			}
			t.Action = "stepped back to " + (st.Phase - 1).String()
		}
		if c.trips != nil {
			c.trips.ObserveTrip(ctx, t)
		}
		trips = append(trips, t)
	}
	return trips, nil
}

// tripped checks the plan's guardrails for the phase in force, at now.
func (c *Coordinator) tripped(ctx context.Context, plan Plan, phase ledger.Phase, row ledger.Row, now time.Time) (reason string, pause bool, err error) {
	if row.Tripped != "" {
		return "", false, nil // already acted on; waits for an operator
	}
	t, err := fleet.Sum(ctx, c.db, plan.Migration)
	if err != nil {
		return "", false, err
	}
	for _, g := range plan.Guardrails {
		min := g.MinSamples
		if min == 0 {
			min = 100
		}
		if g.HaltOnFailedVerification && (phase == ledger.Backfill || phase == ledger.Verify) {
			for _, j := range plan.Backfills {
				if p, err := backfill.StateAt(ctx, c.db, j.Name, now); err == nil && p.Verify == "failed" && p.Status != backfill.Paused {
					return fmt.Sprintf("verification of %q failed (%d divergent rows)", j.Name, p.Divergent), true, nil
				}
			}
		}
		if !g.watches(phase) {
			continue
		}
		if g.MinConsistency > 0 {
			since := t.Since(row.Base)
			if n := since.Matched + since.Mismatched; n >= min && since.Ratio < g.MinConsistency {
				return fmt.Sprintf("shadow consistency %.4f over %d comparisons, below %.4f", since.Ratio, n, g.MinConsistency), false, nil
			}
		}
		if g.MaxLatencyRatio > 0 {
			lat, err := fleet.Latencies(ctx, c.db, plan.Migration)
			if err != nil {
				return "", false, err
			}
			base := row.BaseLatency
			oldH, newH := lat.Old.Minus(base.Old), lat.New.Minus(base.New)
			if oldH.Total() >= min && newH.Total() >= min {
				o, n := oldH.Quantile(0.99), newH.Quantile(0.99)
				if float64(n) > g.MaxLatencyRatio*float64(o) {
					return fmt.Sprintf("p99 latency of the new path %v over %d calls, above %.2g× the old path's %v", n, newH.Total(),
						g.MaxLatencyRatio, o), false, nil
				}
			}
		}
		if g.MaxErrorRate > 0 {
			for _, path := range []struct {
				name        string
				calls, errs int64
			}{{"old", t.OldTotal - row.Base.OldTotal, t.OldErrors - row.Base.OldErrors}, {"new", t.NewTotal - row.Base.NewTotal, t.NewErrors - row.Base.NewErrors}} {
				if path.calls >= min && float64(path.errs)/float64(path.calls) > g.MaxErrorRate {
					return fmt.Sprintf("error rate of the %s path %.4f over %d calls, above %.4f", path.name,
						float64(path.errs)/float64(path.calls), path.calls, g.MaxErrorRate), false, nil
				}
			}
		}
	}
	return "", false, nil
}

// Watch runs Guard every interval until ctx ends, and returns ctx's error.
// Errors of a round are reported through onError (nil to ignore them).
func (c *Coordinator) Watch(ctx context.Context, interval time.Duration, onError func(error)) error {
	if interval <= 0 {
		return fmt.Errorf("watch: %w: interval %v is not positive", ErrInvalidArgument, interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := c.Guard(ctx); err != nil && onError != nil && ctx.Err() == nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
