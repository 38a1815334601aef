package rollout_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/rollout"
)

// Bad arguments are errors, never panics or busy loops.
func TestCoordinatorRefusesBadArguments(t *testing.T) {
	t.Parallel()
	_, err := rollout.NewCoordinator(t.Context(), nil, nil)
	require.ErrorIs(t, err, rollout.ErrInvalidArgument)
	_, err = rollout.Open(t.Context(), nil)
	require.ErrorIs(t, err, rollout.ErrInvalidArgument)

	db := usersDB(t, dbtest.SQLite(t))
	_, err = rollout.NewCoordinator(t.Context(), db, nil, nil)
	require.ErrorIs(t, err, rollout.ErrInvalidArgument, "a nil option")
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{usersPlan(db)})
	require.NoError(t, err)
	require.ErrorIs(t, c.Watch(t.Context(), 0, nil), rollout.ErrInvalidArgument)
	require.ErrorIs(t, c.Watch(t.Context(), -time.Second, nil), rollout.ErrInvalidArgument)
	_, _, err = c.AdvanceWhenMet(t.Context(), rollout.Request{Migration: "users_split_name", Actor: "ci"}, 0, time.Minute)
	require.ErrorIs(t, err, rollout.ErrInvalidArgument)
}
