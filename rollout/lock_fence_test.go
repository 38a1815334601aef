package rollout_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// A coordinator whose SQLite lock was taken from it while it worked under
// it (its lease ran out: here the row changes holder) makes no transition:
// the ledger transaction checks the lock is still its own before the
// compare-and-set, and the migration stays where it was.
func TestTransitionUnderALostLockIsFenced(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	ctx := t.Context()
	clk := rollouttest.NewClock()
	entered, release := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	held := func() time.Time {
		if armed.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
		return clk.Now()
	}
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{racePlan()}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	before, err := ledger.Get(ctx, db, "race")
	require.NoError(t, err)
	a, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{racePlan()}, rollout.WithClock(held))
	require.NoError(t, err)
	_ = c
	armed.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := a.Advance(ctx, rollout.Request{Migration: "race", Actor: "a", Force: true, Reason: "a"})
		done <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("a never got inside its lock")
	}
	db.MustExecContext(ctx, `UPDATE schemashift_locks SET holder = 'thief' WHERE name = 'schemashift:race'`)
	close(release)
	require.ErrorIs(t, <-done, dialect.ErrLockLost)
	after, err := ledger.Get(ctx, db, "race")
	require.NoError(t, err)
	assert.Equal(t, before.Version, after.Version, "a transition committed under a lost lock")
}
