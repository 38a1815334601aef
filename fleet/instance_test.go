package fleet_test

import (
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// The heartbeat counts what the dualwrite adapters report.
func TestInstanceObserverFeedsHeartbeat(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testInstanceObserverFeedsHeartbeat)
}

func testInstanceObserverFeedsHeartbeat(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	ctx := t.Context()
	require.NoError(t, ledger.Ensure(ctx, db))
	in, err := fleet.NewInstance(db, "svc", "v1", []string{"m"}, fleet.WithID("i1"), fleet.WithHeartbeat(20*time.Millisecond))
	require.NoError(t, err)
	obs := in.Observer()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				obs.ObserveCall(ctx, dualwrite.Call{Migration: "m", Stage: flags.Shadow, Origin: dualwrite.Old})
				obs.ObserveCall(ctx, dualwrite.Call{Migration: "m", Stage: flags.Shadow, Origin: dualwrite.New, Role: dualwrite.ShadowRole})
				obs.ObserveComparison(ctx, dualwrite.Comparison{Migration: "m", Stage: flags.Shadow, Match: true})
			}
		})
	}
	require.NoError(t, in.Start(ctx))
	wg.Wait()
	obs.ObserveComparison(ctx, dualwrite.Comparison{Migration: "m", Stage: flags.Shadow, Match: false})
	obs.ObserveComparison(ctx, dualwrite.Comparison{Migration: "m", Stage: flags.Shadow, Fault: dualwrite.FaultTimeout})
	require.NoError(t, in.Close())
	require.NoError(t, in.Close(), "Close is idempotent")
	var row struct {
		Old        int64  `db:"old_calls"`
		Matched    int64  `db:"matched"`
		Mismatched int64  `db:"mismatched"`
		Max        string `db:"max_stage"`
	}
	require.NoError(t, db.GetContext(ctx, &row, `SELECT old_calls, matched, mismatched, max_stage FROM schemashift_instances WHERE instance_id = 'i1' AND migration = 'm'`))
	assert.Equal(t, int64(400), row.Old)
	assert.Equal(t, int64(400), row.Matched)
	assert.Equal(t, int64(2), row.Mismatched, "the last heartbeat on Close loses nothing; a timeout is no match")
}

// Two heartbeats of one instance and migration at once (a caller's Beat
// beside the loop's, or two processes sharing an instance ID), the row's
// first included: the histograms, merged in Go under the row's lock, add
// up; neither overwrites the other's. (The instance's own row, written
// first, queues the second beat behind the first even before the
// migration's row exists.)
func TestConcurrentBeatsKeepEveryLatency(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		const rounds, calls = 20, 5
		for r := range rounds {
			id := "api-" + strconv.Itoa(r)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 2 {
				in, err := fleet.NewInstance(db, "users-api", "v2", []string{"m"}, fleet.WithID(id))
				require.NoError(t, err)
				for range calls {
					in.Observer().ObserveCall(ctx, dualwrite.Call{Migration: "m", Stage: flags.Live, Origin: dualwrite.New, Duration: time.Millisecond})
				}
				wg.Go(func() {
					<-start
					assert.NoError(t, in.Beat(ctx))
				})
			}
			close(start)
			wg.Wait()
			var raw string
			var total int64
			require.NoError(t, db.QueryRowxContext(ctx, `SELECT CAST(latency AS text), new_total FROM schemashift_instances
				WHERE instance_id = $1 AND migration = 'm'`, id).Scan(&raw, &total))
			var lat struct{ New []int64 }
			require.NoError(t, json.Unmarshal([]byte(raw), &lat))
			var inHist int64
			for _, n := range lat.New {
				inHist += n
			}
			require.Equal(t, int64(2*calls), total, "round %d", r)
			require.Equal(t, total, inHist, "round %d: the histogram holds every call counted", r)
		}
	})
}

// An instance starts once: a second Start, or a Start after Close, is
// refused, and leaves no second heartbeat running (goleak watches the
// package); Close is idempotent.
func TestInstanceStartsOnce(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	require.NoError(t, ledger.Ensure(t.Context(), db))
	in, err := fleet.NewInstance(db, "users-api", "v1", []string{"users_split_name"}, fleet.WithID("once"))
	require.NoError(t, err)
	require.NoError(t, in.Start(t.Context()))
	require.ErrorIs(t, in.Start(t.Context()), fleet.ErrStarted)
	require.NoError(t, in.Close())
	require.NoError(t, in.Close())
	require.ErrorIs(t, in.Start(t.Context()), fleet.ErrClosed)

	closed, err := fleet.NewInstance(db, "users-api", "v1", []string{"users_split_name"}, fleet.WithID("closed-first"))
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	require.ErrorIs(t, closed.Start(t.Context()), fleet.ErrClosed)
}

// A stage is stamped by a heartbeat that read the clock after the stage
// was recorded: here a heartbeat is held at its clock reading while the
// clock moves and an old-path call is recorded, then the next heartbeat
// runs; the call is stamped at its time. (A heartbeat that read the clock
// before taking what its window held stamped such a call at the earlier
// time: the background heartbeat of rollout.Start, late under load, so
// stamped a caller's call.)
func TestHeartbeatStampsWhatItReports(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clk := rollouttest.NewClock()
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.LedgerPlan()}, rollout.WithClock(clk.Now))
		require.NoError(t, err)
		reading, release := make(chan struct{}), make(chan struct{})
		var held atomic.Bool
		held.Store(true)
		hook := func() time.Time {
			if held.CompareAndSwap(true, false) {
				read := clk.Now() // read now, returned late: a heartbeat slow after its reading
				close(reading)
				<-release
				return read
			}
			return clk.Now()
		}
		in := rollouttest.InstanceAt(t, db, "a", "users_split_name", hook)
		first := make(chan error, 1)
		go func() { first <- in.Beat(ctx) }()
		<-reading
		callAt := clk.Add(time.Minute)
		in.Record("users_split_name", flags.Off, true)
		close(release)
		require.NoError(t, <-first)
		require.NoError(t, in.Beat(ctx))

		fleet, err := c.Fleet(ctx, "users_split_name")
		require.NoError(t, err)
		require.Len(t, fleet.Instances, 1)
		got := fleet.Instances[0]
		require.NotNil(t, got.LastOldCall)
		assert.True(t, got.LastOldCall.Equal(callAt), "the old-path call at its time: %v", got.LastOldCall)
		assert.True(t, got.StageSeen[flags.Off].Equal(callAt), "%v", got.StageSeen[flags.Off])
		assert.True(t, got.LastSeen.Equal(callAt), "the later heartbeat last: %v", got.LastSeen)
	})
}

// The instance's constructor refuses a nil pool or option, or a
// non-positive interval, with ErrInvalidArgument instead of panicking.
func TestInstanceRefusesBadArguments(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	_, err := fleet.NewInstance(db, "users-api", "v1", nil, nil)
	require.ErrorIs(t, err, fleet.ErrInvalidArgument, "a nil option")
	_, err = fleet.NewInstance(db, "users-api", "v1", nil, fleet.WithHeartbeat(0))
	require.ErrorIs(t, err, fleet.ErrInvalidArgument)
	_, err = fleet.NewInstance(db, "users-api", "v1", nil, fleet.WithID(""))
	require.ErrorIs(t, err, fleet.ErrInvalidArgument)
	_, err = fleet.NewInstance(nil, "users-api", "v1", nil)
	require.ErrorIs(t, err, fleet.ErrInvalidArgument)
	_, err = fleet.NewInstance(db, "users-api", "v1", nil, fleet.WithClock(nil))
	require.ErrorIs(t, err, fleet.ErrInvalidArgument)
}
