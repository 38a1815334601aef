package backfill_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// A pool of one connection runs a backfill of two workers to its end,
// however it is paced. Every part of a Run that talks to the database (the
// workers' claims and chunks, the lease, the pacing loop's readings of the
// statistics, the board's loop, the WAL reading) takes the one connection
// in turn: one that held it while it waited for a second would wait until
// the deadline, and the Run would fail with it.
func TestOneConnectionPool(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		opts []backfill.Option
	}{
		{"defaults", nil},
		{"a budget on the statistics", []backfill.Option{backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Throughput: 0.9, Baseline: 2 * time.Second})}},
		{"a duty cycle and a WAL cap", []backfill.Option{backfill.WithDutyCycle(0.5), backfill.WithWALRate(64 << 20)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := open(t, pgtest.URL(t))
			usersTable(t, db, 3000)
			db.SetMaxOpenConns(1)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			var paces []string
			opts := append(quick(), backfill.WithWorkers(2), backfill.WithChunkSize(100, 100, 100),
				backfill.WithProgress(100*time.Millisecond, func(p backfill.Progress) { paces = append(paces, p.Pace) }))
			b, err := backfill.New(ctx, db, emailJob("one-connection"), append(opts, c.opts...)...)
			require.NoError(t, err)
			p, err := b.Run(ctx)
			require.NoError(t, err, "a Run on a pool of one connection")
			assert.Equal(t, backfill.Done, p.Status)
			assert.Equal(t, int64(3000), p.RowsChanged)
			assert.Zero(t, divergent(t, db))
			assert.Equal(t, 1, db.Stats().MaxOpenConnections)
			for _, pace := range paces {
				assert.NotContains(t, pace, "unread", "the board read on the one connection")
			}
		})
	}
}
