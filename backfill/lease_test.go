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

// clock is a test's clock for backfill.WithClock: it stands still until
// the test moves it, so that a lease runs out when the test says, not
// when a loaded machine gets round to it. It starts in 2031, far from the
// database's own clock, so that a decision made by the database's now()
// instead of the clock shows.
type clock struct{ ns atomic.Int64 }

func newClock(at time.Time) *clock {
	c := &clock{}
	c.Set(at)
	return c
}

var t0 = time.Date(2031, 12, 31, 23, 59, 59, 999999000, time.UTC)

func (c *clock) Now() time.Time                { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time)               { c.ns.Store(t.UnixNano()) }
func (c *clock) Add(d time.Duration) time.Time { return time.Unix(0, c.ns.Add(int64(d))).UTC() }

// stateAt reads the job's state as it stands at c's time.
func (c *clock) stateAt(t *testing.T, db *sqlx.DB, job string) backfill.Progress {
	t.Helper()
	st, err := backfill.StateAt(t.Context(), db, job, c.Now())
	require.NoError(t, err)
	return st
}

// A lease written by the clock runs out exactly when the clock passes it,
// on both databases (SQLite compares the stored text): at its last
// microsecond it still holds, one microsecond later another worker claims
// the chunk; and the job reads stalled from the microsecond its last lease
// ran out. Both of the claim's decisions are tried: a new chunk while the
// walk goes on, and whether anything is claimable once it is over. The
// database's own clock, years earlier, plays no part.
func TestLeaseExpiresWhenTheClockPassesIt(t *testing.T) {
	t.Parallel()
	for name, at := range map[string]time.Time{
		"fraction crossing a year": t0,
		"whole second":             time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				t.Parallel()
				usersTable(t, db, 400) // two chunks: 250 rows, then the tail
				const lease = 15 * time.Second
				clk := newClock(at)
				b := mustNew(t, db, emailJob("expiry"), backfill.WithChunkSize(250, 250, 250), backfill.WithLease(lease), backfill.WithClock(clk.Now))
				claim := func(worker string) (int64, error) { return b.Claim(t.Context(), worker) }

				seq, err := claim("first")
				require.NoError(t, err)
				require.Equal(t, int64(1), seq)
				c := chunkOf(t, db, 1)
				assert.True(t, c.StartedAt.Equal(at), "claimed at the clock's time: %v", c.StartedAt)
				until := at.Add(lease)
				require.True(t, c.LeaseUntil.Equal(until), "leased until the clock's time plus the lease: %v", c.LeaseUntil)

				// At its last microsecond the lease holds.
				clk.Set(until)
				st := clk.stateAt(t, db, "expiry")
				assert.Equal(t, backfill.Running, st.Status)
				assert.Nil(t, st.Stall)
				seq, err = claim("second")
				require.NoError(t, err)
				assert.Equal(t, int64(2), seq, "a new chunk, not the one whose lease holds")
				_, err = claim("third")
				require.ErrorIs(t, err, backfill.ErrNoChunk, "the walk is over and both leases hold")

				// One microsecond past it, the lease is gone.
				clk.Add(time.Microsecond)
				seq, err = claim("third")
				require.NoError(t, err)
				require.Equal(t, int64(1), seq)
				c = chunkOf(t, db, 1)
				assert.Equal(t, "third", c.Worker)
				assert.Equal(t, 2, c.Attempts)
				last := clk.Now().Add(lease)
				assert.True(t, c.LeaseUntil.Equal(last), "%v", c.LeaseUntil)

				// No worker renews: the job is running until the last lease
				// runs out, and stalled from the microsecond after.
				clk.Set(last)
				assert.Equal(t, backfill.Running, clk.stateAt(t, db, "expiry").Status)
				clk.Add(time.Microsecond)
				st = clk.stateAt(t, db, "expiry")
				require.Equal(t, backfill.Stalled, st.Status)
				require.NotNil(t, st.Stall)
				assert.Equal(t, "third", st.Stall.Worker, "the worker whose lease ran out last")
				assert.True(t, st.Stall.Since.Equal(last), "stalled since the last lease ran out: %v", st.Stall.Since)
			})
		})
	}
}

func waitRowsDone(t *testing.T, db *sqlx.DB, job string, rows int64) {
	t.Helper()
	var st backfill.Progress
	require.Eventually(t, func() bool {
		var err error
		st, err = backfill.State(t.Context(), db, job)
		return err == nil && st.RowsDone == rows
	}, 20*time.Second, 5*time.Millisecond, "rows done: %d", st.RowsDone)
}

// A worker that dies holding a chunk strands it for one lease, not
// minutes. With no live worker the job reads stalled, naming the dead
// worker; a worker that comes takes the chunk over at once, and one that
// was alive all along takes it over when the lease runs out. Each chunk
// is committed once. The clock stands still but when the test moves it:
// a lease runs out only then.
func TestDeadWorkersChunkIsTakenOver(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 1000)
		const lease = time.Second
		job := emailJob("lease")
		clk := newClock(t0)
		opts := append(shortLease(lease), backfill.WithClock(clk.Now))

		// The first worker dies (its context cancelled, its lease left
		// behind, unrenewed) just after claiming chunk 2.
		ctx, kill := context.WithCancel(t.Context())
		dead := mustNew(t, db, job, append(opts, backfill.WithWorkerID("dead"), backfill.WithAfterClaim(func(seq int64) {
			if seq == 2 {
				kill()
			}
		}))...)
		_, err := dead.Run(ctx)
		require.ErrorIs(t, err, context.Canceled)
		stranded := chunkOf(t, db, 2)
		require.Equal(t, "dead", stranded.Worker)
		assert.True(t, stranded.StartedAt.Equal(t0), "claimed at the clock's time")
		assert.Equal(t, lease, stranded.LeaseUntil.Sub(stranded.StartedAt.Time), "the lease is the short one")

		// The lease and the dead Run's heartbeat hold to their last
		// microsecond; past it, the job reads stalled.
		clk.Set(stranded.LeaseUntil.Time)
		assert.Equal(t, backfill.Running, clk.stateAt(t, db, "lease").Status, "not stalled while the lease holds")
		clk.Add(time.Microsecond)
		st := clk.stateAt(t, db, "lease")
		require.Equal(t, backfill.Stalled, st.Status)
		require.NotNil(t, st.Stall)
		assert.Equal(t, "dead", st.Stall.Worker, "the stall names the worker holding the chunk")
		assert.True(t, st.Stall.Since.Equal(stranded.LeaseUntil.Time), "stalled since its lease ran out (%v), not before or after (%v)", stranded.LeaseUntil, st.Stall.Since)
		assert.Zero(t, st.ETA, "no ETA is made up for a stalled job")
		assert.Equal(t, int64(250), st.RowsDone)
		assert.Equal(t, int64(1), st.ChunksLeased)

		// Two workers come; the first to claim chunk 3 dies with it. The one
		// left takes chunk 2 over at once (its lease ran out) and chunk 3
		// once the dead one's lease runs out, which is when the test moves
		// the clock past it.
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
			w := mustNew(t, db, job, append(opts, backfill.WithWorkerID(id), backfill.WithAfterClaim(func(seq int64) {
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
		// Chunks 1, 2 and 4 are done; chunk 3 waits for its lease to run out.
		waitRowsDone(t, db, "lease", 750)
		mu.Lock()
		require.NotEmpty(t, victim)
		claim3, victim3 := claimed, victim
		mu.Unlock()
		held := chunkOf(t, db, 3)
		assert.Equal(t, victim3, held.Worker, "not taken over while its lease holds")
		assert.Equal(t, 1, held.Attempts)
		takeover := clk.Add(claim3.LeaseUntil.Sub(clk.Now()) + time.Microsecond)

		var survived int
		for range 2 {
			if err := <-errs; err == nil {
				survived++
			} else {
				assert.ErrorIs(t, err, context.Canceled)
			}
		}
		assert.Equal(t, 1, survived, "the worker left finished the job")

		final := clk.stateAt(t, db, "lease")
		assert.Equal(t, backfill.Done, final.Status)
		assert.Equal(t, int64(1000), final.RowsDone, "every chunk counted once")
		assert.Equal(t, int64(1000), final.RowsChanged)
		assert.Equal(t, int64(2), final.ChunksRedone, "chunks 2 and 3, each once")
		retook2, retook3 := chunkOf(t, db, 2), chunkOf(t, db, 3)
		assert.NotEqual(t, "dead", retook2.Worker)
		assert.Equal(t, 2, retook2.Attempts)
		require.Equal(t, claim3.Worker, victim3)
		assert.NotEqual(t, victim3, retook3.Worker)
		assert.Equal(t, 2, retook3.Attempts)
		assert.True(t, retook3.StartedAt.Equal(takeover), "taken over when the clock passed the lease: %v, not %v", retook3.StartedAt, takeover)
		assert.Equal(t, 0, divergent(t, db))
	})
}

// A live worker whose chunk takes longer than the lease keeps it: it
// renews the lease while the chunk runs, no one takes the chunk over, the
// job never reads stalled, and the chunk is done once. The test moves the
// clock half a lease at a time, five times, and waits for the renewal at
// each new time (renewals come every third of a lease in real time).
func TestLiveWorkerKeepsItsLease(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 1000)
		const lease = time.Second
		clk := newClock(t0)
		held := make(chan struct{})
		release := make(chan struct{})

		// On PostgreSQL the long chunk waits inside its transaction, holding
		// its rows' locks, while its lease is renewed from another
		// connection. On SQLite a chunk's transaction holds the database's
		// write lock, so that no other worker (nor the renewal) could write
		// meanwhile: there the worker waits between its claim and its
		// transaction (for the write lock, say).
		job, liveOpts := leaseJob(true, held, release), []backfill.Option{backfill.WithWorkerID("live"), backfill.WithClock(clk.Now)}
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
		other := mustNew(t, db, leaseJob(false, nil, nil), append(shortLease(lease), backfill.WithWorkerID("other"), backfill.WithClock(clk.Now))...)
		otherDone := make(chan error, 1)
		go func() { _, err := other.Run(context.WithoutCancel(t.Context())); otherDone <- err }()

		// Two and a half leases pass by the clock, with the other worker
		// asking for chunk 1 all along.
		first := chunkOf(t, db, 1)
		require.True(t, first.LeaseUntil.Equal(t0.Add(lease)))
		for range 5 {
			now := clk.Add(lease / 2)
			require.Eventually(t, func() bool {
				c, err := readChunk(t.Context(), db, 1)
				return assert.NoError(t, err) && c.LeaseUntil.Equal(now.Add(lease))
			}, 20*time.Second, 5*time.Millisecond, "the lease is renewed at the clock's new time %v", now)
			st := clk.stateAt(t, db, "lease")
			assert.Equal(t, backfill.Running, st.Status, "a live worker's job is not stalled")
			assert.Nil(t, st.Stall)
		}
		waitRowsDone(t, db, "lease", 750) // every other chunk
		still := chunkOf(t, db, 1)
		assert.Equal(t, "live", still.Worker)
		assert.Equal(t, 1, still.Attempts, "no one took it over")
		assert.True(t, still.LeaseUntil.After(first.LeaseUntil.Add(2*lease)), "the lease was renewed: %v, first %v", still.LeaseUntil, first.LeaseUntil)
		close(release)
		require.NoError(t, <-liveDone)
		require.NoError(t, <-otherDone)

		final := clk.stateAt(t, db, "lease")
		assert.Equal(t, backfill.Done, final.Status)
		assert.Equal(t, int64(1000), final.RowsDone)
		assert.Equal(t, int64(1000), final.RowsChanged)
		assert.Zero(t, final.ChunksRedone, "no chunk was done twice")
		assert.Equal(t, "live", chunkOf(t, db, 1).Worker)
		assert.Equal(t, 0, divergent(t, db))
	})
}

// A worker that stops renewing its lease (frozen, or cut off from the
// database) loses it to another once the clock passes it; when it gets
// to commit, its work is rolled back: the chunk is committed exactly once.
func TestSlowWorkerLosesItsLease(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 1000)
		const lease = time.Second
		clk := newClock(t0)
		started := make(chan struct{})
		release := make(chan struct{})

		// On PostgreSQL the slow worker stalls inside its chunk, holding row
		// locks. On SQLite a chunk holds the database's write lock, so no one
		// could take the lease over meanwhile: there the slow worker stalls
		// between its claim and its chunk's transaction.
		job, slowOpts := leaseJob(true, started, release), []backfill.Option{backfill.WithWorkerID("slow"), backfill.WithoutLeaseRenewal(), backfill.WithClock(clk.Now)}
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
		clk.Set(chunkOf(t, db, 1).LeaseUntil.Add(time.Microsecond)) // the slow worker's lease ran out

		// The fast worker takes the chunk over (and, on PostgreSQL, waits on
		// the slow one's row locks); then the slow one tries to commit.
		fast := mustNew(t, db, leaseJob(false, nil, nil), append(shortLease(lease), backfill.WithWorkerID("fast"), backfill.WithLockTimeout(10*time.Second),
			backfill.WithStatementTimeout(900*time.Millisecond), backfill.WithRetries(100, 5*time.Millisecond), backfill.WithClock(clk.Now))...)
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

		st := clk.stateAt(t, db, "lease")
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
		const lease = time.Second
		clk := newClock(t0)
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
		b := mustNew(t, db, emailJob("lease"), append(shortLease(lease), backfill.WithSignals(behind), backfill.WithRate(1000), backfill.WithClock(clk.Now),
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

		// Two chunks in, the signal holds the worker back (it says so in
		// the job's row). Then the clock moves two leases on: every lease
		// the worker had ran out, and so did the heartbeat its Run began
		// with, until the next beat vouches for the Run at the new time.
		require.Eventually(t, func() bool {
			st, err := b.State(t.Context())
			return assert.NoError(t, err) && st.Throttle == "replica behind" && st.ChunksDone == 2
		}, 20*time.Second, 5*time.Millisecond)
		var last dialect.Time
		require.NoError(t, db.GetContext(t.Context(), &last, `SELECT max(lease_until) FROM schemashift_backfill_chunks`))
		now := clk.Add(2 * lease)
		require.True(t, now.After(last.Time))
		require.Eventually(t, func() bool {
			var alive dialect.Time
			err := db.GetContext(t.Context(), &alive, `SELECT alive_until FROM schemashift_backfills WHERE job = 'lease'`)
			return assert.NoError(t, err) && alive.Equal(now.Add(lease))
		}, 20*time.Second, 5*time.Millisecond, "the heartbeat is recorded at the clock's new time")
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

		// The probe's sleep is a slow foreground (at least 5ms, however
		// loaded the machine): its wait is at least twice that.
		slow := backfill.LatencyProbe(time.Millisecond, func(context.Context) error { time.Sleep(5 * time.Millisecond); return nil })
		th, err := slow.Throttle(t.Context())
		require.NoError(t, err)
		assert.GreaterOrEqual(t, th.Wait, 10*time.Millisecond)
		assert.Contains(t, th.Reason, "foreground latency")
		fast := backfill.LatencyProbe(time.Hour, func(context.Context) error { return nil }) // no machine is that slow
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
