package backfill_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// An estimate runs a sample of chunks from the start of the table and
// rolls each back: nothing is filled, the job's checkpoint has not
// moved, and the run after it fills every row. From the sample it
// predicts the rows to change (a third already filled: two thirds), as
// many dead tuples, the log they write (PostgreSQL; none read on
// SQLite), and the duration at the job's pace.
func TestEstimateSamplesAndCommitsNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		const n = 3000
		usersTable(t, db, n)
		// Every third row already filled.
		db.MustExecContext(ctx, `UPDATE users SET email_lower = lower(email) WHERE id % 9 = 0`)
		b := mustNew(t, db, emailJob("estimated"), backfill.WithChunkSize(300, 300, 300), backfill.WithDutyCycle(1))
		e, err := b.Estimate(ctx, 4)
		require.NoError(t, err)
		assert.Equal(t, 4, e.SampleChunks)
		assert.EqualValues(t, 1200, e.SampleRows)
		assert.EqualValues(t, 800, e.SampleChanged, "the filled third walked and left alone")
		assert.InDelta(t, n, e.Rows, n/10, "the table's estimate")
		assert.InDelta(t, float64(e.Rows)*2/3, float64(e.Changed), 2)
		assert.Equal(t, e.Changed, e.DeadTuples)
		assert.Positive(t, e.RowsPerSecond)
		assert.Positive(t, e.Duration)
		assert.InDelta(t, float64(e.Rows)/e.RowsPerSecond, e.Duration.Seconds(), 1e-6)
		assert.Equal(t, "full pace", e.Pace)
		if isSQLite(db) {
			assert.EqualValues(t, -1, e.WALBytes)
		} else {
			assert.Positive(t, e.WALBytes)
		}
		assert.Equal(t, 2000, divergent(t, db), "nothing the sample did stayed")
		st, err := b.State(ctx)
		require.NoError(t, err)
		assert.Zero(t, st.RowsDone)
		assert.Zero(t, st.ChunksDone)

		p, err := b.Run(ctx)
		require.NoError(t, err)
		assert.EqualValues(t, 2000, p.RowsChanged)
		assert.Zero(t, divergent(t, db))
	})
}

// The estimate's pace is the job's: a rate limit bounds the duration's
// rate; a table smaller than the sample is walked whole, once; a sample
// count of none is refused.
func TestEstimatePaceAndSmallTables(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		usersTable(t, db, 250)
		b := mustNew(t, db, emailJob("limited"), backfill.WithChunkSize(100, 100, 100), backfill.WithRate(100))
		e, err := b.Estimate(ctx, 10)
		require.NoError(t, err)
		assert.Equal(t, 3, e.SampleChunks, "100, 100 and the tail of 50")
		assert.EqualValues(t, 250, e.SampleRows)
		assert.True(t, strings.HasPrefix(e.Pace, "rate limit 100 "), e.Pace)
		assert.InDelta(t, (time.Duration(e.Rows) * time.Second / 100).Seconds(), e.Duration.Seconds(), 1e-6)
		_, err = b.Estimate(ctx, 0)
		assert.Error(t, err)
		assert.Equal(t, 250, divergent(t, db))
	})
}
