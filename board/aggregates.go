package board

import (
	"context"

	"github.com/schemashift/schemashift/rollout"
)

// aggregates is the last comparison of migration name's aggregates (nil
// when no advance made one), for its page ("aggregates", in
// aggregates.html) and its status.
func (b *Board) aggregates(ctx context.Context, name string) (*rollout.AggregateComparison, error) {
	return b.c.LastAggregateComparison(ctx, name)
}
