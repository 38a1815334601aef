package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/ledger"
)

// EstimateEvent is the audit trail's kind of an estimate's record: its
// reason is the [backfill.Estimate] as JSON, read back by a
// retrospective to set against what the run did.
const EstimateEvent = "backfill-estimate"

// EstimateRequest asks for the estimate of a migration's backfills: by
// Actor (the caller's word, for the audit trail), from Samples chunks of
// each job. It is a value.
type EstimateRequest struct {
	Migration string
	Actor     string
	Samples   int
}

// EstimateBackfills predicts the cost of each of the plan's backfill jobs
// before they run, from r.Samples chunks of each run and rolled back
// (see [backfill.Backfill.Estimate]), with opts for every job (the pace
// the run will have: a rate, a duty cycle), and records each estimate in
// the audit trail ([EstimateEvent]), where a retrospective finds it. It
// may run at any phase once the expand has made the jobs' columns; the
// jobs run on the coordinator's clock unless opts set another.
func (c *Coordinator) EstimateBackfills(ctx context.Context, r EstimateRequest, opts ...backfill.Option) ([]backfill.Estimate, error) {
	migration, samples := r.Migration, r.Samples
	plan, err := c.plan(migration)
	if err != nil {
		return nil, err
	}
	if r.Actor == "" {
		r.Actor = "unknown"
	}
	opts = append(planOptions(plan, c.clock), opts...)
	out := []backfill.Estimate{}
	for _, j := range plan.Backfills {
		b, err := backfill.New(ctx, c.db, j, opts...)
		if err != nil {
			return out, fmt.Errorf("estimate backfills of %s: %w", migration, err)
		}
		e, err := b.Estimate(ctx, samples)
		if err != nil {
			return out, fmt.Errorf("estimate backfills of %s: %w", migration, err)
		}
		doc, err := json.Marshal(e)
		if err != nil {
			return out, err
		}
		st, err := ledger.Get(ctx, c.db, migration)
		if err != nil {
			return out, fmt.Errorf("estimate backfills of %s: %w", migration, err)
		}
		if err := c.record(ctx, ledger.Event{Migration: migration, Kind: EstimateEvent, Accepted: true, Actor: r.Actor,
			FromPhase: st.Phase.String(), ToPhase: st.Phase.String(), Reason: string(doc)}); err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// planOptions are the options a plan gives each of its backfill jobs: the
// coordinator's clock, and the plan's run windows.
func planOptions(plan Plan, clock func() time.Time) []backfill.Option {
	opts := []backfill.Option{backfill.WithClock(clock)}
	if len(plan.RunWindows) > 0 {
		opts = append(opts, backfill.WithRunWindows(plan.RunWindows...))
	}
	return opts
}
