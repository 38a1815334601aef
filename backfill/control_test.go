package backfill_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
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
		b := mustNew(t, db, emailJob("ctl"), backfill.WithChunkSize(100, 100, 100), backfill.WithRate(5000))
		done := runInBackground(t, b)
		ops := pool() // as a CLI or a status board in another process would

		waitRows(t, ops, "ctl", 200)
		require.NoError(t, backfill.Pause(t.Context(), ops, "ctl"))
		time.Sleep(100 * time.Millisecond) // a chunk in flight may finish
		paused, err := backfill.State(t.Context(), ops, "ctl")
		require.NoError(t, err)
		assert.Equal(t, backfill.Paused, paused.Status)
		time.Sleep(300 * time.Millisecond)
		still, err := backfill.State(t.Context(), ops, "ctl")
		require.NoError(t, err)
		assert.Equal(t, paused.RowsDone, still.RowsDone, "no chunk runs while paused")
		assert.Less(t, still.RowsDone, int64(6000))

		require.NoError(t, backfill.Resume(t.Context(), ops, "ctl"))
		waitRows(t, ops, "ctl", still.RowsDone+200)
		require.NoError(t, backfill.Cancel(t.Context(), ops, "ctl"))
		err = <-done
		require.ErrorIs(t, err, backfill.ErrCancelled)
		cancelled, err := backfill.State(t.Context(), ops, "ctl")
		require.NoError(t, err)
		assert.Equal(t, backfill.Cancelled, cancelled.Status)
		assert.Less(t, cancelled.RowsDone, int64(6000))

		// Pausing a cancelled job is refused with the reason.
		assert.ErrorContains(t, backfill.Pause(t.Context(), ops, "ctl"), "the job is cancelled")
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

func (r *retries) kinds() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, rt := range r.seen {
		m[rt.Kind]++
	}
	return m
}

// A row locked by a long transaction makes its chunk wait at most
// lock_timeout per try and retry; the foreground writing other rows of that
// chunk is held up by no more than that.
func TestLockedRowMakesChunkRetryNotBlock(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	usersTable(t, db, 2000)
	holder := db.MustBeginTx(t.Context(), nil)
	holder.MustExecContext(t.Context(), `SELECT 1 FROM users WHERE id = 3000 FOR UPDATE`) // row 1000, mid-chunk

	const lockTimeout = 100 * time.Millisecond
	obs := &retries{}
	b := mustNew(t, db, emailJob("locked"), backfill.WithChunkSize(2000, 2000, 2000),
		backfill.WithLockTimeout(lockTimeout), backfill.WithObserver(obs), backfill.WithRetries(100, 20*time.Millisecond))
	done := runInBackground(t, b)

	// Foreground writes to rows the chunk touches before the locked one.
	var worst time.Duration
	deadline := time.Now().Add(800 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		start := time.Now()
		_, err := db.ExecContext(t.Context(), `UPDATE users SET email = email WHERE id = $1`, 3*(1+i%900))
		require.NoError(t, err)
		worst = max(worst, time.Since(start))
	}
	require.NoError(t, holder.Rollback())
	require.NoError(t, <-done)

	assert.Positive(t, obs.kinds()["lock_timeout"], "the chunk gave up on the lock and retried")
	assert.Less(t, worst, lockTimeout+250*time.Millisecond, "foreground writes waited at most about lock_timeout")
	assert.Equal(t, 0, divergent(t, db))
	t.Logf("retries %v, worst foreground write %v", obs.kinds(), worst)
}

// Connections killed mid-backfill (a failover, a restart of the pooler)
// are retried on new connections; nothing is lost.
func TestDatabaseConnectionsLostMidBackfill(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	db := open(t, url)
	usersTable(t, db, 5000)
	obs := &retries{}
	b := mustNew(t, db, emailJob("flaky"), backfill.WithChunkSize(100, 100, 100), backfill.WithRate(10000), backfill.WithObserver(obs))
	done := runInBackground(t, b)
	ops := open(t, url)
	for range 3 {
		time.Sleep(100 * time.Millisecond)
		_, err := ops.ExecContext(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
		require.NoError(t, err)
	}
	require.NoError(t, <-done)
	st, err := b.State(t.Context())
	require.NoError(t, err)
	assert.Equal(t, backfill.Done, st.Status)
	assert.Equal(t, int64(5000), st.RowsDone)
	assert.Equal(t, 0, divergent(t, db))
	assert.Positive(t, st.Retries, "retries are recorded")
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
	obs := &retries{}
	b := mustNew(t, db, emailJob("busy"), backfill.WithChunkSize(100, 100, 100), backfill.WithRate(3000), backfill.WithObserver(obs))
	done := runInBackground(t, b)
	waitRows(t, db, "busy", 200)

	foreground := dbtest.SQLiteAt(t, path)
	holder := foreground.MustBeginTx(t.Context(), nil) // holds the write lock, as a long foreground transaction would
	holder.MustExecContext(t.Context(), `UPDATE users SET email = email WHERE id = 3`)
	st, err := b.State(t.Context())
	require.NoError(t, err)
	require.Less(t, st.RowsDone, int64(3000), "the backfill still has chunks to do")
	time.Sleep(400 * time.Millisecond)
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
