package backfill_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// An estimate of a job that has run part of the way: Rows is what is
// left (less what finished chunks walked), and the sample walks from the
// job's frontier: before, from the start of the table, through rows
// the job already filled, so that it
// predicts nothing left to change for the 2,000 rows still unfilled.
func TestEstimateAfterPartOfARun(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	usersTable(t, db, 3000)
	ctx, cancel := context.WithCancel(t.Context())
	b := mustNew(t, db, emailJob("part"), backfill.WithChunkSize(100, 100, 100), backfill.WithDutyCycle(1),
		backfill.WithAfterClaim(func(seq int64) {
			if seq == 11 {
				cancel()
			}
		}))
	_, err := b.Run(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 2000, divergent(t, db), "ten chunks of 100 filled")

	e, err := b.Estimate(t.Context(), 3)
	require.NoError(t, err)
	assert.EqualValues(t, 1000, e.Walked)
	assert.InDelta(t, 2000, e.Rows, 200)
	assert.InDelta(t, 2000, e.Changed, 200, "the rows left are all unfilled")
}
