package board

import (
	"context"
	"errors"
	"time"

	"github.com/schemashift/schemashift/rollout"
)

// sunset is migration name's deadline at now, for its page ("sunset",
// in sunset.html) and its status: nil for a plan that sets no sunset.
// Judging it may record in the audit trail that the migration was seen
// overdue with late callers ([rollout.Coordinator.Deadline]).
func (b *Board) sunset(ctx context.Context, name string, now time.Time) (*rollout.DeadlineState, error) {
	d, err := b.c.DeadlineAt(ctx, name, now)
	switch {
	case errors.Is(err, rollout.ErrAudit):
		// Judged, but its first sighting overdue not recorded: the board
		// shows it all the same, and the next poll records it.
	case err != nil:
		return nil, err
	}
	if d.State == rollout.DeadlineNone {
		return nil, nil
	}
	return &d, nil
}
