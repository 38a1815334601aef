package backfill_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// insertPast inserts n rows past every key usersTable writes, as an
// application does while a job waits.
func insertPast(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	db.MustExecContext(t.Context(), `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1)
		INSERT INTO users (id, email) SELECT 1000000 + i, 'New' || i || '@Example.COM' FROM s`, n)
}

// diedHolding leaves chunks 1 to n of job leased, at chunk size size, by
// a process that then died: its clock an hour behind, so that its leases
// have run out by anyone else's.
func diedHolding(t *testing.T, db *sqlx.DB, job backfill.Job, size, n int) {
	t.Helper()
	hourAgo := func() time.Time { return time.Now().Add(-time.Hour) }
	gone := mustNew(t, db, job, backfill.WithChunkSize(size, size, size), backfill.WithClock(hourAgo))
	for i := 1; i <= n; i++ {
		seq, err := gone.Claim(t.Context(), fmt.Sprint("gone", i))
		require.NoError(t, err)
		require.Equal(t, int64(i), seq)
	}
}

// tailCut checks a Run that retook the 50-row open-ended tail (chunk 1)
// after rows-50 rows were inserted past it, at a chunk size of 100: the
// tail was cut to one chunk, and the rows past it walked in chunks of
// their own, none of more than 100 rows; every row filled once.
func tailCut(t *testing.T, db *sqlx.DB, job string, final backfill.Progress, chunks *chunkLog, rows int) {
	t.Helper()
	chunks.mu.Lock()
	defer chunks.mu.Unlock()
	var changed int64
	biggest := 0
	for _, c := range chunks.chunks {
		changed += c.Changed
		biggest = max(biggest, int(max(c.Rows, c.Changed)))
	}
	assert.Equal(t, backfill.Done, final.Status)
	assert.Equal(t, int64(rows), changed, "every row changed once")
	assert.LessOrEqual(t, biggest, 100, "no chunk walked more than its size")
	assert.Equal(t, int64(rows), final.RowsDone, "the progress counts the rows inserted too")
	assert.Equal(t, int64((rows+99)/100), final.ChunksDone, "chunks of 100 rows, the last the tail")
	c := chunkOf(t, db, 1)
	assert.Equal(t, "done", c.Status)
	var open int
	require.NoError(t, db.GetContext(t.Context(), &open, `SELECT count(*) FROM schemashift_backfill_chunks WHERE job = $1 AND hi IS NULL`, job))
	assert.Equal(t, 1, open, "one tail, the last chunk")
	assert.Equal(t, 0, divergent(t, db))
	t.Logf("%d chunks, %d rows changed, the largest %d rows", len(chunks.chunks), changed, biggest)
}

// A dead process's open-ended tail, retaken after the application
// inserted 3,000 rows past it, is not one statement over all of them
// (their row locks held for as long as it takes, past any bound on a
// chunk's time): it is cut to a chunk of the current size, and the walk
// goes on past it.
func TestARetakenTailThatGrewIsCutToChunks(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct{ added, workers int }{
		"3000 inserted":              {3000, 1},
		"3000 inserted, two workers": {3000, 2},
		"30 inserted, a tail still":  {30, 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				t.Parallel()
				usersTable(t, db, 50)
				diedHolding(t, db, emailJob("tail"), 100, 1)
				insertPast(t, db, c.added)

				chunks := &chunkLog{}
				b := mustNew(t, db, emailJob("tail"), backfill.WithChunkSize(100, 100, 100), backfill.WithObserver(chunks),
					backfill.WithWorkers(c.workers))
				final, err := b.Run(t.Context())
				require.NoError(t, err)
				assert.Equal(t, int64(1), final.ChunksRedone, "the dead process's tail was retaken")
				tailCut(t, db, "tail", final, chunks, 50+c.added)
			})
		})
	}
}

// The same for a tail given back by a pause, the rows inserted while the
// job was paused.
func TestATailResumedAfterInsertsIsCutToChunks(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 50)
		var once sync.Once
		chunks := &chunkLog{}
		b := mustNew(t, db, emailJob("tail"), backfill.WithChunkSize(100, 100, 100), backfill.WithObserver(chunks),
			backfill.WithAfterClaim(func(seq int64) {
				if seq != 1 {
					return
				}
				once.Do(func() {
					assert.NoError(t, backfill.Pause(context.WithoutCancel(t.Context()), db, "tail"))
				})
			}))
		done := runInBackground(t, b)
		waitPauseSeen(t, db, "tail")
		assert.Equal(t, "leased", chunkOf(t, db, 1).Status, "the tail given back, not done")
		insertPast(t, db, 3000)
		require.NoError(t, backfill.Resume(t.Context(), db, "tail"))
		require.NoError(t, <-done)
		final, err := b.State(t.Context())
		require.NoError(t, err)
		tailCut(t, db, "tail", final, chunks, 50+3000)
	})
}

// The tail is cut on every key shape, its lower key not nil (two chunks
// claimed by a dead process, the second the tail): the check that the
// job's walk ends at the tail compares keys, not their text, which the
// database prints its own way (jsonb: spaces after commas, '<' as is).
func TestATailIsCutOnEveryKeyShape(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct{ create, fill, more string }{
		"integer": {`CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL, w text)`,
			`INSERT INTO t (id, v) SELECT i, 'V' || i FROM s`,
			`INSERT INTO t (id, v) SELECT 100000 + i, 'V' || i FROM s`},
		"composite": {`CREATE TABLE t (tenant int, id bigint, v text NOT NULL, w text, PRIMARY KEY (tenant, id))`,
			`INSERT INTO t (tenant, id, v) SELECT 1, i, 'V' || i FROM s`,
			`INSERT INTO t (tenant, id, v) SELECT 2, i, 'V' || i FROM s`},
		"text with < > &": {`CREATE TABLE t (id text PRIMARY KEY, v text NOT NULL, w text)`,
			`INSERT INTO t (id, v) SELECT 'a<&>' || (1000 + i), 'V' || i FROM s`,
			`INSERT INTO t (id, v) SELECT 'b<&>' || (1000 + i), 'V' || i FROM s`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				t.Parallel()
				db.MustExecContext(t.Context(), c.create)
				fill(t, db, 150, c.fill)
				job := backfill.Job{Name: "keys", Table: "t", Set: []backfill.Assign{{Column: "w", Expr: "lower(v)"}}}
				diedHolding(t, db, job, 100, 2) // the second is the tail
				fill(t, db, 3000, c.more)

				chunks := &chunkLog{}
				b := mustNew(t, db, job, backfill.WithChunkSize(100, 100, 100), backfill.WithObserver(chunks))
				final, err := b.Run(t.Context())
				require.NoError(t, err)
				var biggest int64
				for _, c := range chunks.all() {
					biggest = max(biggest, c.Rows, c.Changed)
				}
				assert.Equal(t, backfill.Done, final.Status)
				assert.LessOrEqual(t, biggest, int64(100), "no chunk walked more than its size")
				assert.Equal(t, int64(3150), final.RowsDone)
				assert.Equal(t, int64(3150), final.RowsChanged)
				var left int
				require.NoError(t, db.GetContext(t.Context(), &left, `SELECT count(*) FROM t WHERE w IS DISTINCT FROM lower(v)`))
				assert.Zero(t, left)
			})
		})
	}
}

// A process frozen past its lease with the tail (P1) must not run the
// open span when it wakes: meanwhile P2 took the tail over, cut it and
// walked on, and P1's statement would lock every row past the cut, the
// chunks P2 holds among them (and on SQLite hold the database's write
// lock all that time), before its commit found the lease gone. P1 either
// retook the tail from a dead process (and cuts it itself as it wakes),
// or claimed it fresh and was frozen with its renewals.
func TestAFrozenWorkerDoesNotRunATailAnotherCut(t *testing.T) {
	t.Parallel()
	for _, retaken := range []bool{true, false} {
		t.Run(map[bool]string{true: "retaken", false: "claimed"}[retaken], func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				t.Parallel()
				usersTable(t, db, 50)
				if retaken {
					diedHolding(t, db, emailJob("tail"), 100, 1)
					insertPast(t, db, 3000)
				}
				// P1's clock half an hour behind: its lease on the tail has run
				// out by P2's as soon as P1 takes it.
				halfHourAgo := func() time.Time { return time.Now().Add(-30 * time.Minute) }
				frozen, wake, movedOn := make(chan struct{}), make(chan struct{}), make(chan struct{})
				var freeze, next sync.Once
				var ranTail atomic.Bool
				p1 := mustNew(t, db, emailJob("tail"), backfill.WithChunkSize(100, 100, 100), backfill.WithClock(halfHourAgo),
					backfill.WithoutLeaseRenewal(),
					backfill.WithAfterClaim(func(seq int64) {
						if seq == 1 {
							freeze.Do(func() { close(frozen); <-wake })
							return
						}
						next.Do(func() { close(movedOn) })
					}),
					backfill.WithBeforeCommit(func(seq int64) {
						if seq == 1 {
							ranTail.Store(true)
						}
					}))
				done1 := runInBackground(t, p1)
				<-frozen
				if !retaken {
					insertPast(t, db, 3000)
				}
				atFive, goOn := make(chan struct{}), make(chan struct{})
				var five sync.Once
				p2 := mustNew(t, db, emailJob("tail"), backfill.WithChunkSize(100, 100, 100),
					backfill.WithAfterClaim(func(seq int64) {
						if seq == 5 {
							five.Do(func() { close(atFive); <-goOn })
						}
					}))
				done2 := runInBackground(t, p2)
				<-atFive
				c := chunkOf(t, db, 1)
				require.Equal(t, "done", c.Status, "P2 cut the tail and ran it")
				close(wake)
				<-movedOn // P1 gave the tail up and claimed another chunk
				assert.False(t, ranTail.Load(), "P1 ran the open tail it no longer held")
				close(goOn)
				require.NoError(t, <-done2)
				require.NoError(t, <-done1)
				final, err := p2.State(t.Context())
				require.NoError(t, err)
				assert.Equal(t, backfill.Done, final.Status)
				assert.Equal(t, int64(3050), final.RowsDone)
				assert.Equal(t, int64(3050), final.RowsChanged)
				assert.Equal(t, 0, divergent(t, db))
			})
		})
	}
}
