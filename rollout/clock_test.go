package rollout_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// Every time the ledger keeps is the clock's, not the database's, years
// away: the plan's registration (through Start's Clock), the heartbeats,
// a phase's start, the events, a recorded query plan and a trip.
func TestTimesAreTheClocks(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testTimesAreTheClocks)
}

func testTimesAreTheClocks(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	dbNow, err := dbtest.Dialect(t, db).CurrentTime(ctx, db)
	require.NoError(t, err)
	require.Greater(t, rollouttest.T0.Sub(dbNow), 365*24*time.Hour, "the database's clock is years before the test's")

	clk := rollouttest.NewClock()
	plan := rollouttest.UsersPlan(db)
	plan.HotQueries = []rollout.HotQuery{{Name: "user by id", SQL: `SELECT full_name FROM users WHERE id = $1`, Args: []any{7}}}
	plan.Guardrails = []rollout.Guardrail{{MinConsistency: 0.95, MinSamples: 10}}
	svc, err := rollout.Start(ctx, db, rollout.ServiceConfig{Service: "users-api", Build: "v2", InstanceID: "api-1",
		Plans: []rollout.Plan{plan}, Heartbeat: time.Hour, Clock: clk.Now})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	st, err := ledger.Get(ctx, db, plan.Migration)
	require.NoError(t, err)
	assert.True(t, st.PhaseSince.Equal(rollouttest.T0), "registered at the service's clock: %v", st.PhaseSince)
	assert.True(t, st.UpdatedAt.Equal(rollouttest.T0), "%v", st.UpdatedAt)
	assert.True(t, lastEvent(t, db).At.Equal(rollouttest.T0), "the register event: %v", lastEvent(t, db).At)

	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	fleet, err := c.Fleet(ctx, plan.Migration)
	require.NoError(t, err)
	require.Len(t, fleet.Instances, 1)
	in := fleet.Instances[0]
	assert.True(t, in.FirstSeen.Equal(rollouttest.T0) && in.LastSeen.Equal(rollouttest.T0), "heartbeats at the clock's time: %v, %v", in.FirstSeen, in.LastSeen)

	// A phase begins, an event is recorded and a hot query's plan is
	// recorded at the coordinator's clock.
	expandAt := clk.Add(time.Hour)
	st, err = c.Advance(ctx, rollout.Request{Migration: plan.Migration, Actor: "ci"})
	require.NoError(t, err)
	assert.True(t, st.PhaseSince.Equal(expandAt), "%v", st.PhaseSince)
	assert.True(t, st.UpdatedAt.Equal(expandAt), "%v", st.UpdatedAt)
	assert.True(t, lastEvent(t, db).At.Equal(expandAt), "%v", lastEvent(t, db).At)
	plans, err := c.QueryPlans(ctx, plan.Migration)
	require.NoError(t, err)
	require.NotEmpty(t, plans)
	for _, p := range plans {
		assert.True(t, p.At.Equal(expandAt), "%s %s: %v", p.Query, p.When, p.At)
	}

	// An instance's stages and old-path calls are stamped by its clock.
	callAt := clk.Add(time.Minute)
	svc.Instance.Record(plan.Migration, flags.Off, true)
	require.NoError(t, svc.Instance.Beat(ctx))
	fleet, err = c.Fleet(ctx, plan.Migration)
	require.NoError(t, err)
	in = fleet.Instances[0]
	require.NotNil(t, in.LastOldCall)
	assert.True(t, in.LastOldCall.Equal(callAt), "%v", in.LastOldCall)
	assert.True(t, in.StageSeen[flags.Off].Equal(callAt), "%v", in.StageSeen[flags.Off])
	assert.True(t, in.FirstSeen.Equal(rollouttest.T0), "first seen stays: %v", in.FirstSeen)
	assert.True(t, in.LastSeen.Equal(callAt), "%v", in.LastSeen)

	// A trip is at the coordinator's clock, and so is the step back it makes.
	for range 4 {
		_, err = c.Advance(ctx, rollout.Request{Migration: plan.Migration, Actor: "ci", Force: true, Reason: "to shadow"})
		require.NoError(t, err)
	}
	for range 10 {
		svc.Observer().ObserveComparison(ctx, dualwrite.Comparison{Migration: plan.Migration, Stage: flags.Shadow, Match: false})
	}
	require.NoError(t, svc.Instance.Beat(ctx))
	tripAt := clk.Add(time.Minute)
	trips, err := c.Guard(ctx)
	require.NoError(t, err)
	require.Len(t, trips, 1)
	assert.True(t, trips[0].At.Equal(tripAt), "%v", trips[0].At)
	st, err = ledger.Get(ctx, db, plan.Migration)
	require.NoError(t, err)
	assert.Equal(t, ledger.Verify, st.Phase)
	assert.True(t, st.PhaseSince.Equal(tripAt), "%v", st.PhaseSince)
}

// AdvanceWhenMet's limit is measured on the coordinator's clock: with a
// clock that moves ten minutes at each reading, an hour's limit runs out
// after a few checks, however little real time passed; one that stands
// still never runs out, and gives up only with its context.
func TestAdvanceWhenMetLimitIsTheClocks(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	ctx := t.Context()
	clk := rollouttest.NewClock()
	reads := 0
	hurried := func() time.Time { reads++; return clk.Add(10 * time.Minute) }
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.LedgerPlan()}, rollout.WithClock(hurried))
	require.NoError(t, err)
	rollouttest.Forced(t, c, "users_split_name", 2)
	reads = 0
	start := time.Now()
	_, ready, err := c.AdvanceWhenMet(ctx, rollout.Request{Migration: "users_split_name", Actor: "t"}, time.Millisecond, time.Hour)
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), "still unmet after 1h0m0s: no live instance")
	assert.False(t, ready.Met)
	assert.Equal(t, 8, reads, "the deadline, then seven checks: the seventh is past the hour")
	assert.Less(t, time.Since(start), time.Hour)

	still, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.LedgerPlan()}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, _, err = still.AdvanceWhenMet(short, rollout.Request{Migration: "users_split_name", Actor: "t"}, time.Millisecond, time.Nanosecond)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a clock that stands still reaches no deadline")
}

// A gate met when AdvanceWhenMet checks it may be unmet an instant later,
// when the advance judges it again (an instance's last call left the
// window in between): AdvanceWhenMet waits on, as for any unmet gate,
// instead of failing with that refusal. Here the readings of the
// coordinator's clock in the first advance (the third and fourth: its
// lock's lease, its gate) are two windows later than the rest. Were the
// gate read at another reading, no refusal would be seen and the test
// would fail: it cannot pass by missing its point.
func TestAdvanceWhenMetWaitsOutARefusal(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	ctx := t.Context()
	clk := rollouttest.NewClock()
	var reads atomic.Int64
	flicker := func() time.Time {
		n := reads.Add(1)
		if n == 3 || n == 4 { // the first advance's: its lock's lease on SQLite, its gate
			return clk.Now().Add(2 * rollouttest.Window)
		}
		return clk.Now()
	}
	setup, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.LedgerPlan()}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	rollouttest.Forced(t, setup, "users_split_name", 2) // expanded, dualwrite
	in := rollouttest.InstanceAt(t, db, "a", "users_split_name", clk.Now)
	rollouttest.Beat(t, in, flags.DualWrite)
	clk.Add(rollouttest.Window)
	rollouttest.Beat(t, in, flags.DualWrite)

	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.LedgerPlan()}, rollout.WithClock(flicker))
	require.NoError(t, err)
	reads.Store(0)
	st, ready, err := c.AdvanceWhenMet(ctx, rollout.Request{Migration: "users_split_name", Actor: "t"}, time.Millisecond, time.Hour)
	require.NoError(t, err, "the refusal of the advance at the later reading is waited out")
	assert.Equal(t, ledger.Backfill, st.Phase)
	assert.True(t, ready.Met)
	events, err := ledger.Audit(ctx, db, "users_split_name", 100)
	require.NoError(t, err)
	refusals := 0
	for _, e := range events {
		if e.Kind == "advance" && !e.Accepted {
			refusals++
		}
	}
	assert.Equal(t, 1, refusals, "the refused advance is in the audit trail: %+v", events)
}
