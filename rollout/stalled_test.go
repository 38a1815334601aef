package rollout_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// A backfill whose only worker died mid-chunk reads stalled in the gate's
// reason, naming the worker, rather than running: from the moment its
// lease has run out by the clock the worker and the coordinator share,
// not before.
func TestGateNamesAStalledBackfill(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, pgtest.DB(t))
	p := rollouttest.UsersPlan(db)
	clk := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{p}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	for range 3 { // to the backfill phase; these gates are tested elsewhere
		_, err := c.Advance(t.Context(), rollout.Request{Migration: p.Migration, Actor: "ci", Reason: "test", Force: true})
		require.NoError(t, err)
	}

	// The worker's chunk waits on a row lock when its process dies.
	hold := db.MustBeginTx(t.Context(), nil)
	defer hold.Rollback() //nolint:errcheck // the test's own lock
	hold.MustExecContext(t.Context(), `UPDATE users SET full_name = full_name WHERE id = 7`)
	b, err := backfill.New(t.Context(), db, p.Backfills[0], backfill.WithLease(time.Second), backfill.WithStatementTimeout(500*time.Millisecond), backfill.WithLockTimeout(400*time.Millisecond), backfill.WithWorkerID("api-7/worker"), backfill.WithClock(clk.Now))
	require.NoError(t, err)
	ctx, kill := context.WithCancel(t.Context())
	died := make(chan error, 1)
	go func() { _, err := b.Run(ctx); died <- err }()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.GetContext(t.Context(), &n, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`))
		return n > 0
	}, 10*time.Second, 5*time.Millisecond)
	kill()
	require.ErrorIs(t, <-died, context.Canceled)
	require.NoError(t, hold.Rollback())

	// The lease and the dead Run's heartbeat hold to their last
	// microsecond; past it, the gate names the stall.
	refused(t, c, db, "backfill done", `backfill "users_split_name" is running`)
	clk.Add(time.Second)
	refused(t, c, db, "backfill done", `backfill "users_split_name" is running`)
	clk.Add(time.Microsecond)
	st, err := b.State(t.Context())
	require.NoError(t, err)
	require.Equal(t, backfill.Stalled, st.Status)
	require.NotNil(t, st.Stall)
	assert.True(t, st.Stall.Since.Equal(rollouttest.T0.Add(time.Second)), "stalled since the lease ran out: %v", st.Stall.Since)
	refused(t, c, db, "backfill done", `backfill "users_split_name" is stalled: no live worker since `+rollouttest.T0.Add(time.Second).Format(time.RFC3339))
	refused(t, c, db, "backfill done", "(last: api-7/worker)")
}
