package rollout_test

import (
	"context"
	"strings"
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
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

func observe(in *fleet.Instance, m string, o dualwrite.Origin, d time.Duration, n int) {
	for range n {
		in.Observer().ObserveCall(context.Background(), dualwrite.Call{Migration: m, Stage: flags.Shadow, Origin: o, Duration: d})
	}
}

// The fleet's heartbeats read as a foreground: each Read counts the
// calls of every instance's heartbeats since the last (old and new
// paths; another migration's and those before the first Read left out)
// over the time between, and their 99th percentile.
func TestFleetForegroundReadsTheHeartbeats(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		clk := rollouttest.NewClock()
		a, err := fleet.NewInstance(db, "api", "v1", []string{"m", "other"}, fleet.WithID("a"), fleet.WithClock(clk.Now))
		require.NoError(t, err)
		b, err := fleet.NewInstance(db, "api", "v2", []string{"m"}, fleet.WithID(`b"; DROP TABLE x; --`), fleet.WithClock(clk.Now))
		require.NoError(t, err)
		sig, err := rollout.NewFleetForeground(db, "m", 10*time.Second, clk.Now)
		require.NoError(t, err)
		assert.Equal(t, backfill.SourceFleet, sig.Source())
		assert.Equal(t, 20*time.Second, sig.MinWindow())

		// Before the first Read: not counted.
		observe(a, "m", dualwrite.Old, time.Millisecond, 50)
		clk.Add(10 * time.Second)
		require.NoError(t, a.Beat(ctx))
		f, err := sig.Read(ctx)
		require.NoError(t, err)
		assert.Zero(t, f.Ops)

		observe(a, "m", dualwrite.Old, 300*time.Microsecond, 99)
		observe(b, "m", dualwrite.New, 300*time.Microsecond, 100)
		observe(b, "m", dualwrite.New, 20*time.Millisecond, 1)
		observe(a, "other", dualwrite.Old, time.Second, 500)
		clk.Add(10 * time.Second)
		require.NoError(t, a.Beat(ctx))
		require.NoError(t, b.Beat(ctx))
		clk.Add(10 * time.Second)
		f, err = sig.Read(ctx)
		require.NoError(t, err)
		assert.EqualValues(t, 200, f.Ops)
		assert.InDelta(t, 10.0, f.Throughput, 1e-9, "200 calls over the 20 s between the Reads")
		// p99 of 199 calls at 300µs and 1 at 20ms: within the 300µs bucket's top.
		assert.Greater(t, f.Latency, 200*time.Microsecond)
		assert.LessOrEqual(t, f.Latency, 400*time.Microsecond)

		f, err = sig.Read(ctx)
		require.NoError(t, err)
		assert.Zero(t, f.Ops, "no heartbeat since")
	})
	_, err := rollout.NewFleetForeground(nil, "", 0, nil)
	assert.ErrorIs(t, err, rollout.ErrInvalidArgument)
}

// A latency budget paced by the fleet's heartbeats, on real PostgreSQL:
// a window shorter than two heartbeats is refused; with an instance
// beating every 20ms while a foreground calls through it, the backfill
// says it paces by the fleet, and finishes.
func TestLatencyBudgetPacedByTheFleet(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.DB(t)
	require.NoError(t, ledger.Ensure(ctx, db))
	db.MustExecContext(ctx, `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)`)
	db.MustExecContext(ctx, `INSERT INTO users (id, email) SELECT i, 'U' || i || '@X.COM' FROM generate_series(1, 500) i`)
	sig, err := rollout.NewFleetForeground(db, "m", 20*time.Millisecond, nil)
	require.NoError(t, err)
	job := backfill.Job{Name: "fleet-paced", Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email)"}}, Derived: true}
	_, err = backfill.New(ctx, db, job, backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Signal: sig, Window: 10 * time.Millisecond}))
	assert.ErrorContains(t, err, "fleet heartbeats")

	in, err := fleet.NewInstance(db, "api", "v1", []string{"m"}, fleet.WithID("api-1"), fleet.WithHeartbeat(20*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, in.Start(ctx))
	defer in.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls atomic.Int64
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			var n int
			if err := db.GetContext(ctx, &n, `SELECT count(*) FROM users WHERE id = 7`); err != nil {
				return
			}
			in.Observer().ObserveCall(ctx, dualwrite.Call{Migration: "m", Stage: flags.DualWrite, Origin: dualwrite.Old, Duration: time.Since(start)})
			calls.Add(1)
		}
	})
	defer func() { close(stop); wg.Wait() }()

	var paces []string
	var mu sync.Mutex
	b, err := backfill.New(ctx, db, job, backfill.WithChunkSize(20, 20, 20),
		backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Throughput: 0.9, Signal: sig}),
		backfill.WithProgress(10*time.Millisecond, func(p backfill.Progress) {
			mu.Lock()
			paces = append(paces, p.Pace)
			mu.Unlock()
		}))
	require.NoError(t, err)
	p, err := b.Run(ctx)
	require.NoError(t, err)
	assert.Equal(t, backfill.Done, p.Status)
	st, err := b.State(ctx)
	require.NoError(t, err)
	assert.Equal(t, backfill.SourceFleet, st.Foreground)
	mu.Lock()
	defer mu.Unlock()
	judged := false
	for _, pace := range paces {
		judged = judged || strings.Contains(pace, "throughput ")
	}
	assert.True(t, judged, "a pace judged by the fleet's throughput: %q", paces)
	assert.Positive(t, calls.Load())
}
