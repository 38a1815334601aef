package board

import (
	"context"

	"github.com/schemashift/schemashift/rollout"
)

// schedulesOf reads the last schedules of migration name, latest first,
// for its page ("schedules", in schedules.html) and its status.
func (b *Board) schedulesOf(ctx context.Context, name string) ([]rollout.Schedule, error) {
	return b.c.Schedules(ctx, name, 20)
}
