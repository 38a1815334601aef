package rollout

import (
	"context"
	"fmt"

	"github.com/schemashift/schemashift/backfill"
)

// EstimateBackfills predicts the cost of each of the plan's backfill jobs
// before they run, from samples chunks of each run and rolled back (see
// [backfill.Backfill.Estimate]), with opts for every job (the pace the
// run will have: a rate, a duty cycle). It may run at any phase once the
// expand has made the jobs' columns; the jobs run on the coordinator's
// clock unless opts set another.
func (c *Coordinator) EstimateBackfills(ctx context.Context, migration string, samples int, opts ...backfill.Option) ([]backfill.Estimate, error) {
	plan, err := c.plan(migration)
	if err != nil {
		return nil, err
	}
	opts = append([]backfill.Option{backfill.WithClock(c.clock)}, opts...)
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
		out = append(out, e)
	}
	return out, nil
}
