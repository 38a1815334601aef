package backfill

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
)

// boardPool opens a pool on u, closed when t ends.
func boardPool(t *testing.T, u string) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("pgx", u)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// statsTxs commits n transactions on a session of its own to the
// database at u, ends the session (a backend reports its counts as it
// leaves, on every version: PostgreSQL 14 has no way to make a live one
// report them at once) and waits until the database's statistics show
// them.
func statsTxs(t testing.TB, u string, n int) {
	t.Helper()
	ctx := t.Context()
	xacts := func(db *sqlx.DB) int64 {
		var x int64
		require.NoError(t, db.GetContext(ctx, &x, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`))
		return x
	}
	db, err := sqlx.Open("pgx", u)
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	before := xacts(db)
	for range n {
		_, err := db.ExecContext(ctx, `SELECT 1`)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())
	poll, err := sqlx.Open("pgx", u)
	require.NoError(t, err)
	defer poll.Close()
	poll.SetMaxOpenConns(1)
	for xacts(poll) < before+int64(n) {
	}
}

// boardJob is a Backfill of a job on users (created on first use), with
// a board.
func boardJob(t *testing.T, db *sqlx.DB) *Backfill {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)`)
	b, err := New(t.Context(), db, Job{Name: "board", Table: "users",
		Set: []Assign{{Column: "email_lower", Expr: "lower(email)"}}, Derived: true})
	require.NoError(t, err)
	require.NotNil(t, b.board)
	return b
}

// A Backfill's row has two writers, its readings of the statistics and
// its Run's loop, each with the counts it loaded before its statement:
// the later may commit first. The row must never move back (the others
// would take the step forward off again, on top of what they took), and
// the others must take off exactly what the Backfill did.
func TestABoardRowNeverStepsBack(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	db := boardPool(t, u)
	b1, b2 := boardJob(t, db), boardJob(t, boardPool(t, u))
	ctx := t.Context()
	var done atomic.Int32
	var wg sync.WaitGroup
	const n = 300
	wg.Go(func() { // the pace's readings
		defer done.Add(1)
		sig := newDBForeground(b1)
		for range n {
			_, err := sig.Read(ctx)
			assert.NoError(t, err)
		}
	})
	wg.Go(func() { // a Run's writes: its first and its last
		defer done.Add(1)
		for range n {
			b1.publishing(ctx)()
		}
	})
	var seen []int64 // b1's row as the other reads it
	for done.Load() < 2 {
		runs, err := b2.board.publish(ctx)
		require.NoError(t, err)
		if l, ok := runs[b1.board.run]; ok {
			seen = append(seen, l.xacts)
		}
	}
	wg.Wait()
	require.NotEmpty(t, seen)
	var taken int64
	back := 0
	for i := 1; i < len(seen); i++ {
		taken += since(map[string]runLoad{"r": {xacts: seen[i-1]}}, map[string]runLoad{"r": {xacts: seen[i]}}).xacts
		if seen[i] < seen[i-1] {
			back++
		}
	}
	did := seen[len(seen)-1] - seen[0]
	t.Logf("%d readings, %d steps back; taken off %d, done %d", len(seen), back, taken, did)
	assert.Zero(t, back, "the row stepped back")
	assert.Equal(t, did, taken, "the other took off more than the Backfill did")
}

// Ten Backfills whose rows are all past their time write at once, over
// and over (runs started again after more than a minute): none of their
// statements may fail (a removal of the others' rows in the same
// statement as the write deadlocked).
func TestBoardWritesDoNotDeadlock(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	admin := boardPool(t, u)
	const k, rounds = 10, 30
	bs := make([]*Backfill, k)
	for i := range bs {
		bs[i] = boardJob(t, boardPool(t, u))
		_, err := bs[i].board.publish(t.Context())
		require.NoError(t, err)
	}
	var errs []error
	var mu sync.Mutex
	for range rounds {
		admin.MustExecContext(t.Context(), `UPDATE schemashift_backfill_runs SET alive_until = now() - interval '1 second'`)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, b := range bs {
			wg.Go(func() {
				<-start
				// As a Run starts: the removal, then the write.
				stop := b.publishing(t.Context())
				stop()
				if _, err := b.board.publish(t.Context()); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
	}
	for _, err := range errs[:min(3, len(errs))] {
		t.Log(err)
	}
	assert.Empty(t, errs, "%d of %d writes failed", len(errs), k*rounds)
	var left int
	require.NoError(t, admin.GetContext(t.Context(), &left, `SELECT count(*) FROM schemashift_backfill_runs`))
	assert.Equal(t, k, left, "each Backfill's row, written last, is there")
}

// A reading whose board statement fails (the table away, a deadlock)
// goes on without the others' load; the next reading must count nothing
// of theirs, not their two windows against one of the statistics, which
// would hide a foreground as large as a window of theirs.
func TestAFailedBoardReadDoesNotHideTheNextForeground(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	admin := boardPool(t, u)
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	theirURL := u + sep + "application_name=other-backfill"
	b1, b2 := boardJob(t, boardPool(t, theirURL)), boardJob(t, boardPool(t, u))
	ctx := t.Context()
	theirWindow := func(d int) { // the other backfill's work, counted and written
		b1.ownTx.Add(int64(d))
		statsTxs(t, theirURL, d)
		b1.publishing(ctx)()
	}
	read := newDBForeground(b2)
	b1.publishing(ctx)()
	_, err := read.Read(ctx)
	require.NoError(t, err)

	const d, fg = 300, 300
	theirWindow(d)
	admin.MustExecContext(ctx, `ALTER TABLE schemashift_backfill_runs RENAME TO schemashift_backfill_runs_away`)
	f1, err := read.Read(ctx)
	require.NoError(t, err)
	admin.MustExecContext(ctx, `ALTER TABLE schemashift_backfill_runs_away RENAME TO schemashift_backfill_runs`)
	assert.Contains(t, read.warning(), "other backfills' load unread")
	t.Logf("board unread: %d ops, %q", f1.Ops, read.warning())

	theirWindow(d)
	statsTxs(t, u, fg) // a real foreground
	f2, err := read.Read(ctx)
	require.NoError(t, err)
	t.Logf("board read again: %d ops (a foreground of %d ran)", f2.Ops, fg)
	assert.GreaterOrEqual(t, f2.Ops, int64(fg-20), "the foreground was taken off as the other backfill's")
	assert.Empty(t, read.warning())
}

// The removal as a Run starts takes only the rows past their time: not a
// live Backfill's, nor one another session holds (it skips it rather
// than wait: a Run that waited there would not start), and the row left
// is the one the next removal takes, once it is free.
func TestRemovalTakesOnlyRowsPastTheirTime(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	admin := boardPool(t, u)
	live, stale, held := boardJob(t, boardPool(t, u)), boardJob(t, boardPool(t, u)), boardJob(t, boardPool(t, u))
	for _, b := range []*Backfill{live, stale, held} {
		b.ownTx.Add(7)
		_, err := b.board.publish(t.Context())
		require.NoError(t, err)
	}
	admin.MustExecContext(t.Context(), `UPDATE schemashift_backfill_runs SET alive_until = now() - interval '1 microsecond' WHERE run IN ($1, $2)`,
		stale.board.run, held.board.run)
	tx, err := admin.BeginTxx(t.Context(), nil)
	require.NoError(t, err)
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	tx.MustExecContext(t.Context(), `SELECT 1 FROM schemashift_backfill_runs WHERE run = $1 FOR UPDATE`, held.board.run)

	rows := func() map[string]int64 {
		var got []struct {
			Run   string `db:"run"`
			Xacts int64  `db:"xacts"`
		}
		require.NoError(t, admin.SelectContext(t.Context(), &got, `SELECT run, xacts FROM schemashift_backfill_runs`))
		m := map[string]int64{}
		for _, r := range got {
			m[r.Run] = r.Xacts
		}
		return m
	}
	starting := boardJob(t, boardPool(t, u))
	started := make(chan struct{})
	go func() {
		defer close(started)
		stop := starting.publishing(t.Context()) // the removal, then the first write
		stop()
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second): // a bound on failure, not a wait for success
		t.Fatal("the Run waited on a row another session holds")
	}
	got := rows()
	assert.Equal(t, int64(7), got[live.board.run], "the live Backfill's row, and its count, kept: %v", got)
	assert.NotContains(t, got, stale.board.run, "the row past its time removed")
	assert.Contains(t, got, held.board.run, "the row another session holds skipped")
	assert.Contains(t, got, starting.board.run)
	require.NoError(t, tx.Commit())

	again := boardJob(t, boardPool(t, u))
	stop := again.publishing(t.Context())
	stop()
	got = rows()
	assert.NotContains(t, got, held.board.run, "removed once it is free")
	assert.Equal(t, int64(7), got[live.board.run])
	assert.Len(t, got, 3, "%v", got)
}
