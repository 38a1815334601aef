package backfill

import (
	"errors"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// tailJob fills users.email_lower, in chunks of 100 rows (tailBackfill).
var tailJob = Job{Name: "tail", Table: "users", Set: []Assign{{Column: "email_lower", Expr: "lower(email)"}}, Derived: true}

// tailTable creates users with 50 rows, and returns a function that
// inserts n more, with keys from+1 on.
func tailTable(t *testing.T, db *sqlx.DB) (insert func(from, n int)) {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)`)
	insert = func(from, n int) {
		db.MustExecContext(t.Context(), `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $2)
			INSERT INTO users (id, email) SELECT $1 + i, 'U' || i || '@Example.COM' FROM s`, from, n)
	}
	insert(0, 50)
	return insert
}

// tailBackfill is a Backfill of tailJob at a chunk size of 100.
func tailBackfill(t *testing.T, db *sqlx.DB, opts ...Option) *Backfill {
	t.Helper()
	b, err := New(t.Context(), db, tailJob, append([]Option{WithChunkSize(100, 100, 100)}, opts...)...)
	require.NoError(t, err)
	return b
}

// An attempt at cutting a retaken tail whose commit went unanswered (it
// committed; the worker never learned) is followed by another on the
// retry: that one must take the upper key the first gave the chunk, not
// run the span open (every row past the cut walked twice: by this chunk
// and by the chunks claimed past it) nor cut it again. And a worker that
// does not hold the chunk cuts nothing.
func TestCuttingATailTwiceTakesTheFirstCut(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		insert := tailTable(t, db)
		newBackfill := func(opts ...Option) *Backfill { return tailBackfill(t, db, opts...) }
		gone := newBackfill(WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
		tail, _, err := gone.claim(ctx, "gone", 100, nil, nil, false)
		require.NoError(t, err)
		require.Nil(t, tail.Span.Hi)
		insert(1000, 3000)

		b := newBackfill()
		c, _, err := b.claim(ctx, "w", 100, nil, nil, false)
		require.NoError(t, err)
		require.True(t, c.Retaken)
		unanswered := *c
		other := *c
		require.NoError(t, b.boundTail(ctx, "w", c, 100))
		require.NotNil(t, c.Span.Hi, "cut")
		assert.Equal(t, int64(100), c.Scanned)
		frontier := func() (string, bool) {
			var row struct {
				Frontier  string `db:"frontier"`
				Exhausted bool   `db:"exhausted"`
			}
			require.NoError(t, db.GetContext(ctx, &row, `SELECT CAST(frontier AS text) AS frontier, exhausted FROM schemashift_backfills WHERE job = 'tail'`))
			return row.Frontier, row.Exhausted
		}
		f1, ex := frontier()
		assert.False(t, ex, "the walk goes on past the cut")

		require.NoError(t, b.boundTail(ctx, "w", &unanswered, 100))
		assert.Equal(t, c.Span.Hi, unanswered.Span.Hi, "the second attempt takes the first cut")
		assert.Equal(t, int64(100), unanswered.Scanned)
		f2, _ := frontier()
		assert.Equal(t, f1, f2, "the frontier moved once")

		require.ErrorIs(t, b.boundTail(ctx, "someone else", &other, 100), errLeaseLost)
		assert.Nil(t, other.Span.Hi, "a worker that does not hold the chunk learns nothing of it")
	})
}

// Two live processes with one worker ID (a process restarted with
// WithWorkerID while the old one still runs): the new one retakes the
// old one's open tail at once and cuts it, and another worker claims the
// chunk past the cut. The old one's attempt, its span open in its memory,
// must walk the tail as cut, not commit the open span over the rows the
// chunk past the cut commits too; and the chunk commits once.
func TestAnOldAttemptAtATailWalksItAsCut(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		insert := tailTable(t, db)
		newBackfill := func() *Backfill { return tailBackfill(t, db) }
		old := newBackfill()
		tail, _, err := old.claim(ctx, "w", 100, nil, nil, false)
		require.NoError(t, err)
		require.Nil(t, tail.Span.Hi)
		require.False(t, tail.Retaken)
		insert(1000, 3000)

		restarted := newBackfill()
		retaken, _, err := restarted.claim(ctx, "w", 100, nil, nil, false)
		require.NoError(t, err)
		require.Equal(t, tail.Seq, retaken.Seq)
		require.NoError(t, restarted.boundTail(ctx, "w", retaken, 100))
		require.NotNil(t, retaken.Span.Hi)
		past, _, err := restarted.claim(ctx, "x", 100, nil, nil, false)
		require.NoError(t, err)

		changed, _, err := old.process(ctx, "w", tail)
		require.NoError(t, err)
		assert.Equal(t, int64(100), changed, "the tail walked as cut")
		assert.Equal(t, retaken.Span.Hi, tail.Span.Hi)
		changedPast, _, err := restarted.process(ctx, "x", past)
		require.NoError(t, err)
		assert.Equal(t, int64(100), changedPast)
		_, _, err = restarted.process(ctx, "w", retaken)
		require.ErrorIs(t, err, errLeaseLost, "the chunk commits once")

		st, err := restarted.State(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(2), st.ChunksDone)
		assert.Equal(t, int64(200), st.RowsDone)
		assert.Equal(t, int64(200), st.RowsChanged, "no row past the cut changed by the tail")
	})
}

// The commit's own check: an attempt that walked the tail open, and
// whose tail was cut between its statement and its commit (by a process
// with its worker ID), does not mark it done: the span it walked is not
// the chunk's any more. PostgreSQL only: on SQLite the attempt's
// transaction holds the database's write lock, and nothing cuts meanwhile.
func TestATailCutBeforeItsCommitIsNotMarkedDone(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	insert := tailTable(t, db)
	restarted := tailBackfill(t, db)
	var cutErr error
	old := tailBackfill(t, db, func(o *options) error {
		o.beforeCommit = func(int64) {
			retaken, _, err := restarted.claim(ctx, "w", 100, nil, nil, false)
			if err == nil {
				err = restarted.boundTail(ctx, "w", retaken, 100)
			}
			if err == nil && retaken.Span.Hi == nil {
				err = errors.New("not cut")
			}
			cutErr = err
		}
		return nil
	})
	tail, _, err := old.claim(ctx, "w", 100, nil, nil, false)
	require.NoError(t, err)
	require.Nil(t, tail.Span.Hi)
	insert(1000, 3000)

	_, _, err = old.process(ctx, "w", tail)
	require.NoError(t, cutErr)
	require.ErrorIs(t, err, errLeaseLost, "the open span walked is not the chunk's any more")
	var open, done int
	require.NoError(t, db.GetContext(ctx, &open, `SELECT count(*) FROM users WHERE email_lower IS NULL`))
	require.NoError(t, db.GetContext(ctx, &done, `SELECT count(*) FROM schemashift_backfill_chunks WHERE status = 'done'`))
	assert.Equal(t, 3050, open, "the attempt rolled back")
	assert.Zero(t, done)
}

// A look-ahead that found fewer rows than a chunk's size past the
// frontier makes the claim count them rather than walk them twice (for a
// boundary that is not there, then for the count); but that count, not
// the look-ahead's, decides: rows written since that make a chunk's
// size or more are claimed as chunks of that size, not one open tail
// over all of them.
func TestTheLookAheadsTailIsCheckedByTheClaimsCount(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		insert := tailTable(t, db)
		b := tailBackfill(t, db)
		// The look-ahead saw the 50 rows; 200 more came before the claim.
		guesses, short := b.lookAhead(ctx, nil, []int{20, 100, 400}).result()
		require.Len(t, guesses, 1, "the boundary 20 rows in")
		require.NotNil(t, short, "no boundary 100 rows in")
		assert.Equal(t, boundaryGuess{size: 100}, *short)
		insert(1000, 200)
		c, _, err := b.claim(ctx, "w1", 100, nil, short, false)
		require.NoError(t, err)
		require.NotNil(t, c.Span.Hi, "250 rows past the frontier: a chunk of 100, not a tail")
		assert.EqualValues(t, 100, c.Scanned)
		assert.EqualValues(t, Key{"1050"}, c.Span.Hi)

		// 150 past it, seen as fewer than 100 by a look-ahead from there.
		c, _, err = b.claim(ctx, "w2", 100, nil, &boundaryGuess{lo: c.Span.Hi, size: 100}, false)
		require.NoError(t, err)
		require.NotNil(t, c.Span.Hi)
		assert.EqualValues(t, 100, c.Scanned)

		// 50 past the last: the tail, counted.
		c, _, err = b.claim(ctx, "w3", 100, nil, &boundaryGuess{lo: c.Span.Hi, size: 100}, false)
		require.NoError(t, err)
		assert.Nil(t, c.Span.Hi, "the tail")
		assert.EqualValues(t, 50, c.Scanned)

		// A look-ahead from another frontier, or for a larger size, is
		// not this claim's: it walks as it would without one.
		assert.False(t, (&boundaryGuess{lo: Key{"1"}, size: 100}).tailIn(Key{"2"}, 100))
		assert.False(t, (&boundaryGuess{lo: Key{"1"}, size: 200}).tailIn(Key{"1"}, 100))
		assert.True(t, (&boundaryGuess{lo: Key{"1"}, size: 100}).tailIn(Key{"1"}, 200))
	})
}
