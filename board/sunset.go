package board

import (
	"context"
	"time"

	"github.com/schemashift/schemashift/rollout"
)

// sunset is migration name's deadline at now, for its page ("sunset",
// in sunset.html) and its status: nil for a plan that sets no sunset.
// Judging it may record in the audit trail that the migration was seen
// overdue with late callers ([rollout.Coordinator.Deadline]).
func (b *Board) sunset(ctx context.Context, name string, now time.Time) (*rollout.DeadlineState, error) {
	d, err := b.c.DeadlineAt(ctx, name, now)
	if err != nil {
		return nil, err
	}
	if d.State == rollout.DeadlineNone {
		return nil, nil
	}
	return &d, nil
}
