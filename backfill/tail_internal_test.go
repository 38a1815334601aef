package backfill

import (
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
)

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
		db.MustExecContext(ctx, `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)`)
		insert := func(from, n int) {
			db.MustExecContext(ctx, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $2)
				INSERT INTO users (id, email) SELECT $1 + i, 'U' || i || '@Example.COM' FROM s`, from, n)
		}
		insert(0, 50)
		job := Job{Name: "tail", Table: "users", Set: []Assign{{Column: "email_lower", Expr: "lower(email)"}}, Derived: true}
		newBackfill := func(opts ...Option) *Backfill {
			b, err := New(ctx, db, job, append([]Option{WithChunkSize(100, 100, 100)}, opts...)...)
			require.NoError(t, err)
			return b
		}
		gone := newBackfill(WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
		tail, _, err := gone.claim(ctx, "gone", 100, nil, false)
		require.NoError(t, err)
		require.Nil(t, tail.Span.Hi)
		insert(1000, 3000)

		b := newBackfill()
		c, _, err := b.claim(ctx, "w", 100, nil, false)
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
