package ledgerflag_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledgerflag"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

// The ledger provider: an advance is seen by another instance within the
// poll interval, with a change event; the database going away leaves the
// last stages in force and the provider stale, then ready again.
func TestLedgerProvider(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	db := rollouttest.Open(t, url)
	ctx := t.Context()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.LedgerPlan()})
	require.NoError(t, err)

	// Another instance, with its own pool, as another process would have.
	other := rollouttest.Open(t, url)
	const poll = 50 * time.Millisecond
	p, err := ledgerflag.New(other, poll)
	require.NoError(t, err)
	api := isolated.NewAPI()
	t.Cleanup(func() { _ = api.Shutdown(context.WithoutCancel(ctx)) })
	changes := make(chan openfeature.EventDetails, 16)
	stale := make(chan openfeature.EventDetails, 16)
	onChange := func(d openfeature.EventDetails) { changes <- d }
	onStale := func(d openfeature.EventDetails) { stale <- d }
	api.AddHandler(openfeature.ProviderConfigChange, &onChange)
	api.AddHandler(openfeature.ProviderStale, &onStale)
	require.NoError(t, api.SetProviderAndWait(ctx, p))
	ev, err := flags.NewEvaluator(api.NewClient())
	require.NoError(t, err)
	flag, err := ev.Flag("users_split_name")
	require.NoError(t, err)
	assert.Equal(t, flags.Off, flag.Stage(ctx))

	for range 2 {
		_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Force: true, Reason: "test"})
		require.NoError(t, err)
	}
	start := time.Now()
	require.Eventually(t, func() bool { return flag.Stage(ctx) == flags.DualWrite }, 2*time.Second, time.Millisecond)
	assert.Less(t, time.Since(start), 3*poll, "seen within the poll interval")
	select {
	case d := <-changes:
		assert.Contains(t, d.FlagChanges, "users_split_name")
	case <-time.After(time.Second):
		t.Fatal("no configuration change event")
	}

	// The database goes away: no connection may be made to it.
	admin := rollouttest.Open(t, pgtest.AdminURL(t))
	var name string
	require.NoError(t, db.GetContext(ctx, &name, `SELECT current_database()`))
	admin.MustExecContext(ctx, `ALTER DATABASE `+quote(name)+` WITH ALLOW_CONNECTIONS false`)
	admin.MustExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name)
	select {
	case <-stale:
	case <-time.After(5 * time.Second):
		t.Fatal("the provider did not go stale")
	}
	assert.True(t, p.Stale())
	for range 50 {
		s, fb := flag.Evaluate(ctx)
		require.Nil(t, fb, "no fallback: the last stages stay in force")
		require.Equal(t, flags.DualWrite, s)
	}
	admin.MustExecContext(ctx, `ALTER DATABASE `+quote(name)+` WITH ALLOW_CONNECTIONS true`)
	require.Eventually(t, func() bool { return !p.Stale() }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, flags.DualWrite, flag.Stage(ctx))
	_, err = ev.Stage(ctx, "no_such_migration")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), ev.Stats().Fallbacks[flags.FlagNotFound])
}

// On SQLite the provider reads the ledger through its own pool on the same
// file, as another process on the host would.
func TestLedgerProviderOnSQLite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	other, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.LedgerPlan()})
	require.NoError(t, err)
	const poll = 50 * time.Millisecond
	p, err := ledgerflag.New(other, poll)
	require.NoError(t, err)
	flag := served(t, p)
	assert.Equal(t, flags.Off, flag.Stage(ctx))
	for range 3 {
		_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Force: true, Reason: "test"})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return flag.Stage(ctx) == flags.DualWrite }, 2*time.Second, time.Millisecond)
	assert.False(t, p.Stale())
}

func quote(s string) string { return `"` + s + `"` }
