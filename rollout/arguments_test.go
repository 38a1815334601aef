package rollout_test

import (
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature/isolated"
	"github.com/open-feature/go-sdk/openfeature/memprovider"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// Bad arguments are errors, never panics or busy loops.
func TestCoordinatorRefusesBadArguments(t *testing.T) {
	t.Parallel()
	_, err := rollout.NewCoordinator(t.Context(), nil, nil)
	require.ErrorIs(t, err, rollout.ErrInvalidArgument)
	_, err = rollout.Open(t.Context(), nil)
	require.ErrorIs(t, err, rollout.ErrInvalidArgument)

	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	_, err = rollout.NewCoordinator(t.Context(), db, nil, nil)
	require.ErrorIs(t, err, rollout.ErrInvalidArgument, "a nil option")
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.UsersPlan(db)})
	require.NoError(t, err)
	require.ErrorIs(t, c.Watch(t.Context(), 0, nil), rollout.ErrInvalidArgument)
	require.ErrorIs(t, c.Watch(t.Context(), -time.Second, nil), rollout.ErrInvalidArgument)
	_, _, err = c.AdvanceWhenMet(t.Context(), rollout.Request{Migration: "users_split_name", Actor: "ci"}, 0, time.Minute)
	require.ErrorIs(t, err, rollout.ErrInvalidArgument)
}

// Start refuses options that conflict or that it cannot work with: Poll is
// the ledger provider's interval, which does not run with Client (it was
// silently ignored), and negative intervals, a nil pool, a missing name.
func TestStartRefusesBadConfig(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	api := isolated.NewAPI()
	require.NoError(t, api.SetProviderAndWait(t.Context(), memprovider.NewInMemoryProvider(nil)))
	t.Cleanup(func() { _ = api.Shutdown(t.Context()) })
	client := api.NewClient()
	ok := rollout.ServiceConfig{Service: "users-api", Build: "v1"}
	for name, cfg := range map[string]func(c *rollout.ServiceConfig){
		"poll with client":   func(c *rollout.ServiceConfig) { c.Client, c.Poll = client, time.Second },
		"negative poll":      func(c *rollout.ServiceConfig) { c.Poll = -time.Second },
		"negative heartbeat": func(c *rollout.ServiceConfig) { c.Heartbeat = -time.Second },
		"no service":         func(c *rollout.ServiceConfig) { c.Service = "" },
		"no build":           func(c *rollout.ServiceConfig) { c.Build = "" },
	} {
		c := ok
		cfg(&c)
		_, err := rollout.Start(t.Context(), db, c)
		require.ErrorIs(t, err, rollout.ErrInvalidArgument, name)
	}
	_, err := rollout.Start(t.Context(), nil, ok)
	require.ErrorIs(t, err, rollout.ErrInvalidArgument, "nil pool")

	withClient := ok
	withClient.Client = client
	s, err := rollout.Start(t.Context(), db, withClient)
	require.NoError(t, err, "a client without Poll")
	require.Nil(t, s.Provider)
	require.NoError(t, s.Close())
}

// Register and the coordinator's options refuse a nil pool or option, or
// a non-positive interval, with ErrInvalidArgument instead of panicking.
func TestRegisterRefusesBadArguments(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	require.ErrorIs(t, rollout.Register(ctx, nil, rollout.Plan{Migration: "m"}), rollout.ErrInvalidArgument)
	db := dbtest.SQLite(t)
	_, err := rollout.NewCoordinator(ctx, db, nil, rollout.WithAgeOut(-time.Second))
	require.ErrorIs(t, err, rollout.ErrInvalidArgument)
	_, err = rollout.NewCoordinator(ctx, db, nil, rollout.WithTripObserver(nil))
	require.ErrorIs(t, err, rollout.ErrInvalidArgument)
	_, err = rollout.NewCoordinator(ctx, db, nil, rollout.WithClock(nil))
	require.ErrorIs(t, err, rollout.ErrInvalidArgument)
}
