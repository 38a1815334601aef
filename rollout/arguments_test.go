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

// An instance starts once: a second Start, or a Start after Close, is
// refused, and leaves no second heartbeat running (goleak watches the
// package); Close is idempotent.
func TestInstanceStartsOnce(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	require.NoError(t, rollout.EnsureLedger(t.Context(), db))
	in, err := rollout.NewInstance(db, "users-api", "v1", []string{"users_split_name"}, rollout.WithInstanceID("once"))
	require.NoError(t, err)
	require.NoError(t, in.Start(t.Context()))
	require.ErrorIs(t, in.Start(t.Context()), rollout.ErrStarted)
	require.NoError(t, in.Close())
	require.NoError(t, in.Close())
	require.ErrorIs(t, in.Start(t.Context()), rollout.ErrClosed)

	closed, err := rollout.NewInstance(db, "users-api", "v1", []string{"users_split_name"}, rollout.WithInstanceID("closed-first"))
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	require.ErrorIs(t, closed.Start(t.Context()), rollout.ErrClosed)
}
