package backfill_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialect"
)

// leaseJob is a Go-mode job whose first chunk, in the worker built with
// stall, waits for release (or its context) before writing.
func leaseJob(stall bool, started chan<- struct{}, release <-chan struct{}) backfill.Job {
	var once atomic.Bool
	return backfill.Job{Name: "lease", Table: "users", Columns: []string{"email"}, Version: "1", Fills: []string{"email_lower"},
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

// shortLease is a lease of d (renewed every third of it) and the chunk
// size the lease tests use: 1000 rows are four chunks. Tests that need a
// live worker's renewals and heartbeats to keep up on a loaded machine
// use two seconds; a beat can then come 1.3s late.
func shortLease(d time.Duration) []backfill.Option {
	return []backfill.Option{backfill.WithChunkSize(250, 250, 250), backfill.WithLease(d), backfill.WithStatementTimeout(d / 2)}
}

type chunkRow struct {
	Worker     string       `db:"worker"`
	Status     string       `db:"status"`
	Attempts   int          `db:"attempts"`
	StartedAt  dialect.Time `db:"started_at"` // when last claimed
	LeaseUntil dialect.Time `db:"lease_until"`
}

func readChunk(ctx context.Context, db *sqlx.DB, seq int64) (chunkRow, error) {
	var c chunkRow
	err := db.GetContext(ctx, &c, `SELECT worker, status, attempts, started_at, lease_until FROM schemashift_backfill_chunks WHERE seq = $1`, seq)
	return c, err
}

func chunkOf(t *testing.T, db *sqlx.DB, seq int64) chunkRow {
	t.Helper()
	c, err := readChunk(t.Context(), db, seq)
	require.NoError(t, err)
	return c
}

// dbNowPast reports whether the database's clock is past t plus d.
func dbNowPast(t *testing.T, db *sqlx.DB, at time.Time, d time.Duration) bool {
	t.Helper()
	now, err := dialect.Of(db).CurrentTime(t.Context(), db)
	require.NoError(t, err)
	return now.After(at.Add(d))
}

func waitStalled(t *testing.T, db *sqlx.DB, job string) backfill.Progress {
	t.Helper()
	var st backfill.Progress
	require.Eventually(t, func() bool {
		var err error
		st, err = backfill.State(t.Context(), db, job)
		return err == nil && st.Status == backfill.Stalled
	}, 10*time.Second, 5*time.Millisecond, "the job never read stalled: %+v", st)
	return st
}

// A worker that dies holding a chunk strands it for one lease, not
// minutes. With no live worker the job reads stalled, naming the dead
// worker; a worker that comes takes the chunk over at once, and one that
// was alive all along takes it over when the lease runs out. Each chunk
// is committed once.
func TestDeadWorkersChunkIsTakenOver(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 1000)
		const lease = time.Second
		job := emailJob("lease")

		// The first worker dies (its context cancelled, its lease left
		// behind, unrenewed) just after claiming chunk 2.
		ctx, kill := context.WithCancel(t.Context())
		dead := mustNew(t, db, job, append(shortLease(lease), backfill.WithWorkerID("dead"), backfill.WithAfterClaim(func(seq int64) {
			if seq == 2 {
				kill()
			}
		}))...)
		_, err := dead.Run(ctx)
		require.ErrorIs(t, err, context.Canceled)
		stranded := chunkOf(t, db, 2)
		require.Equal(t, "dead", stranded.Worker)
		assert.InDelta(t, lease.Seconds(), stranded.LeaseUntil.Sub(stranded.StartedAt.Time).Seconds(), 0.05, "the lease is the short one")

		st := waitStalled(t, db, "lease")
		require.NotNil(t, st.Stall)
		assert.Equal(t, "dead", st.Stall.Worker, "the stall names the worker holding the chunk")
		assert.False(t, st.Stall.Since.Before(stranded.LeaseUntil.Time), "stalled since its lease ran out (%v), not before (%v)", stranded.LeaseUntil, st.Stall.Since)
		assert.Zero(t, st.ETA, "no ETA is made up for a stalled job")
		assert.Equal(t, int64(250), st.RowsDone)
		assert.Equal(t, int64(1), st.ChunksLeased)

		// Two workers come; the first to claim chunk 3 dies with it. The one
		// left takes chunk 2 over at once (its lease is long gone) and chunk 3
		// once the dead one's lease runs out.
		var (
			mu      sync.Mutex
			victim  string
			claimed chunkRow // chunk 3 as the victim claimed it
		)
		kills := map[string]context.CancelFunc{}
		errs := make(chan error, 2)
		for _, id := range []string{"a", "b"} {
			ctx, kill := context.WithCancel(t.Context())
			kills[id] = kill
			w := mustNew(t, db, job, append(shortLease(lease), backfill.WithWorkerID(id), backfill.WithAfterClaim(func(seq int64) {
				mu.Lock()
				defer mu.Unlock()
				if seq == 3 && victim == "" {
					var err error
					claimed, err = readChunk(context.WithoutCancel(ctx), db, 3)
					assert.NoError(t, err)
					victim = id
					kills[id]()
				}
			}))...)
			go func() { _, err := w.Run(ctx); errs <- err }()
		}
		var survived int
		for range 2 {
			if err := <-errs; err == nil {
				survived++
			} else {
				assert.ErrorIs(t, err, context.Canceled)
			}
		}
		assert.Equal(t, 1, survived, "the worker left finished the job")

		final, err := backfill.State(t.Context(), db, "lease")
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, final.Status)
		assert.Equal(t, int64(1000), final.RowsDone, "every chunk counted once")
		assert.Equal(t, int64(1000), final.RowsChanged)
		assert.Equal(t, int64(2), final.ChunksRedone, "chunks 2 and 3, each once")
		retook2, retook3 := chunkOf(t, db, 2), chunkOf(t, db, 3)
		assert.NotEqual(t, "dead", retook2.Worker)
		assert.Equal(t, 2, retook2.Attempts)
		require.Equal(t, claimed.Worker, victim)
		assert.NotEqual(t, victim, retook3.Worker)
		assert.Equal(t, 2, retook3.Attempts)
		// By the database's clock: the survivor took chunk 3 after the dead
		// one's lease ran out, and soon after.
		stuck := retook3.StartedAt.Sub(claimed.StartedAt.Time)
		assert.False(t, retook3.StartedAt.Before(claimed.LeaseUntil.Time), "taken over before the lease ran out")
		assert.Less(t, stuck, 3*lease, "chunk 3 was taken over within a few leases")
		assert.Equal(t, 0, divergent(t, db))
		t.Logf("stalled %v after the lease ran out; chunk 3 taken over %v after its claim by the worker that died (lease %v)",
			st.Stall.Since.Sub(stranded.LeaseUntil.Time), stuck.Round(time.Millisecond), lease)
	})
}

// A live worker whose chunk takes longer than the lease keeps it: it
// renews the lease while the chunk runs, no one takes the chunk over, the
// job never reads stalled, and the chunk is done once.
func TestLiveWorkerKeepsItsLease(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 1000)
		const lease = 2 * time.Second
		held := make(chan struct{})
		release := make(chan struct{})

		// On PostgreSQL the long chunk waits inside its transaction, holding
		// its rows' locks, while its lease is renewed from another
		// connection. On SQLite a chunk's transaction holds the database's
		// write lock, so that no other worker (nor the renewal) could write
		// meanwhile: there the worker waits between its claim and its
		// transaction (for the write lock, say).
		job, liveOpts := leaseJob(true, held, release), []backfill.Option{backfill.WithWorkerID("live")}
		if isSQLite(db) {
			var once atomic.Bool
			job = leaseJob(false, nil, nil)
			liveOpts = append(liveOpts, backfill.WithAfterClaim(func(int64) {
				if once.CompareAndSwap(false, true) {
					close(held)
					<-release
				}
			}))
		}
		live := mustNew(t, db, job, append(shortLease(lease), liveOpts...)...)
		liveDone := make(chan error, 1)
		go func() { _, err := live.Run(context.WithoutCancel(t.Context())); liveDone <- err }()
		<-held
		other := mustNew(t, db, leaseJob(false, nil, nil), append(shortLease(lease), backfill.WithWorkerID("other"))...)
		otherDone := make(chan error, 1)
		go func() { _, err := other.Run(context.WithoutCancel(t.Context())); otherDone <- err }()

		// Two and a half leases pass, by the database's clock, with every
		// other chunk done and the other worker asking for chunk 1 all along.
		first := chunkOf(t, db, 1)
		require.Eventually(t, func() bool {
			var done int
			require.NoError(t, db.GetContext(t.Context(), &done, `SELECT count(*) FROM schemashift_backfill_chunks WHERE status = 'done'`))
			return done == 3 && dbNowPast(t, db, first.StartedAt.Time, 5*lease/2)
		}, 20*time.Second, 10*time.Millisecond)
		st, err := backfill.State(t.Context(), db, "lease")
		require.NoError(t, err)
		assert.Equal(t, backfill.Running, st.Status, "a live worker's job is not stalled")
		assert.Nil(t, st.Stall)
		still := chunkOf(t, db, 1)
		assert.Equal(t, "live", still.Worker)
		assert.Equal(t, 1, still.Attempts, "no one took it over")
		assert.True(t, still.LeaseUntil.After(first.LeaseUntil.Add(lease)), "the lease was renewed: %v, first %v", still.LeaseUntil, first.LeaseUntil)
		close(release)
		require.NoError(t, <-liveDone)
		require.NoError(t, <-otherDone)

		final, err := backfill.State(t.Context(), db, "lease")
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, final.Status)
		assert.Equal(t, int64(1000), final.RowsDone)
		assert.Equal(t, int64(1000), final.RowsChanged)
		assert.Zero(t, final.ChunksRedone, "no chunk was done twice")
		assert.Equal(t, "live", chunkOf(t, db, 1).Worker)
		assert.Equal(t, 0, divergent(t, db))
	})
}

// A worker that stops renewing its lease (frozen, or cut off from the
// database) loses it to another; when it gets to commit, its work is
// rolled back: the chunk is committed exactly once.
func TestSlowWorkerLosesItsLease(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 1000)
		const lease = time.Second
		started := make(chan struct{})
		release := make(chan struct{})

		// On PostgreSQL the slow worker stalls inside its chunk, holding row
		// locks. On SQLite a chunk holds the database's write lock, so no one
		// could take the lease over meanwhile: there the slow worker stalls
		// between its claim and its chunk's transaction.
		job, slowOpts := leaseJob(true, started, release), []backfill.Option{backfill.WithWorkerID("slow"), backfill.WithoutLeaseRenewal()}
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
		slow := mustNew(t, db, job, append(shortLease(lease), slowOpts...)...)
		slowDone := make(chan error, 1)
		go func() { _, err := slow.Run(context.WithoutCancel(t.Context())); slowDone <- err }()
		<-started

		// The fast worker takes the chunk over once the lease expires (and, on
		// PostgreSQL, waits on the slow one's row locks); then the slow one
		// tries to commit.
		fast := mustNew(t, db, leaseJob(false, nil, nil), append(shortLease(lease), backfill.WithWorkerID("fast"), backfill.WithLockTimeout(10*time.Second),
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
		assert.Equal(t, "fast", chunkOf(t, db, 1).Worker)
		assert.Equal(t, 0, divergent(t, db))
	})
}

// A worker waiting on a throttle (a signal, or the rate limit) holds no
// lease, and its job does not read stalled meanwhile: its Run's heartbeat
// vouches for it, long after every lease ran out.
func TestThrottledWorkerHoldsNoLease(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 1000)
		const lease = 2 * time.Second
		var chunks atomic.Int32
		var released atomic.Bool
		behind := backfill.SignalFunc(func(context.Context) (backfill.Throttle, error) {
			if chunks.Load() >= 2 && !released.Load() {
				return backfill.Throttle{Wait: 20 * time.Millisecond, Reason: "replica behind"}, nil
			}
			return backfill.Throttle{}, nil
		})
		var (
			mu     sync.Mutex
			leased []int
		)
		// The reservation hook runs as the worker starts its wait on the rate
		// limit; one worker, so any leased chunk would be its own.
		b := mustNew(t, db, emailJob("lease"), append(shortLease(lease), backfill.WithSignals(behind), backfill.WithRate(1000),
			backfill.WithReserved(func(int, int, time.Time) {
				var n int
				err := db.GetContext(context.WithoutCancel(t.Context()), &n, `SELECT count(*) FROM schemashift_backfill_chunks WHERE status = 'leased'`)
				assert.NoError(t, err)
				mu.Lock()
				leased = append(leased, n)
				mu.Unlock()
				chunks.Add(1)
			}))...)
		done := runInBackground(t, b)

		// Two chunks in, the signal holds the worker back until, by the
		// database's clock, every lease it had ran out (and so did the
		// heartbeat its Run began with).
		require.Eventually(t, func() bool {
			var last dialect.Time
			require.NoError(t, db.GetContext(t.Context(), &last, `SELECT max(lease_until) FROM schemashift_backfill_chunks`))
			return chunks.Load() >= 2 && !last.IsZero() && dbNowPast(t, db, last.Time, 100*time.Millisecond)
		}, 20*time.Second, 10*time.Millisecond)
		st, err := b.State(t.Context())
		require.NoError(t, err)
		assert.Equal(t, backfill.Running, st.Status, "a throttled worker's job is not stalled")
		assert.Zero(t, st.ChunksLeased, "no lease is held while throttled")
		assert.Equal(t, "replica behind", st.Throttle)
		released.Store(true)
		require.NoError(t, <-done)

		mu.Lock()
		defer mu.Unlock()
		assert.NotEmpty(t, leased)
		for i, n := range leased {
			assert.Zero(t, n, "a lease was held during wait %d on the rate limit", i)
		}
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
