package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
)

// A backfill whose every worker is gone reads stalled in `backfill
// status`, naming the worker it last had, with no ETA.
func TestCLIBackfillStalled(t *testing.T) {
	t.Parallel()
	url, db := setup(t)
	db.MustExecContext(t.Context(), `ALTER TABLE users ADD COLUMN given_name text`)
	b, err := backfill.New(t.Context(), db, backfill.Job{Name: "stuck", Table: "users",
		Set: []backfill.Assign{{Column: "given_name", Expr: "split_part(full_name, ' ', 1)"}}},
		backfill.WithWorkerID("host-1/dead"), backfill.WithRate(1000), backfill.WithChunkSize(100, 100, 100),
		backfill.WithLease(300*time.Millisecond), backfill.WithStatementTimeout(100*time.Millisecond))
	require.NoError(t, err)
	ctx, stop := context.WithTimeout(t.Context(), 200*time.Millisecond) // the worker dies mid-job
	defer stop()
	_, err = b.Run(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	var r result
	require.Eventually(t, func() bool {
		r = cliRun(t, url, "backfill", "status", "stuck")
		return r.code == 0 && strings.Contains(r.stdout, "stalled")
	}, 10*time.Second, 10*time.Millisecond, "last: %s", r.stdout)
	assert.Contains(t, r.stdout, "stuck: stalled (no live worker since ")
	assert.Contains(t, r.stdout, "last: host-1/dead")
	assert.Contains(t, r.stdout, "ETA -,")
	t.Log(r.stdout)
}
