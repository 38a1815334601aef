package backfill_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/sqlite"
)

func waitRows(t *testing.T, db *sqlx.DB, job string, atLeast int64) backfill.Progress {
	t.Helper()
	var st backfill.Progress
	require.Eventually(t, func() bool {
		var err error
		st, err = backfill.State(t.Context(), db, job)
		return err == nil && st.RowsDone >= atLeast
	}, 20*time.Second, 5*time.Millisecond)
	return st
}

// eachPools runs f per database, like dbtest.Each, with pool opening
// pools on one fresh database, as separate processes would.
func eachPools(t *testing.T, f func(t *testing.T, pool func() *sqlx.DB)) {
	t.Helper()
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.URL(t)
		f(t, func() *sqlx.DB { return open(t, url) })
	})
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "test.db")
		f(t, func() *sqlx.DB { return dbtest.SQLiteAt(t, path) })
	})
}

func TestPauseResumeCancelFromAnotherConnection(t *testing.T) {
	t.Parallel()
	eachPools(t, func(t *testing.T, pool func() *sqlx.DB) {
		t.Parallel()
		db := pool()
		assert.ErrorIs(t, backfill.Pause(t.Context(), db, "ctl"), backfill.ErrUnknownJob, "no backfill ever ran here")
		_, err := backfill.State(t.Context(), db, "ctl")
		assert.ErrorIs(t, err, backfill.ErrUnknownJob)
		usersTable(t, db, 6000)
		// The worker waits, holding a claimed chunk but no lock, at the claim
		// of chunk holdAt while the test pauses or cancels: SQLite hands its
		// write lock out unfairly, and a worker writing as fast as it can
		// could keep the other pool from having it until the job is done.
		var holdAt atomic.Int64
		holdAt.Store(3)
		held, release := make(chan struct{}), make(chan struct{})
		b := mustNew(t, db, emailJob("ctl"), backfill.WithChunkSize(100, 100, 100), backfill.WithRate(5000),
			backfill.WithAfterClaim(func(seq int64) {
				if seq == holdAt.Load() {
					held <- struct{}{}
					<-release
				}
			}))
		done := runInBackground(t, b)
		ops := pool() // as a CLI or a status board in another process would

		<-held
		require.NoError(t, backfill.Pause(t.Context(), ops, "ctl"))
		release <- struct{}{}
		paused, err := backfill.State(t.Context(), ops, "ctl")
		require.NoError(t, err)
		assert.Equal(t, backfill.Paused, paused.Status)
		assert.Equal(t, int64(200), paused.RowsDone)
		still := waitPauseSeen(t, ops, "ctl")
		assert.Equal(t, paused.RowsDone, still.RowsDone, "no chunk commits after Pause returned")

		holdAt.Store(6)
		require.NoError(t, backfill.Resume(t.Context(), ops, "ctl"))
		<-held
		require.NoError(t, backfill.Cancel(t.Context(), ops, "ctl"))
		release <- struct{}{}
		err = <-done
		require.ErrorIs(t, err, backfill.ErrCancelled)
		cancelled, err := backfill.State(t.Context(), ops, "ctl")
		require.NoError(t, err)
		assert.Equal(t, backfill.Cancelled, cancelled.Status)
		assert.Equal(t, int64(500), cancelled.RowsDone, "chunks 1 to 5: the claimed chunk 6 did not run")

		// Pausing a cancelled job is refused with the reason.
		err = backfill.Pause(t.Context(), ops, "ctl")
		assert.ErrorIs(t, err, backfill.ErrWrongStatus)
		assert.ErrorContains(t, err, "the job is cancelled")
		assert.ErrorIs(t, backfill.Pause(t.Context(), ops, "nope"), backfill.ErrUnknownJob)

		// Resumed, it finishes from its checkpoint.
		require.NoError(t, backfill.Resume(t.Context(), ops, "ctl"))
		final, err := mustNew(t, db, emailJob("ctl"), backfill.WithChunkSize(1000, 100, 5000)).Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, final.Status)
		assert.Equal(t, int64(6000), final.RowsDone)
		assert.Equal(t, int64(6000), final.RowsChanged)
		assert.Equal(t, 0, divergent(t, db))
	})
}

// waitPauseSeen returns the job's state once its worker saw it paused (and
// said so in the throttle column): a chunk that would commit after the
// pause would have done so by then.
func waitPauseSeen(t *testing.T, db *sqlx.DB, job string) backfill.Progress {
	t.Helper()
	var st backfill.Progress
	require.Eventually(t, func() bool {
		var err error
		st, err = backfill.State(t.Context(), db, job)
		return err == nil && st.Throttle == string(backfill.Paused)
	}, 20*time.Second, 5*time.Millisecond)
	return st
}

// nulls counts the rows the backfill has not filled.
func nulls(t *testing.T, db *sqlx.DB) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.GetContext(t.Context(), &n, `SELECT count(*) FROM users WHERE email_lower IS NULL`))
	return n
}

// countingJob is a Go-mode job filling email_lower that counts the chunks
// whose rows it was given.
func countingJob(name string, chunks *atomic.Int32) backfill.Job {
	return backfill.Job{Name: name, Table: "users", Columns: []string{"email"}, Version: "1", Fills: []string{"email_lower"},
		Func: func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
			chunks.Add(1)
			for _, r := range rows {
				if _, err := tx.ExecContext(ctx, `UPDATE users SET email_lower = lower($2) WHERE id = $1`, r["id"], r["email"]); err != nil {
					return 0, err
				}
			}
			return int64(len(rows)), nil
		}}
}

// A pause or cancel that comes after a chunk was claimed (while its worker
// waits for the write lock, say) stops that chunk before its statement:
// the chunk reads no row, its rows are not written, rows done does not
// move after the pause, and the chunk, given back, is done once when the
// job resumes.
func TestPauseAfterClaimStopsTheChunk(t *testing.T) {
	t.Parallel()
	for _, stop := range []backfill.Status{backfill.Paused, backfill.Cancelled} {
		t.Run(string(stop), func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				t.Parallel()
				usersTable(t, db, 2000)
				var once sync.Once
				var atPause backfill.Progress
				var chunks atomic.Int32
				opts := []backfill.Option{backfill.WithChunkSize(250, 250, 250)}
				b := mustNew(t, db, countingJob("ctl", &chunks), append(opts, backfill.WithAfterClaim(func(seq int64) {
					if seq != 3 {
						return
					}
					once.Do(func() {
						ctx := context.WithoutCancel(t.Context())
						if stop == backfill.Paused {
							assert.NoError(t, backfill.Pause(ctx, db, "ctl"))
						} else {
							assert.NoError(t, backfill.Cancel(ctx, db, "ctl"))
						}
						var err error
						atPause, err = backfill.State(ctx, db, "ctl")
						assert.NoError(t, err)
					})
				}))...)
				done := runInBackground(t, b)

				var st backfill.Progress
				if stop == backfill.Paused {
					st = waitPauseSeen(t, db, "ctl")
				} else {
					require.ErrorIs(t, <-done, backfill.ErrCancelled)
					var err error
					st, err = b.State(t.Context())
					require.NoError(t, err)
				}
				assert.Equal(t, stop, st.Status)
				assert.Equal(t, int64(500), atPause.RowsDone, "chunks 1 and 2 were done")
				assert.Equal(t, atPause.RowsDone, st.RowsDone, "no rows were done after the %s", stop)
				assert.Equal(t, int64(1500), nulls(t, db), "the claimed chunk wrote nothing")
				assert.Equal(t, int32(2), chunks.Load(), "the claimed chunk ran no statement")
				assert.Equal(t, "leased", chunkOf(t, db, 3).Status)

				require.NoError(t, backfill.Resume(t.Context(), db, "ctl"))
				if stop == backfill.Cancelled {
					done = runInBackground(t, b)
				}
				require.NoError(t, <-done)
				final, err := b.State(t.Context())
				require.NoError(t, err)
				assert.Equal(t, backfill.Done, final.Status)
				assert.Equal(t, int64(2000), final.RowsDone)
				assert.Zero(t, final.ChunksRedone, "the chunk given back ran once")
				assert.Equal(t, int32(8), chunks.Load())
				assert.Equal(t, 0, divergent(t, db))
			})
		})
	}
}

// A pause that comes while a chunk's statement runs: on PostgreSQL the
// chunk sees it when it checks the job's status before committing, and
// rolls back; on SQLite the pause waits for the write lock the chunk
// holds, so the chunk commits first (and the next chunk's claim waits
// for it, as SQLite hands its lock out unfairly: the worker could
// otherwise finish the job before the pause got the lock). Either way
// nothing commits after Pause returned.
func TestPauseDuringChunkCommitsNothingAfter(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 2000)
		var once sync.Once
		paused := make(chan backfill.Progress, 1)
		pauseReturned := make(chan struct{})
		b := mustNew(t, db, emailJob("ctl"), backfill.WithChunkSize(250, 250, 250), backfill.WithAfterClaim(func(seq int64) {
			if seq == 4 {
				<-pauseReturned
			}
		}), backfill.WithBeforeCommit(func(seq int64) {
			if seq != 3 {
				return
			}
			once.Do(func() {
				pause := func() {
					ctx := context.WithoutCancel(t.Context())
					assert.NoError(t, backfill.Pause(ctx, db, "ctl"))
					st, err := backfill.State(ctx, db, "ctl")
					assert.NoError(t, err)
					paused <- st
					close(pauseReturned)
				}
				if isSQLite(db) {
					go pause() // it waits for this chunk's commit
				} else {
					pause()
				}
			})
		}))
		done := runInBackground(t, b)
		atPause := <-paused
		st := waitPauseSeen(t, db, "ctl")
		assert.Equal(t, atPause.RowsDone, st.RowsDone, "no rows were done after Pause returned")
		if isSQLite(db) {
			assert.Equal(t, "done", chunkOf(t, db, 3).Status, "the chunk committed before the pause took")
			assert.GreaterOrEqual(t, st.RowsDone, int64(750))
		} else {
			assert.Equal(t, "leased", chunkOf(t, db, 3).Status, "the chunk rolled back")
			assert.Equal(t, int64(500), st.RowsDone)
			assert.Equal(t, int64(1500), nulls(t, db))
		}
		require.NoError(t, backfill.Resume(t.Context(), db, "ctl"))
		require.NoError(t, <-done)
		final, err := b.State(t.Context())
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, final.Status)
		assert.Equal(t, int64(2000), final.RowsDone)
		assert.Zero(t, final.ChunksRedone)
		assert.Equal(t, 0, divergent(t, db))
	})
}

type retries struct {
	backfill.NopObserver
	mu   sync.Mutex
	seen []backfill.Retry
}

func (r *retries) ObserveRetry(_ context.Context, rt backfill.Retry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, rt)
}

// pausing holds its worker after it claims chunk seq, before the chunk's
// transaction, until resume is closed, and signals the first chunk that
// gives up on a lock: a test changes the database at a known point of the
// run, without waiting on time.
type pausing struct {
	retries
	seq         int64
	paused      chan struct{}
	resume      chan struct{}
	lockTimeout chan struct{}
	pause, lock sync.Once
}

func newPausing(seq int64) *pausing {
	return &pausing{seq: seq, paused: make(chan struct{}), resume: make(chan struct{}), lockTimeout: make(chan struct{})}
}

// afterClaim is the hook for backfill.WithAfterClaim.
func (p *pausing) afterClaim(seq int64) {
	if seq != p.seq {
		return
	}
	p.pause.Do(func() {
		close(p.paused)
		<-p.resume
	})
}

func (p *pausing) ObserveRetry(ctx context.Context, rt backfill.Retry) {
	p.retries.ObserveRetry(ctx, rt)
	if rt.Op == "chunk" && rt.Kind == "lock_timeout" {
		p.lock.Do(func() { close(p.lockTimeout) })
	}
}

func (r *retries) kinds() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, rt := range r.seen {
		m[rt.Kind]++
	}
	return m
}

// lockRetries records when each chunk gave up on a lock, and the backoff
// it then took, as the worker saw them.
type lockRetries struct {
	retries
	mu    sync.Mutex
	at    []time.Time
	waits []time.Duration
}

func (l *lockRetries) ObserveRetry(ctx context.Context, rt backfill.Retry) {
	l.retries.ObserveRetry(ctx, rt)
	if rt.Op == "chunk" && rt.Kind == "lock_timeout" {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.at, l.waits = append(l.at, time.Now()), append(l.waits, rt.Wait)
	}
}

func (l *lockRetries) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.at)
}

// shortestTry is the shortest time a retried try waited on the lock: from
// the end of the backoff before it to its own lock timeout.
func (l *lockRetries) shortestTry() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	shortest := time.Duration(math.MaxInt64)
	for i := 1; i < len(l.at); i++ {
		shortest = min(shortest, l.at[i].Sub(l.at[i-1])-l.waits[i-1])
	}
	return shortest
}

// A row locked by a long transaction makes its chunk wait at most
// lock_timeout per try and retry; the foreground writing other rows of that
// chunk is held up by no more than that, where a chunk without the
// timeout would hold their locks for as long as the long transaction
// lasts. The transaction lasts until the chunk has given up on the lock
// five times.
//
// The bounds are relative, not lockTimeout plus a margin: on a loaded
// machine a write can take long for reasons of its own. No foreground
// write waits for half the time the lock was held (without the timeout
// the worst would be all of it), and the shortest try gave up within a
// few lock timeouts (the timeout applied is the one set, not the
// default 2s): the shortest of five is one the machine did not slow.
func TestLockedRowMakesChunkRetryNotBlock(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	usersTable(t, db, 2000)
	holder := db.MustBeginTx(t.Context(), nil)
	holder.MustExecContext(t.Context(), `SELECT 1 FROM users WHERE id = 3000 FOR UPDATE`) // row 1000, mid-chunk
	held := time.Now()

	const lockTimeout, tries = 100 * time.Millisecond, 5
	obs := &lockRetries{}
	b := mustNew(t, db, emailJob("locked"), backfill.WithChunkSize(2000, 2000, 2000),
		backfill.WithLockTimeout(lockTimeout), backfill.WithObserver(obs), backfill.WithRetries(100, 20*time.Millisecond))
	done := runInBackground(t, b)

	// Foreground writes to rows the chunk touches before the locked one.
	var worst time.Duration
	deadline := time.Now().Add(30 * time.Second) // only if the chunk never gives up
	for i := 0; obs.count() < tries; i++ {
		require.True(t, time.Now().Before(deadline), "the chunk gave up on the lock %d times, not %d", obs.count(), tries)
		start := time.Now()
		_, err := db.ExecContext(t.Context(), `UPDATE users SET email = email WHERE id = $1`, 3*(1+i%900))
		require.NoError(t, err)
		worst = max(worst, time.Since(start))
	}
	hold := time.Since(held)
	require.NoError(t, holder.Rollback())
	require.NoError(t, <-done)

	assert.Less(t, worst, hold/2, "a foreground write waited out the long transaction, not at most about lock_timeout")
	assert.Less(t, obs.shortestTry(), 5*lockTimeout, "the chunk gave up on the lock after about lock_timeout")
	assert.Equal(t, 0, divergent(t, db))
	t.Logf("retries %v, worst foreground write %v while the lock was held %v, shortest try %v", obs.kinds(), worst, hold, obs.shortestTry())
}

// Connections killed mid-backfill (a failover, a restart of the pooler)
// are retried on new connections; nothing is lost. Every client
// connection is killed, and its end waited for, inside the transactions
// of chunks 10, 25 and 40 (after their statement, before their commit):
// each of those chunks loses its connection once and is retried.
func TestDatabaseConnectionsLostMidBackfill(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	db := open(t, url)
	usersTable(t, db, 5000)
	ops := open(t, url)
	obs := &retries{}
	var mu sync.Mutex
	killed := map[int64]bool{}
	b := mustNew(t, db, emailJob("flaky"), backfill.WithChunkSize(100, 100, 100), backfill.WithObserver(obs),
		backfill.WithBeforeCommit(func(seq int64) {
			mu.Lock()
			defer mu.Unlock()
			if (seq != 10 && seq != 25 && seq != 40) || killed[seq] {
				return
			}
			killed[seq] = true
			// In the select list, not the WHERE clause, which may call it on
			// rows before filtering them; with a timeout it returns once the
			// backend is gone.
			var gone []bool
			err := ops.SelectContext(context.WithoutCancel(t.Context()), &gone, `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
			assert.NoError(t, err)
			// false is a backend that ended on its own between the scan and
			// the kill (the look-ahead's connection, say): not one of ours
			// left alive, since the chunk's connection is asserted below.
			assert.Contains(t, gone, true, "the chunk's connection was killed")
		}))
	final, err := b.Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, backfill.Done, final.Status)
	assert.Equal(t, int64(5000), final.RowsDone)
	assert.Equal(t, int64(5000), final.RowsChanged, "every row changed once")
	assert.Equal(t, 0, divergent(t, db))
	mu.Lock()
	assert.Len(t, killed, 3)
	mu.Unlock()
	var lost int
	obs.mu.Lock()
	for _, rt := range obs.seen {
		if rt.Op == "chunk" && rt.Kind == "connection" {
			lost++
		}
	}
	obs.mu.Unlock()
	assert.GreaterOrEqual(t, lost, 3, "each chunk that lost its connection was retried: %v", obs.kinds())
	assert.GreaterOrEqual(t, final.Retries, int64(3), "retries are recorded")
	t.Logf("retries %v", obs.kinds())
}

// SQLite has no lock_timeout: a chunk that cannot have the write lock
// within busy_timeout fails with SQLITE_BUSY, and is retried like a lock
// timeout. (On PostgreSQL, TestLockedRowMakesChunkRetryNotBlock.)
func TestBusyDatabaseMakesChunkRetry(t *testing.T) {
	t.Parallel()
	// The backfill's pool waits 50ms for the write lock, in place of
	// sqlite.Open's 10s; the foreground's waits the 10s.
	path := filepath.Join(t.TempDir(), "test.db")
	dsn := sqlite.DSN(path)
	const busy10s = "busy_timeout%2810000%29"
	require.Contains(t, dsn, busy10s)
	db, err := sqlx.Open(sqlite.DriverName, strings.Replace(dsn, busy10s, "busy_timeout%2850%29", 1))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	var timeout int
	require.NoError(t, db.GetContext(t.Context(), &timeout, `PRAGMA busy_timeout`))
	require.Equal(t, 50, timeout)
	usersTable(t, db, 3000)
	obs := newPausing(2)
	b := mustNew(t, db, emailJob("busy"), backfill.WithChunkSize(100, 100, 100), backfill.WithObserver(obs),
		backfill.WithAfterClaim(obs.afterClaim))
	done := runInBackground(t, b)
	<-obs.paused // chunk 2 is claimed; its worker waits before the chunk's transaction

	foreground := dbtest.SQLiteAt(t, path)
	holder := foreground.MustBeginTx(t.Context(), nil) // holds the write lock, as a long foreground transaction would
	holder.MustExecContext(t.Context(), `UPDATE users SET email = email WHERE id = 3`)
	st, err := b.State(t.Context())
	require.NoError(t, err)
	require.Less(t, st.RowsDone, int64(3000), "the backfill still has chunks to do")
	close(obs.resume)
	select {
	case <-obs.lockTimeout: // the chunk gave up on the write lock; it retries
	case err := <-done:
		t.Fatalf("the backfill ended (%v) without waiting on the write lock", err)
	}
	require.NoError(t, holder.Commit())
	require.NoError(t, <-done)

	assert.Positive(t, obs.kinds()["lock_timeout"], "the chunk gave up on the write lock and retried")
	st, err = b.State(t.Context())
	require.NoError(t, err)
	assert.Equal(t, backfill.Done, st.Status)
	assert.Equal(t, int64(3000), st.RowsDone)
	assert.Equal(t, 0, divergent(t, db))
	t.Logf("retries %v", obs.kinds())
}
