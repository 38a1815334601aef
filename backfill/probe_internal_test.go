package backfill

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
)

// A probe read over a window sees the whole window: a foreground slow
// only in its first half, or only in its second, shows in the reading
// either way. Probes run back to back at either end would see one half.
func TestAProbeReadingIsOfTheWholeWindow(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	const window = 400 * time.Millisecond
	for _, slowFirst := range []bool{true, false} {
		var begin time.Time
		probe := func(ctx context.Context) error {
			// Slow while the foreground is: 30ms of the database's time.
			q := `SELECT 1`
			if (time.Since(begin) < window/2) == slowFirst {
				q = `SELECT pg_sleep(0.03)`
			}
			_, err := db.ExecContext(ctx, q)
			return err
		}
		sig := ProbeForeground(8, probe).(windowSampler)
		begin = time.Now()
		f, err := sig.sample(t.Context(), window)
		took := time.Since(begin)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, f.Latency, 30*time.Millisecond, "slow in the first half: %v; the reading: %+v", slowFirst, f)
		assert.Equal(t, int64(8), f.Ops)
		assert.GreaterOrEqual(t, took, window, "the reading ends with its window")
	}
}

// A probe that fails fails the reading, at the end of its window (a
// failed reading is one a window, as with any signal: the budget backs
// off window by window, not at every probe), and a cancelled one ends it.
func TestAProbeReadingFailsWithItsProbe(t *testing.T) {
	t.Parallel()
	const window = 100 * time.Millisecond
	sig := ProbeForeground(10, func(ctx context.Context) error { return context.DeadlineExceeded }).(windowSampler)
	begin := time.Now()
	_, err := sig.sample(t.Context(), window)
	took := time.Since(begin)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "foreground probe")
	assert.GreaterOrEqual(t, took, window, "the failed reading ends with its window")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = ProbeForeground(3, func(context.Context) error { return nil }).(windowSampler).sample(ctx, time.Hour)
	require.ErrorIs(t, err, context.Canceled)
}
