package ledgerflag_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/open-feature/go-sdk/openfeature/isolated"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledgerflag"
	"github.com/schemashift/schemashift/rollout"
)

// A provider on a plain *sql.DB serves the stage an advance set, on both
// databases.
func TestProviderOnSQLDB(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		c, err := rollout.NewCoordinator(ctx, db.DB, []rollout.Plan{rollouttest.LedgerPlan()})
		require.NoError(t, err)
		p, err := ledgerflag.New(db.DB, 20*time.Millisecond)
		require.NoError(t, err, "New takes a *sql.DB")
		flag := served(t, p)
		assert.Equal(t, flags.Off, flag.Stage(ctx))
		rollouttest.Forced(t, c, "users_split_name", 2)
		require.Eventually(t, func() bool { return flag.Stage(ctx) == flags.DualWrite }, 5*time.Second, time.Millisecond)
		assert.False(t, p.Stale())
	})
}

// A pool of no supported database is refused by New, with the dialects'
// ErrUnknownDriver, before a provider exists to go stale; so is a nil one.
func TestProviderOfUnknownDriver(t *testing.T) {
	t.Parallel()
	_, err := ledgerflag.New(nil, time.Second)
	require.Error(t, err)
	_, err = ledgerflag.New((*sqlx.DB)(nil), time.Second)
	require.Error(t, err)
	p, err := ledgerflag.New(rollouttest.UnknownPool(t), time.Hour)
	require.ErrorIs(t, err, dialects.ErrUnknownDriver)
	assert.ErrorContains(t, err, "new ledger provider: ")
	assert.Nil(t, p)
}

// served gives p to an isolated OpenFeature API, shut down when the test
// ends, and returns the stage flag of users_split_name it serves.
func served(t *testing.T, p *ledgerflag.Provider) *flags.Flag {
	t.Helper()
	api := isolated.NewAPI()
	t.Cleanup(func() { _ = api.Shutdown(context.WithoutCancel(t.Context())) })
	require.NoError(t, api.SetProviderAndWait(t.Context(), p))
	ev, err := flags.NewEvaluator(api.NewClient())
	require.NoError(t, err)
	flag, err := ev.Flag("users_split_name")
	require.NoError(t, err)
	return flag
}
