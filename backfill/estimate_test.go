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

// An estimate's finish works only inside the run windows: seven hours of
// work in 01:00–05:00 UTC, started at midnight, waits an hour, works
// four, waits twenty, and ends three hours into the next day's window;
// without windows it ends seven hours on.
func TestEstimateFinishWithinRunWindows(t *testing.T) {
	t.Parallel()
	w, err := backfill.ParseWindow("01:00-05:00 UTC")
	require.NoError(t, err)
	midnight := time.Date(2031, 6, 2, 0, 0, 0, 0, time.UTC)
	assert.Equal(t, midnight.Add(7*time.Hour), backfill.FinishWithin(nil, midnight, 7*time.Hour))
	assert.Equal(t, time.Date(2031, 6, 3, 4, 0, 0, 0, time.UTC), backfill.FinishWithin([]backfill.Window{w}, midnight, 7*time.Hour))
	assert.Equal(t, time.Date(2031, 6, 2, 1, 30, 0, 0, time.UTC), backfill.FinishWithin([]backfill.Window{w}, midnight, 30*time.Minute))
	inside := time.Date(2031, 6, 2, 4, 0, 0, 0, time.UTC)
	assert.Equal(t, time.Date(2031, 6, 3, 1, 30, 0, 0, time.UTC), backfill.FinishWithin([]backfill.Window{w}, inside, 90*time.Minute), "an hour today, half an hour tomorrow")
	// Exactly the window: ends at its close.
	assert.Equal(t, time.Date(2031, 6, 2, 5, 0, 0, 0, time.UTC), backfill.FinishWithin([]backfill.Window{w}, midnight, 4*time.Hour))

	// Through Estimate: the pace says so, and the finish is the window's.
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		usersTable(t, db, 250)
		b := mustNew(t, db, emailJob("windowed"), backfill.WithRate(100), backfill.WithRunWindows(w),
			backfill.WithClock(func() time.Time { return midnight }))
		e, err := b.Estimate(t.Context(), 2)
		require.NoError(t, err)
		assert.Contains(t, e.Pace, "inside its run windows")
		assert.Equal(t, backfill.FinishWithin([]backfill.Window{w}, midnight, e.Duration), e.Finish)
		assert.True(t, !e.Finish.Before(midnight.Add(time.Hour)), "not before the window opens: %v", e.Finish)
	})
}
