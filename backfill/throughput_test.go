package backfill_test

import (
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// With several workers, a tail of more than half a chunk is shared out
// among them, rather than left to one while the others idle: 1,080 rows
// in chunks of 100 end in two chunks of 40, not one of 80, and every row
// is filled once.
func TestTailIsSharedAmongWorkers(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		usersTable(t, db, 1080)
		chunks := &chunkLog{}
		// Chunks of 100 (a target none comes near keeps them there), a
		// share as small as 10.
		b := mustNew(t, db, emailJob("tail"), backfill.WithChunkSize(100, 10, 100), backfill.WithWorkers(2),
			backfill.WithTargetChunkTime(time.Hour), backfill.WithMaxLockHold(2*time.Hour), backfill.WithDutyCycle(1), backfill.WithObserver(chunks))
		p, err := b.Run(t.Context())
		require.NoError(t, err)
		require.Equal(t, backfill.Done, p.Status)
		assert.EqualValues(t, 1080, p.RowsChanged)
		assert.Zero(t, divergent(t, db))
		var rows []int64
		for _, c := range chunks.all() {
			rows = append(rows, c.Rows)
		}
		slices.Sort(rows)
		assert.Equal(t, []int64{40, 40}, rows[:2], "the 80-row tail in two shares: %v", rows)
		assert.Len(t, rows, 12, "%v", rows)
		assert.NotContains(t, rows, int64(80))
	})
	// One worker takes the tail whole: there is no one to share it with.
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		usersTable(t, db, 1080)
		chunks := &chunkLog{}
		b := mustNew(t, db, emailJob("tail-one"), backfill.WithChunkSize(100, 10, 100), backfill.WithTargetChunkTime(time.Hour),
			backfill.WithMaxLockHold(2*time.Hour), backfill.WithDutyCycle(1), backfill.WithObserver(chunks))
		_, err := b.Run(t.Context())
		require.NoError(t, err)
		all := chunks.all()
		require.Len(t, all, 11)
		assert.EqualValues(t, 80, all[10].Rows)
	})
}

// A growing chunk size is not held back by the look-ahead: the boundary
// it found while a chunk ran is for the size that chunk asked for, and
// for the sizes the next may grow to, so every chunk but the tail walks
// the rows it asked for (before, the next chunk took the boundary found
// for the last size, and the size grew half as fast).
func TestLookAheadKeepsUpWithAGrowingChunkSize(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		usersTable(t, db, 30_000)
		chunks := &chunkLog{}
		// A target no chunk here comes near: each grows the size 4×.
		b := mustNew(t, db, emailJob("grow"), backfill.WithChunkSize(50, 50, 12_800), backfill.WithDutyCycle(1),
			backfill.WithTargetChunkTime(time.Hour), backfill.WithMaxLockHold(2*time.Hour), backfill.WithObserver(chunks))
		_, err := b.Run(t.Context())
		require.NoError(t, err)
		all := chunks.all()
		var sizes []int64
		for _, c := range all {
			sizes = append(sizes, c.Rows)
		}
		require.GreaterOrEqual(t, len(all), 5, "%v", sizes)
		for i, c := range all[:len(all)-1] {
			assert.EqualValues(t, c.Size, c.Rows, "chunk %d walked the rows it asked for: %v", i+1, sizes)
		}
		assert.Equal(t, []int64{50, 200, 800, 3200, 12_800}, sizes[:5])
	})
}
