package fleet_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
)

// An instance on a plain *sql.DB sends its heartbeats, and the reads of
// the fleet take any of the four handles: in a transaction they see what
// it wrote, gone once it rolls back.
func TestEveryHandle(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db.DB))
		clock := rollouttest.NewClock()
		in, err := fleet.NewInstance(db.DB, "svc", "v1", []string{"m"}, fleet.WithID("i1"), fleet.WithClock(clock.Now))
		require.NoError(t, err, "NewInstance takes a *sql.DB")
		obs := in.Observer()
		obs.ObserveCall(ctx, dualwrite.Call{Migration: "m", Stage: flags.Shadow, Origin: dualwrite.Old, Duration: time.Millisecond})
		obs.ObserveComparison(ctx, dualwrite.Comparison{Migration: "m", Stage: flags.Shadow, Match: true})
		require.NoError(t, in.Beat(ctx))
		require.NoError(t, in.Close())
		now := clock.Add(time.Second)

		for _, h := range rollouttest.Handles() {
			q, end := h.Open(t, db)
			f, err := fleet.Read(ctx, q, "m", time.Minute, now)
			require.NoError(t, err, h.Name)
			require.Len(t, f.Instances, 1, h.Name)
			assert.Equal(t, "i1", f.Instances[0].ID, h.Name)
			assert.Contains(t, f.Instances[0].StageSeen, flags.Shadow, h.Name)
			sum, err := fleet.Sum(ctx, q, "m")
			require.NoError(t, err, h.Name)
			assert.Equal(t, fleet.Totals{Matched: 1, OldTotal: 1}, sum, h.Name)
			lat, err := fleet.Latencies(ctx, q, "m")
			require.NoError(t, err, h.Name)
			assert.Equal(t, int64(1), lat.Old.Total(), h.Name)
			hist, err := fleet.Samples(ctx, q, "m", rollouttest.T0.Add(-time.Second), now)
			require.NoError(t, err, h.Name)
			require.Len(t, hist.Instances, 1, h.Name)
			assert.Equal(t, int64(1), hist.Instances[0].Samples[0].Matched, h.Name)
			per, err := fleet.InstancesPerService(ctx, q, time.Minute, now)
			require.NoError(t, err, h.Name)
			assert.Equal(t, map[string]int{"svc": 1}, per, h.Name)
			if h.Tx {
				_, err := q.ExecContext(ctx, `UPDATE schemashift_instances SET matched = matched + 5 WHERE migration = 'm'`)
				require.NoError(t, err)
				sum, err := fleet.Sum(ctx, q, "m")
				require.NoError(t, err, h.Name)
				assert.Equal(t, int64(6), sum.Matched, "%s: the read sees the transaction's write", h.Name)
			}
			end(false)
			sum, err = fleet.Sum(ctx, db, "m")
			require.NoError(t, err)
			assert.Equal(t, int64(1), sum.Matched, "%s rolled back", h.Name)
		}
	})
}

// A pool of no supported database is refused: by NewInstance at once, and
// by every read, with the dialects' ErrUnknownDriver under its prefix.
func TestUnknownDriver(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := rollouttest.UnknownPool(t)
	_, err := fleet.NewInstance(db, "svc", "v1", nil)
	require.ErrorIs(t, err, fleet.ErrInvalidArgument)
	require.ErrorIs(t, err, dialects.ErrUnknownDriver)
	now := rollouttest.T0
	for name, err := range map[string]error{
		"new instance":   err,
		"read fleet":     second(fleet.Read(ctx, db, "m", time.Minute, now)),
		"sum heartbeats": second(fleet.Sum(ctx, db, "m")),
		"read latencies": second(fleet.Latencies(ctx, db, "m")),
		"read services":  second(fleet.InstancesPerService(ctx, db, time.Minute, now)),
		"read samples":   second(fleet.Samples(ctx, db, "m", now, now)),
	} {
		require.ErrorIs(t, err, dialects.ErrUnknownDriver, name)
		assert.True(t, strings.HasPrefix(err.Error(), name+":"), "%s: %v", name, err)
	}
}

func second[T any](_ T, err error) error { return err }
