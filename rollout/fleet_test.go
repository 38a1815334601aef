package rollout_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

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
	const ageOut = 2 * rollouttest.Window
	clk := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.LedgerPlan()}, rollout.WithAgeOut(ageOut), rollout.WithClock(clk.Now))
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
	newInstance := func(id, build string, migrations ...string) *fleet.Instance {
		in, err := fleet.NewInstance(db, "users-api", build, migrations, fleet.WithID(id), fleet.WithClock(clk.Now))
		require.NoError(t, err)
		return in
	}
	a, b, laggard := newInstance("a", "v2", "users_split_name"), newInstance("b", "v2", "users_split_name"), newInstance("laggard", "v2", "users_split_name")
	all := []*fleet.Instance{a, b, laggard}
	beatAll := func(stages map[*fleet.Instance][]flags.Stage) {
		for _, in := range all {
			if s, ok := stages[in]; ok {
				rollouttest.Beat(t, in, s...)
			}
		}
	}
	ab := func(s ...flags.Stage) map[*fleet.Instance][]flags.Stage {
		return map[*fleet.Instance][]flags.Stage{a: s, b: s}
	}
	mixed := map[*fleet.Instance][]flags.Stage{a: {flags.DualWrite}, b: {flags.DualWrite}, laggard: {flags.Off}}
	beatAll(mixed)
	clk.Add(rollouttest.Window - time.Microsecond)
	beatAll(mixed)
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), "instance a (users-api v2) has not been seen for a whole window yet", "a microsecond short of the window")
	clk.Add(time.Microsecond)
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), "laggard (users-api v2) evaluated off")
	assert.NotContains(t, err.Error(), "instance a ", "seen for the whole window, at dualwrite")

	live, err := c.Fleet(ctx, "users_split_name")
	require.NoError(t, err)
	assert.True(t, live.Now.Equal(clk.Now()), "the fleet is read at the clock's time: %v", live.Now)
	require.Len(t, live.Instances, 3)
	assert.Equal(t, "off", live.Instances[2].MinStage)
	assert.True(t, live.Instances[2].FirstSeen.Equal(rollouttest.T0), "first seen at the clock's time: %v", live.Instances[2].FirstSeen)
	lastLaggard := live.Instances[2].LastSeen
	assert.True(t, lastLaggard.Equal(rollouttest.T0.Add(rollouttest.Window-time.Microsecond)), "last seen at the clock's time of its last heartbeat: %v", lastLaggard)

	// The laggard goes away; it counts until its age-out has passed, to
	// the microsecond (live while seen less than ageOut ago), and no
	// longer after.
	clk.Add(rollouttest.Window)
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
	live, err = c.Fleet(ctx, "users_split_name")
	require.NoError(t, err)
	assert.Len(t, live.Instances, 2)

	// An old build of the same service, live but unaware of the migration,
	// holds everything back.
	old := newInstance("old", "v1")
	require.NoError(t, old.Beat(ctx))
	force(5) // verify … complete
	clk.Add(rollouttest.Window)
	beatAll(ab(flags.Complete))
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), "old (users-api v1) is live but does not know this migration")

	// Contract: one instance still at rampdown for part of the window holds it back.
	clk.Add(ageOut) // the old build ages out
	beatAll(map[*fleet.Instance][]flags.Stage{a: {flags.Complete}, b: {flags.Complete, flags.Rampdown}})
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), "b (users-api v2) evaluated rampdown 0s ago")
	assert.NotContains(t, err.Error(), "old (users-api v1)", "aged out")
	clk.Add(rollouttest.Window - time.Microsecond)
	beatAll(ab(flags.Complete))
	err = advance()
	require.ErrorIs(t, err, rollout.ErrGateRefused, "the rampdown call is a microsecond inside the window")
	assert.Contains(t, err.Error(), "b (users-api v2) evaluated rampdown "+(rollouttest.Window-time.Microsecond).Round(time.Millisecond).String()+" ago")
	clk.Add(time.Microsecond)
	beatAll(ab(flags.Complete))
	require.NoError(t, advance())
	st, err := ledger.Get(ctx, db, "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, ledger.Contracted, st.Phase)
	assert.True(t, st.PhaseSince.Equal(clk.Now()), "the phase began at the clock's time: %v", st.PhaseSince)
}

// The startup hook: ledger, plan, schema check, heartbeat, stage source.
func TestServiceStart(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testServiceStart)
}

func testServiceStart(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	cfg := rollout.ServiceConfig{Service: "users-api", Build: "v2", InstanceID: "api-1", Plans: []rollout.Plan{rollouttest.UsersPlan(db)},
		Heartbeat: 20 * time.Millisecond, Poll: 20 * time.Millisecond}
	svc, err := rollout.Start(ctx, db, cfg)
	require.NoError(t, err)
	flag, err := svc.Flag("users_split_name")
	require.NoError(t, err)
	assert.Equal(t, flags.Off, flag.Stage(ctx))

	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.UsersPlan(db)})
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
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.LedgerPlan()})
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
		in, err := fleet.NewInstance(db, "users-api", "v2", []string{"users_split_name"}, fleet.WithID(tt.id))
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

	b, err := board.New(c)
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
