package backfill_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// History returns each finished chunk once, in the order they finished,
// with the rows it walked and the times of the job's clock.
func TestHistory(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		_, err := backfill.History(t.Context(), db, "users_email_lower", 0)
		require.ErrorIs(t, err, backfill.ErrUnknownJob, "before any job ran")
		usersTable(t, db, 5000)
		t0 := time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)
		var ticks atomic.Int64
		clock := func() time.Time { return t0.Add(time.Duration(ticks.Add(1)) * time.Second) }
		b := mustNew(t, db, emailJob("users_email_lower"), backfill.WithChunkSize(700, 100, 700), backfill.WithClock(clock),
			backfill.WithMaxLockHold(10*time.Second)) // no chunk of a loaded machine's is cut for overrunning the bound
		_, err = b.Run(t.Context())
		require.NoError(t, err)

		h, err := backfill.History(t.Context(), db, "users_email_lower", 0)
		require.NoError(t, err)
		require.Len(t, h, 8, "5000 rows in chunks of 700")
		var rows int64
		seqs := map[int64]bool{}
		for i, c := range h {
			rows += c.Rows
			seqs[c.Seq] = true
			assert.Equal(t, 1, c.Attempts)
			assert.True(t, c.Started.After(t0) && !c.Finished.Before(c.Started), "chunk %d: %v → %v", c.Seq, c.Started, c.Finished)
			if i > 0 {
				assert.True(t, c.Finished.After(h[i-1].Finished), "in the order they finished")
			}
		}
		assert.Equal(t, int64(5000), rows)
		assert.Len(t, seqs, 8)

		last, err := backfill.History(t.Context(), db, "users_email_lower", 3)
		require.NoError(t, err)
		assert.Equal(t, h[5:], last, "the last three, oldest first")
		_, err = backfill.History(t.Context(), db, "no such job", 0)
		require.ErrorIs(t, err, backfill.ErrUnknownJob)
	})
}
