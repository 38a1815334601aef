package backfill_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// leaseJob is a Go-mode job whose first chunk, in the worker built with
// stall, waits for release (or its context) before writing.
func leaseJob(stall bool, started chan<- struct{}, release <-chan struct{}) backfill.Job {
	var once atomic.Bool
	return backfill.Job{Name: "lease", Table: "users", Columns: []string{"email"}, Version: "1",
		Func: func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
			if stall && once.CompareAndSwap(false, true) {
				close(started)
				select {
				case <-release:
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
			for _, r := range rows {
				if _, err := tx.ExecContext(ctx, `UPDATE users SET email_lower = lower($2) WHERE id = $1`, r["id"], r["email"]); err != nil {
					return 0, err
				}
			}
			return int64(len(rows)), nil
		}}
}

// A worker that dies mid-chunk keeps its lease until it expires; then
// another worker takes the chunk over and does it again.
func TestDeadWorkersChunkIsTakenOver(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 1000)
		started := make(chan struct{})
		opts := []backfill.Option{backfill.WithChunkSize(250, 250, 250), backfill.WithLease(time.Second), backfill.WithStatementTimeout(500 * time.Millisecond)}

		dead := mustNew(t, db, leaseJob(true, started, nil), append(opts, backfill.WithWorkerID("dead"))...)
		ctx, kill := context.WithCancel(t.Context())
		deadDone := make(chan error, 1)
		go func() { _, err := dead.Run(ctx); deadDone <- err }()
		<-started
		kill() // the worker is gone; its lease stays behind
		require.ErrorIs(t, <-deadDone, context.Canceled)

		start := time.Now()
		heir := mustNew(t, db, leaseJob(false, nil, nil), append(opts, backfill.WithWorkerID("heir"))...)
		final, err := heir.Run(t.Context())
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond, "the chunk waited for the lease to expire")
		assert.Equal(t, int64(1000), final.RowsDone)
		assert.Equal(t, int64(1000), final.RowsChanged)
		assert.Equal(t, int64(1), final.ChunksRedone)
		var owners []string
		require.NoError(t, db.SelectContext(t.Context(), &owners, `SELECT DISTINCT worker FROM schemashift_backfill_chunks`))
		assert.Equal(t, []string{"heir"}, owners)
		assert.Equal(t, 0, divergent(t, db))
	})
}

// A worker that is only slow loses its lease to another; when it gets to
// commit, its work is rolled back: the chunk is committed exactly once.
func TestSlowWorkerLosesItsLease(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 1000)
		started := make(chan struct{})
		release := make(chan struct{})
		opts := []backfill.Option{backfill.WithChunkSize(250, 250, 250), backfill.WithLease(time.Second), backfill.WithStatementTimeout(500 * time.Millisecond)}

		// On PostgreSQL the slow worker stalls inside its chunk, holding row
		// locks. On SQLite a chunk holds the database's write lock, so no one
		// could take the lease over meanwhile: there the slow worker stalls
		// between its claim and its chunk's transaction (a worker waiting
		// long for the write lock).
		job, slowOpts := leaseJob(true, started, release), []backfill.Option{backfill.WithWorkerID("slow")}
		if isSQLite(db) {
			var once atomic.Bool
			job = leaseJob(false, nil, nil)
			slowOpts = append(slowOpts, backfill.WithAfterClaim(func(int64) {
				if once.CompareAndSwap(false, true) {
					close(started)
					<-release
				}
			}))
		}
		slow := mustNew(t, db, job, append(opts, slowOpts...)...)
		slowDone := make(chan error, 1)
		go func() { _, err := slow.Run(context.WithoutCancel(t.Context())); slowDone <- err }()
		<-started

		// The fast worker takes the chunk over once the lease expires (and, on
		// PostgreSQL, waits on the slow one's row locks); then the slow one
		// tries to commit.
		fast := mustNew(t, db, leaseJob(false, nil, nil), append(opts, backfill.WithWorkerID("fast"), backfill.WithLockTimeout(10*time.Second),
			backfill.WithStatementTimeout(900*time.Millisecond), backfill.WithRetries(100, 5*time.Millisecond))...)
		fastDone := make(chan error, 1)
		go func() { _, err := fast.Run(context.WithoutCancel(t.Context())); fastDone <- err }()
		require.Eventually(t, func() bool {
			var attempts int
			_ = db.GetContext(t.Context(), &attempts, `SELECT attempts FROM schemashift_backfill_chunks WHERE seq = 1`)
			return attempts == 2
		}, 10*time.Second, 5*time.Millisecond)
		close(release)
		require.NoError(t, <-slowDone)
		require.NoError(t, <-fastDone)

		st, err := backfill.State(t.Context(), db, "lease")
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, st.Status)
		assert.Equal(t, int64(1000), st.RowsDone)
		assert.Equal(t, int64(1000), st.RowsChanged, "the slow worker's late commit of chunk 1 was refused")
		var owner string
		require.NoError(t, db.GetContext(t.Context(), &owner, `SELECT worker FROM schemashift_backfill_chunks WHERE seq = 1`))
		assert.Equal(t, "fast", owner)
		assert.Equal(t, 0, divergent(t, db))
	})
}

type throttles struct {
	backfill.NopObserver
	n atomic.Int32
}

func (o *throttles) ObserveThrottle(context.Context, backfill.Throttle) { o.n.Add(1) }

func TestSignalsHoldTheBackfillBack(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 500)
		var calls atomic.Int32
		busy := backfill.SignalFunc(func(context.Context) (backfill.Throttle, error) {
			switch calls.Add(1) {
			case 1, 2:
				return backfill.Throttle{Wait: 30 * time.Millisecond, Reason: "replica behind"}, nil
			case 3:
				return backfill.Throttle{}, errors.New("monitoring down")
			}
			return backfill.Throttle{}, nil
		})
		obs := &throttles{}
		b := mustNew(t, db, emailJob("signals"), backfill.WithSignals(busy), backfill.WithObserver(obs))
		final, err := b.Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, final.Status)
		assert.Equal(t, int32(3), obs.n.Load(), "two waits and one for the failing signal")
		st, err := b.State(t.Context())
		require.NoError(t, err)
		assert.GreaterOrEqual(t, st.Throttled, 60*time.Millisecond, "throttle time is recorded")
		assert.Equal(t, 0, divergent(t, db))

		slow := backfill.LatencyProbe(time.Millisecond, func(context.Context) error { time.Sleep(5 * time.Millisecond); return nil })
		th, err := slow.Throttle(t.Context())
		require.NoError(t, err)
		assert.GreaterOrEqual(t, th.Wait, 10*time.Millisecond)
		assert.Contains(t, th.Reason, "foreground latency")
		fast := backfill.LatencyProbe(time.Second, func(context.Context) error { return nil })
		th, err = fast.Throttle(t.Context())
		require.NoError(t, err)
		assert.Zero(t, th.Wait)

		lag := backfill.ReplicationLag(db, time.Second)
		if isSQLite(db) {
			// SQLite has no replicas: asking to throttle on their lag is refused.
			_, err = lag.Throttle(t.Context())
			require.ErrorIs(t, err, errors.ErrUnsupported)
			_, err = backfill.New(t.Context(), db, emailJob("lag"), backfill.WithSignals(lag))
			require.ErrorIs(t, err, errors.ErrUnsupported)
			return
		}
		// No replica: no lag, no throttle.
		th, err = lag.Throttle(t.Context())
		require.NoError(t, err)
		assert.Zero(t, th.Wait)
		_, err = backfill.New(t.Context(), db, emailJob("lag"), backfill.WithSignals(lag))
		require.NoError(t, err)
	})
}
