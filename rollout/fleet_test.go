package rollout_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

func fleetPlan() rollout.Plan {
	return rollout.Plan{Migration: "users_split_name", Thresholds: rollout.Thresholds{Window: window, MinComparisons: 1}}
}

// Simulated instances at mixed stages hold back the backfill and the
// contract exactly as the gates say; an instance that stops heartbeating
// ages out and no longer holds anything back. The instances and the
// coordinator share a clock that moves only when the test moves it: a
// window is whole at its last microsecond, not one before, and an
// instance ages out exactly when its age-out has passed.
func TestHeartbeatsHoldBackMixedFleet(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testHeartbeatsHoldBackMixedFleet)
}

func testHeartbeatsHoldBackMixedFleet(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	ctx := t.Context()
	const ageOut = 2 * window
	clk := newClock()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{fleetPlan()}, rollout.WithAgeOut(ageOut), rollout.WithClock(clk.Now))
	require.NoError(t, err)
	force := func(n int) {
		for range n {
			_, err := c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Force: true, Reason: "setup"})
			require.NoError(t, err)
		}
	}
	advance := func() error {
		_, err := c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Confirm: true})
		return err
	}
	force(2) // expanded, dualwrite
	newInstance := func(id, build string, migrations ...string) *rollout.Instance {
		in, err := rollout.NewInstance(db, "users-api", build, migrations, rollout.WithInstanceID(id), rollout.WithInstanceClock(clk.Now))
		require.NoError(t, err)
		return in
	}
	a, b, laggard := newInstance("a", "v2", "users_split_name"), newInstance("b", "v2", "users_split_name"), newInstance("laggard", "v2", "users_split_name")
	all := []*rollout.Instance{a, b, laggard}
	beatAll := func(stages map[*rollout.Instance][]flags.Stage) {
		for _, in := range all {
			if s, ok := stages[in]; ok {
				beat(t, in, s...)
			}
		}
	}
	ab := func(s ...flags.Stage) map[*rollout.Instance][]flags.Stage {
		return map[*rollout.Instance][]flags.Stage{a: s, b: s}
	}
	mixed := map[*rollout.Instance][]flags.Stage{a: {flags.DualWrite}, b: {flags.DualWrite}, laggard: {flags.Off}}
	beatAll(mixed)
	clk.Add(window - time.Microsecond)
	beatAll(mixed)
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), "instance a (users-api v2) has not been seen for a whole window yet", "a microsecond short of the window")
	clk.Add(time.Microsecond)
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), "laggard (users-api v2) evaluated off")
	assert.NotContains(t, err.Error(), "instance a ", "seen for the whole window, at dualwrite")

	fleet, err := c.Fleet(ctx, "users_split_name")
	require.NoError(t, err)
	assert.True(t, fleet.Now.Equal(clk.Now()), "the fleet is read at the clock's time: %v", fleet.Now)
	require.Len(t, fleet.Instances, 3)
	assert.Equal(t, "off", fleet.Instances[2].MinStage)
	assert.True(t, fleet.Instances[2].FirstSeen.Equal(t0), "first seen at the clock's time: %v", fleet.Instances[2].FirstSeen)
	lastLaggard := fleet.Instances[2].LastSeen
	assert.True(t, lastLaggard.Equal(t0.Add(window-time.Microsecond)), "last seen at the clock's time of its last heartbeat: %v", lastLaggard)

	// The laggard goes away; it counts until its age-out has passed, to
	// the microsecond (live while seen less than ageOut ago), and no
	// longer after.
	clk.Add(window)
	beatAll(ab(flags.DualWrite))
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused, "the laggard is still live")
	assert.Contains(t, err.Error(), "laggard")
	clk.Add(lastLaggard.Add(ageOut - time.Microsecond).Sub(clk.Now()))
	beatAll(ab(flags.DualWrite))
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused, "live at the age-out's last microsecond")
	assert.Contains(t, err.Error(), "laggard")
	clk.Add(time.Microsecond)
	require.NoError(t, advance(), "the laggard aged out")
	fleet, err = c.Fleet(ctx, "users_split_name")
	require.NoError(t, err)
	assert.Len(t, fleet.Instances, 2)

	// An old build of the same service, live but unaware of the migration,
	// holds everything back.
	old := newInstance("old", "v1")
	require.NoError(t, old.Beat(ctx))
	force(5) // verify … complete
	clk.Add(window)
	beatAll(ab(flags.Complete))
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), "old (users-api v1) is live but does not know this migration")

	// Contract: one instance still at rampdown for part of the window holds it back.
	clk.Add(ageOut) // the old build ages out
	beatAll(map[*rollout.Instance][]flags.Stage{a: {flags.Complete}, b: {flags.Complete, flags.Rampdown}})
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), "b (users-api v2) evaluated rampdown 0s ago")
	assert.NotContains(t, err.Error(), "old (users-api v1)", "aged out")
	clk.Add(window - time.Microsecond)
	beatAll(ab(flags.Complete))
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused, "the rampdown call is a microsecond inside the window")
	assert.Contains(t, err.Error(), "b (users-api v2) evaluated rampdown "+(window-time.Microsecond).Round(time.Millisecond).String()+" ago")
	clk.Add(time.Microsecond)
	beatAll(ab(flags.Complete))
	require.NoError(t, advance())
	st, err := rollout.Get(ctx, db, "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, rollout.Contracted, st.Phase)
	assert.True(t, st.PhaseSince.Equal(clk.Now()), "the phase began at the clock's time: %v", st.PhaseSince)
}

// The heartbeat counts what the dualwrite adapters report.
func TestInstanceObserverFeedsHeartbeat(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testInstanceObserverFeedsHeartbeat)
}

func testInstanceObserverFeedsHeartbeat(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	ctx := t.Context()
	require.NoError(t, rollout.EnsureLedger(ctx, db))
	in, err := rollout.NewInstance(db, "svc", "v1", []string{"m"}, rollout.WithInstanceID("i1"), rollout.WithHeartbeat(20*time.Millisecond))
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

// The ledger provider: an advance is seen by another instance within the
// poll interval, with a change event; the database going away leaves the
// last stages in force and the provider stale, then ready again.
func TestLedgerProvider(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	db := open(t, url)
	ctx := t.Context()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{fleetPlan()})
	require.NoError(t, err)

	// Another instance, with its own pool, as another process would have.
	other := open(t, url)
	const poll = 50 * time.Millisecond
	p, err := rollout.NewLedgerProvider(other, poll)
	require.NoError(t, err)
	api := isolated.NewAPI()
	t.Cleanup(func() { _ = api.Shutdown(context.WithoutCancel(ctx)) })
	changes := make(chan openfeature.EventDetails, 16)
	stale := make(chan openfeature.EventDetails, 16)
	onChange := func(d openfeature.EventDetails) { changes <- d }
	onStale := func(d openfeature.EventDetails) { stale <- d }
	api.AddHandler(openfeature.ProviderConfigChange, &onChange)
	api.AddHandler(openfeature.ProviderStale, &onStale)
	require.NoError(t, api.SetProviderAndWait(ctx, p))
	ev, err := flags.NewEvaluator(api.NewClient())
	require.NoError(t, err)
	flag, err := ev.Flag("users_split_name")
	require.NoError(t, err)
	assert.Equal(t, flags.Off, flag.Stage(ctx))

	for range 2 {
		_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Force: true, Reason: "test"})
		require.NoError(t, err)
	}
	start := time.Now()
	require.Eventually(t, func() bool { return flag.Stage(ctx) == flags.DualWrite }, 2*time.Second, time.Millisecond)
	assert.Less(t, time.Since(start), 3*poll, "seen within the poll interval")
	select {
	case d := <-changes:
		assert.Contains(t, d.FlagChanges, "users_split_name")
	case <-time.After(time.Second):
		t.Fatal("no configuration change event")
	}

	// The database goes away: no connection may be made to it.
	admin := open(t, pgtest.AdminURL(t))
	var name string
	require.NoError(t, db.GetContext(ctx, &name, `SELECT current_database()`))
	admin.MustExecContext(ctx, `ALTER DATABASE `+quote(name)+` WITH ALLOW_CONNECTIONS false`)
	admin.MustExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name)
	select {
	case <-stale:
	case <-time.After(5 * time.Second):
		t.Fatal("the provider did not go stale")
	}
	assert.True(t, p.Stale())
	for range 50 {
		s, fb := flag.Evaluate(ctx)
		require.Nil(t, fb, "no fallback: the last stages stay in force")
		require.Equal(t, flags.DualWrite, s)
	}
	admin.MustExecContext(ctx, `ALTER DATABASE `+quote(name)+` WITH ALLOW_CONNECTIONS true`)
	require.Eventually(t, func() bool { return !p.Stale() }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, flags.DualWrite, flag.Stage(ctx))
	_, err = ev.Stage(ctx, "no_such_migration")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), ev.Stats().Fallbacks[flags.FlagNotFound])
}

// On SQLite the provider reads the ledger through its own pool on the same
// file, as another process on the host would.
func TestLedgerProviderOnSQLite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	other, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{fleetPlan()})
	require.NoError(t, err)
	const poll = 50 * time.Millisecond
	p, err := rollout.NewLedgerProvider(other, poll)
	require.NoError(t, err)
	api := isolated.NewAPI()
	t.Cleanup(func() { _ = api.Shutdown(context.WithoutCancel(ctx)) })
	require.NoError(t, api.SetProviderAndWait(ctx, p))
	ev, err := flags.NewEvaluator(api.NewClient())
	require.NoError(t, err)
	flag, err := ev.Flag("users_split_name")
	require.NoError(t, err)
	assert.Equal(t, flags.Off, flag.Stage(ctx))
	for range 3 {
		_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Force: true, Reason: "test"})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return flag.Stage(ctx) == flags.DualWrite }, 2*time.Second, time.Millisecond)
	assert.False(t, p.Stale())
}

func quote(s string) string { return `"` + s + `"` }

// The startup hook: ledger, plan, schema check, heartbeat, stage source.
func TestServiceStart(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testServiceStart)
}

func testServiceStart(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	usersDB(t, db)
	ctx := t.Context()
	cfg := rollout.ServiceConfig{Service: "users-api", Build: "v2", InstanceID: "api-1", Plans: []rollout.Plan{usersPlan(db)},
		Heartbeat: 20 * time.Millisecond, Poll: 20 * time.Millisecond}
	svc, err := rollout.Start(ctx, db, cfg)
	require.NoError(t, err)
	flag, err := svc.Flag("users_split_name")
	require.NoError(t, err)
	assert.Equal(t, flags.Off, flag.Stage(ctx))

	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{usersPlan(db)})
	require.NoError(t, err)
	for range 2 {
		_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Force: true, Reason: "test"})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return flag.Stage(ctx) == flags.DualWrite }, 2*time.Second, 5*time.Millisecond)

	// Calls through the adapters reach the heartbeat.
	r, err := dualwrite.NewWriter(flag, func(context.Context, int) error { return nil }, func(context.Context, int) error { return nil },
		dualwrite.WithObserver(svc.Observer()))
	require.NoError(t, err)
	require.NoError(t, r.Write(ctx, 1))
	require.Eventually(t, func() bool {
		fleet, err := c.Fleet(ctx, "users_split_name")
		return err == nil && len(fleet.Instances) == 1 && fleet.Instances[0].MaxStage == "dualwrite"
	}, 2*time.Second, 10*time.Millisecond)
	// With no clock given, the real one: the heartbeats are stamped now.
	fleet, err := c.Fleet(ctx, "users_split_name")
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), fleet.Now, time.Minute)
	assert.WithinDuration(t, fleet.Now, fleet.Instances[0].LastSeen, time.Minute)
	require.NoError(t, svc.Close())
	require.NoError(t, svc.Close())

	// A database whose schema lacks what the ledger says was expanded does
	// not fit this build.
	db.MustExecContext(ctx, `ALTER TABLE users DROP COLUMN given_name`)
	_, err = rollout.Start(ctx, db, cfg)
	require.ErrorIs(t, err, rollout.ErrSchemaMismatch)
	assert.Contains(t, err.Error(), "users_split_name is at dualwrite but lacks users.given_name")

	_, err = rollout.Start(ctx, db, rollout.ServiceConfig{})
	assert.Error(t, err)

	// The build's declared schema is checked too, every problem listed.
	db.MustExecContext(ctx, `ALTER TABLE users ADD COLUMN given_name text`)
	withSchema := cfg
	withSchema.Schema = &contract.Schema{Tables: []contract.Table{{Name: "users",
		Columns: []contract.Column{{Name: "family_name", Type: "text"}, {Name: "email", Type: "text"}}, Absent: []string{"full_name"}}}}
	_, err = rollout.Start(ctx, db, withSchema)
	require.ErrorIs(t, err, rollout.ErrSchemaMismatch)
	assert.Contains(t, err.Error(), "column users.email is missing")
	assert.Contains(t, err.Error(), "column users.full_name still exists")
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
		require.NoError(t, rollout.EnsureLedger(ctx, db))
		const rounds, calls = 20, 5
		for r := range rounds {
			id := "api-" + strconv.Itoa(r)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 2 {
				in, err := rollout.NewInstance(db, "users-api", "v2", []string{"m"}, rollout.WithInstanceID(id))
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

// A reader whose shadow reads fill its bound drops the next ones, and each
// instance's heartbeat reports its own drops, which the fleet and the board
// show per instance; a call sampled out is no drop.
func TestShadowDropsReportedPerInstance(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testShadowDropsReportedPerInstance)
}

func testShadowDropsReportedPerInstance(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	ctx := t.Context()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{fleetPlan()})
	require.NoError(t, err)
	flag, _ := flagstest.Flag(t, "users_split_name", flags.Shadow)
	release := make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	read := func(context.Context, int) (int, error) { return 1, nil }
	held := func(ctx context.Context, _ int) (int, error) {
		select { // holds its slot until released
		case <-release:
		case <-ctx.Done():
		}
		return 1, nil
	}
	want := map[string]int64{}
	var readers []*dualwrite.Reader[int, int]
	for _, tt := range []struct {
		id          string
		concurrency int
		reads       int
		sample      float64
		drops       int64
	}{
		{"api-1", 1, 6, 1, 5}, // one shadow read holds the only slot
		{"api-2", 2, 3, 1, 1}, // two hold both
		{"api-3", 1, 6, 0, 0}, // sampled out
	} {
		in, err := rollout.NewInstance(db, "users-api", "v2", []string{"users_split_name"}, rollout.WithInstanceID(tt.id))
		require.NoError(t, err)
		r, err := dualwrite.NewReader(flag, read, held, dualwrite.WithObserver(in.Observer()),
			dualwrite.WithShadowConcurrency(tt.concurrency), dualwrite.WithShadowSampleRate(tt.sample), dualwrite.WithShadowTimeout(time.Hour))
		require.NoError(t, err)
		readers = append(readers, r)
		for range tt.reads {
			_, err := r.Read(ctx, 0) // the slot is taken before Read returns: no wait is needed
			require.NoError(t, err)
		}
		in.Record("users_split_name", flags.Shadow, true)
		require.NoError(t, in.Beat(ctx))
		want[tt.id] = tt.drops
	}
	close(release)
	for _, r := range readers {
		r.Wait()
		require.NoError(t, r.Close())
	}

	fleet, err := c.Fleet(ctx, "users_split_name")
	require.NoError(t, err)
	got := map[string]int64{}
	for _, in := range fleet.Instances {
		got[in.ID] = in.ShadowDrops
	}
	assert.Equal(t, want, got)

	b, err := rollout.NewBoard(c)
	require.NoError(t, err)
	snap, err := b.Snapshot(ctx)
	require.NoError(t, err)
	require.Len(t, snap.Migrations, 1)
	shown := map[string]int64{}
	for _, in := range snap.Migrations[0].Fleet.Instances {
		shown[in.ID] = in.ShadowDrops
	}
	assert.Equal(t, got, shown, "the board shows each instance's drops")
}
