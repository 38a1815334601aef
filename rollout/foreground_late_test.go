package rollout_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// A heartbeat is stamped by its instance's clock, before it commits: a
// Read past that stamp may come before the row is visible (the commit's
// latency, an instance whose clock runs behind the backfill's). Here an
// instance 5s behind beats just after each Read, and every call it
// reports is counted, once (before, every one was lost).
func TestFleetForegroundCountsLateHeartbeatsOnce(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	ctx := t.Context()
	require.NoError(t, ledger.Ensure(ctx, db))
	for _, skew := range []time.Duration{5 * time.Second} {
		clk := rollouttest.NewClock()
		behind := func() time.Time { return clk.Now().Add(-skew) }
		a, err := fleet.NewInstance(db, "api", "v1", []string{"m"}, fleet.WithID("a"+skew.String()), fleet.WithClock(behind))
		require.NoError(t, err)
		sig, err := rollout.NewFleetForeground(db, "m", 10*time.Second, clk.Now)
		require.NoError(t, err)
		_, err = sig.Read(ctx)
		require.NoError(t, err)
		var counted int64
		for range 6 {
			clk.Add(20 * time.Second)
			f, err := sig.Read(ctx) // the Read lands first, the beat stamped 5s earlier commits a moment later
			require.NoError(t, err)
			counted += f.Ops
			observe(a, "m", dualwrite.Old, time.Millisecond, 10)
			require.NoError(t, a.Beat(ctx))
		}
		f, err := sig.Read(ctx)
		require.NoError(t, err)
		counted += f.Ops
		assert.EqualValues(t, 6*10, counted, "every call reported by a heartbeat is counted once (skew %v)", skew)
	}
}
