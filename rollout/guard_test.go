package rollout_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

type tripLog struct {
	mu    sync.Mutex
	trips []rollout.Trip
	heard chan rollout.Trip // each trip, once it is committed; nil for none
}

func (l *tripLog) ObserveTrip(_ context.Context, t rollout.Trip) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trips = append(l.trips, t)
	if l.heard != nil {
		l.heard <- t
	}
}

// next waits for the next trip the observer hears of.
func (l *tripLog) next(t *testing.T) rollout.Trip {
	t.Helper()
	select {
	case trip := <-l.heard:
		return trip
	case <-time.After(10 * time.Second):
		t.Fatal("no guardrail tripped")
		return rollout.Trip{}
	}
}

func (l *tripLog) all() []rollout.Trip {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]rollout.Trip(nil), l.trips...)
}

// Mismatches injected during shadow trip the consistency guardrail: the
// coordinator steps the migration back within the window, records why, and
// refuses to advance it again until acknowledged. Errors of the new path
// at live trip the error-rate guardrail the same way. The watch runs on
// real time and its real ticker, with the coordinator's default clock:
// the test waits for the trip observer to hear of each trip.
func TestGuardrailsStepBack(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testGuardrailsStepBack)
}

func testGuardrailsStepBack(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	plan := rollouttest.UsersPlan(db)
	plan.Guardrails = []rollout.Guardrail{{MinConsistency: 0.95, MaxErrorRate: 0.1, MinSamples: 20}}
	log := &tripLog{heard: make(chan rollout.Trip, 4)}
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan}, rollout.WithTripObserver(log))
	require.NoError(t, err)
	force := func(n int) {
		for range n {
			_, err := c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Force: true, Reason: "setup", Acknowledge: true})
			require.NoError(t, err)
		}
	}
	force(5) // … shadow
	in, err := fleet.NewInstance(db, "users-api", "v2", []string{"users_split_name"}, fleet.WithID("api-1"))
	require.NoError(t, err)
	obs := in.Observer()

	// Healthy traffic does not trip.
	for range 30 {
		obs.ObserveComparison(ctx, dualwrite.Comparison{Migration: "users_split_name", Stage: flags.Shadow, Match: true})
	}
	require.NoError(t, in.Beat(ctx))
	trips, err := c.Guard(ctx)
	require.NoError(t, err)
	assert.Empty(t, trips)

	wctx, stop := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() { watched <- c.Watch(wctx, 20*time.Millisecond, func(err error) { t.Error(err) }) }()

	// Mismatches start: 30 matched, 10 mismatched = 0.75.
	start := time.Now()
	for range 10 {
		obs.ObserveComparison(ctx, dualwrite.Comparison{Migration: "users_split_name", Stage: flags.Shadow, Match: false})
	}
	require.NoError(t, in.Beat(ctx))
	trip := log.next(t)
	t.Logf("stepped back %v after the mismatches were reported", time.Since(start).Round(time.Millisecond))
	assert.WithinDuration(t, time.Now(), trip.At, time.Minute, "the default clock is time.Now")
	assert.False(t, trip.At.Before(start.Truncate(time.Microsecond)), "tripped after the mismatches: %v", trip.At)
	st, err := ledger.Get(ctx, db, "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, ledger.Verify, st.Phase, "stepped back")
	assert.Contains(t, st.Tripped, "shadow consistency 0.7500 over 40 comparisons, below 0.9500")
	ev := lastEvent(t, db)
	assert.Equal(t, "guardrail", ev.Actor)
	assert.Equal(t, "rollback", ev.Kind)
	assert.Contains(t, ev.Reason, "guardrail tripped: shadow consistency")
	require.Len(t, log.all(), 1)
	assert.Equal(t, "stepped back to verify", log.all()[0].Action)

	// Never silently re-advanced.
	_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "ops", Force: true, Reason: "try"})
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), "guardrail")
	// Nor does the guard, a round of which is what the watch runs: a
	// tripped migration waits for an operator.
	trips, err = c.Guard(ctx)
	require.NoError(t, err)
	assert.Empty(t, trips)
	st, err = ledger.Get(ctx, db, "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, ledger.Verify, st.Phase, "the watch does not move it either")

	// Acknowledged, it advances; the new phase judges only what happens in it.
	force(2) // shadow (acknowledging), live
	st, err = ledger.Get(ctx, db, "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, ledger.Live, st.Phase)
	assert.Empty(t, st.Tripped)
	for i := range 30 {
		var failure error
		if i%3 == 0 {
			failure = context.DeadlineExceeded
		}
		obs.ObserveCall(ctx, dualwrite.Call{Migration: "users_split_name", Stage: flags.Live, Origin: dualwrite.New, Err: failure})
	}
	require.NoError(t, in.Beat(ctx))
	assert.Equal(t, "stepped back to shadow", log.next(t).Action)
	st, err = ledger.Get(ctx, db, "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, ledger.Shadow, st.Phase)
	assert.Contains(t, st.Tripped, "error rate of the new path 0.3333 over 30 calls")
	retro, err := report.Retrospect(ctx, c, "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, 2, retro.Trips)
	assert.Contains(t, retro.Markdown(), "2 guardrail trips")
	stop()
	assert.ErrorIs(t, <-watched, context.Canceled)
}

// A failed verification pauses the backfill and holds the migration.
func TestGuardrailPausesBackfillOnFailedVerification(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testGuardrailPausesBackfillOnFailedVerification)
}

func testGuardrailPausesBackfillOnFailedVerification(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	plan := rollouttest.UsersPlan(db)
	plan.Guardrails = []rollout.Guardrail{{HaltOnFailedVerification: true}}
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	require.NoError(t, err)
	rollouttest.Forced(t, c, "users_split_name", 3) // … backfill
	require.NoError(t, c.RunBackfills(ctx, "users_split_name"))
	db.MustExecContext(ctx, `UPDATE users SET full_name = 'Changed Behind' WHERE id = 9`)
	_, err = c.VerifyBackfills(ctx, "users_split_name", backfill.VerifyOptions{})
	require.NoError(t, err)

	trips, err := c.Guard(ctx)
	require.NoError(t, err)
	require.Len(t, trips, 1)
	assert.Equal(t, "held the migration at backfill", trips[0].Action, "the job is done: nothing to pause")
	assert.Contains(t, trips[0].Reason, `verification of "users_split_name" failed (1 divergent rows)`)
	st, err := ledger.Get(ctx, db, "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, ledger.Backfill, st.Phase)
	assert.NotEmpty(t, st.Tripped)
	assert.Contains(t, lastEvent(t, db).Reason, "held the migration")
	_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "ops"})
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), "guardrail")
	trips, err = c.Guard(ctx)
	require.NoError(t, err)
	assert.Empty(t, trips, "acted on once")
}

// The new path slower than a multiple of the old one at p99 trips the
// latency guardrail.
func TestLatencyGuardrail(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testLatencyGuardrail)
}

func testLatencyGuardrail(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	plan := rollouttest.UsersPlan(db)
	plan.Guardrails = []rollout.Guardrail{{MaxLatencyRatio: 2, MinSamples: 50}}
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	require.NoError(t, err)
	rollouttest.Forced(t, c, "users_split_name", 6) // … live
	in, err := fleet.NewInstance(db, "users-api", "v2", []string{"users_split_name"}, fleet.WithID("api-1"))
	require.NoError(t, err)
	obs := in.Observer()
	call := func(origin dualwrite.Origin, d time.Duration, n int) {
		for range n {
			obs.ObserveCall(ctx, dualwrite.Call{Migration: "users_split_name", Stage: flags.Live, Origin: origin, Duration: d})
		}
	}
	// Comparable latencies: nothing trips.
	call(dualwrite.Old, time.Millisecond, 100)
	call(dualwrite.New, 1200*time.Microsecond, 100)
	require.NoError(t, in.Beat(ctx))
	trips, err := c.Guard(ctx)
	require.NoError(t, err)
	assert.Empty(t, trips)
	// The new path turns 10× slower.
	call(dualwrite.New, 10*time.Millisecond, 300)
	require.NoError(t, in.Beat(ctx))
	trips, err = c.Guard(ctx)
	require.NoError(t, err)
	require.Len(t, trips, 1)
	assert.Contains(t, trips[0].Reason, "p99 latency of the new path 12.8ms over 400 calls, above 2× the old path's 1.6ms")
	assert.Equal(t, "stepped back to shadow", trips[0].Action)
}

// A shadow origin that fails on every 20th read, over a database where old
// and new otherwise agree, reported through a real Reader and heartbeat:
// the gate to live and the consistency guardrail see 95%, not 100%.
func TestShadowFailuresCountAgainstConsistency(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testShadowFailuresCountAgainstConsistency)
}

func testShadowFailuresCountAgainstConsistency(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	plan := rollouttest.UsersPlan(db)
	plan.Thresholds.ShadowConsistency, plan.Thresholds.MinComparisons = 0.99, 100
	plan.Guardrails = []rollout.Guardrail{{MinConsistency: 0.99, MinSamples: 100}}
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	require.NoError(t, err)
	rollouttest.Forced(t, c, "users_split_name", 5) // … shadow
	db.MustExecContext(ctx, `UPDATE users SET given_name = 'Ada', family_name = 'Lovelace' || id`)
	in, err := fleet.NewInstance(db, "users-api", "v2", []string{"users_split_name"}, fleet.WithID("api-1"))
	require.NoError(t, err)

	var calls atomic.Int64
	flag, _ := flagstest.Flag(t, "users_split_name", flags.Shadow)
	r, err := dualwrite.NewReader(flag,
		func(ctx context.Context, id int64) (string, error) {
			var full string
			return full, db.GetContext(ctx, &full, `SELECT full_name FROM users WHERE id = $1`, id)
		},
		func(ctx context.Context, id int64) (string, error) {
			column := "family_name"
			if calls.Add(1)%20 == 0 {
				column = "no_such_column" // a real error from the database
			}
			var full string
			return full, db.GetContext(ctx, &full, `SELECT given_name || ' ' || `+column+` FROM users WHERE id = $1`, id)
		},
		dualwrite.WithObserver(in.Observer()))
	require.NoError(t, err)
	for id := range int64(200) {
		_, err := r.Read(ctx, id+1)
		require.NoError(t, err)
		r.Wait() // one at a time: every 20th read is a shadow read's
	}
	require.NoError(t, r.Close())
	require.NoError(t, in.Beat(ctx))

	ready, err := c.Check(ctx, "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, "shadow consistency", ready.Gate)
	assert.False(t, ready.Met, "10 failed shadow reads in 200 are not 100%% consistency")
	assert.Equal(t, "consistency 0.9500 over 200 comparisons, 0.9900 required", ready.Reason)

	trips, err := c.Guard(ctx)
	require.NoError(t, err)
	require.Len(t, trips, 1)
	assert.Equal(t, "shadow consistency 0.9500 over 200 comparisons, below 0.9900", trips[0].Reason)
}
