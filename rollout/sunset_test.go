package rollout_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// sunsetPlan is the ledger-only users plan with a sunset at at, warning
// warn before it.
func sunsetPlan(at time.Time, warn time.Duration) rollout.Plan {
	p := rollouttest.LedgerPlan()
	p.Sunset = rollout.Sunset{At: at, Warn: warn}
	return p
}

// A sunset is refused when it could not be judged as meant; a warning
// left zero is the default one; the date is an instant, the same in any
// zone, for the definition as for the stored plan.
func TestSunsetIsValidated(t *testing.T) {
	t.Parallel()
	at := time.Date(2032, 1, 10, 9, 30, 0, 123456000, time.UTC)
	for name, s := range map[string]rollout.Sunset{
		"warning without a date": {Warn: time.Hour},
		"negative warning":       {At: at, Warn: -time.Nanosecond},
		"year 10000":             {At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		p := sunsetPlan(time.Time{}, 0)
		p.Sunset = s
		err := p.Normalize()
		require.ErrorIs(t, err, rollout.ErrInvalidPlan, name)
		assert.Contains(t, err.Error(), "sunset", name)
	}

	none := rollouttest.LedgerPlan()
	require.NoError(t, none.Normalize())
	assert.True(t, none.Sunset.IsZero(), "no sunset: none set")
	before, err := rollout.DefinitionHash(rollouttest.LedgerPlan())
	require.NoError(t, err)
	doc, err := json.Marshal(none.Sunset)
	require.NoError(t, err)
	require.NotEmpty(t, doc)

	p := sunsetPlan(at.In(time.FixedZone("UTC+5", 5*3600)), 0)
	require.NoError(t, p.Normalize())
	assert.Equal(t, rollout.DefaultSunsetWarn, p.Sunset.Warn, "a warning left zero is the default")
	assert.Equal(t, time.UTC, p.Sunset.At.Location(), "kept in UTC")
	assert.True(t, p.Sunset.At.Equal(at))

	inUTC, err := rollout.DefinitionHash(sunsetPlan(at, rollout.DefaultSunsetWarn))
	require.NoError(t, err)
	elsewhere, err := rollout.DefinitionHash(sunsetPlan(at.In(time.FixedZone("x", -7*3600-1800)), rollout.DefaultSunsetWarn))
	require.NoError(t, err)
	assert.Equal(t, inUTC, elsewhere, "the same instant in another zone is the same definition")
	assert.NotEqual(t, before, inUTC, "a sunset changes the definition")
	later, err := rollout.DefinitionHash(sunsetPlan(at.Add(time.Microsecond), rollout.DefaultSunsetWarn))
	require.NoError(t, err)
	assert.NotEqual(t, inUTC, later, "a microsecond later is another date")

	var back rollout.Sunset
	b, err := json.Marshal(rollout.Sunset{At: at.In(time.FixedZone("x", 3600)), Warn: time.Hour})
	require.NoError(t, err)
	assert.Contains(t, string(b), `"2032-01-10T09:30:00.123456Z"`)
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, rollout.Sunset{At: at, Warn: time.Hour}, back)
	require.Error(t, json.Unmarshal([]byte(`{"at":"tomorrow","warn":0}`), &back))
}

// The deadline moves with the coordinator's clock: none without a
// sunset; ok with the time left before the warning; warning inside it;
// overdue from the date on, the time left negative; done once
// contracted. A coordinator opened from the stored plan judges alike.
func TestDeadlineStates(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clock := rollouttest.NewClock()
		t0 := clock.Now()
		at := t0.Add(10 * 24 * time.Hour)

		other := rollouttest.LedgerPlan()
		other.Migration = "orders_move_amount"
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{sunsetPlan(at, 3*24*time.Hour), other}, rollout.WithClock(clock.Now))
		require.NoError(t, err)
		opened, err := rollout.OpenReadOnly(ctx, db, rollout.WithClock(clock.Now))
		require.NoError(t, err)

		d, err := c.Deadline(ctx, "orders_move_amount")
		require.NoError(t, err)
		assert.Equal(t, rollout.DeadlineNone, d.State)
		assert.True(t, d.At.IsZero())
		assert.Zero(t, d.Left)

		for _, step := range []struct {
			move  time.Duration
			state rollout.DeadlineStatus
			left  time.Duration
		}{
			{0, rollout.DeadlineOK, 10 * 24 * time.Hour},
			{7*24*time.Hour - time.Microsecond, rollout.DeadlineOK, 3*24*time.Hour + time.Microsecond},
			{time.Microsecond, rollout.DeadlineWarning, 3 * 24 * time.Hour},
			{3*24*time.Hour - time.Microsecond, rollout.DeadlineWarning, time.Microsecond},
			{time.Microsecond, rollout.DeadlineOverdue, 0},
			{time.Hour, rollout.DeadlineOverdue, -time.Hour},
		} {
			now := clock.Add(step.move)
			for _, co := range []*rollout.Coordinator{c, opened} {
				d, err := co.Deadline(ctx, "users_split_name")
				require.NoError(t, err)
				assert.Equal(t, step.state, d.State, "at %v", now)
				assert.Equal(t, step.left, d.Left, "at %v", now)
				assert.Equal(t, now, d.Now)
				assert.True(t, d.At.Equal(at))
				assert.Equal(t, 3*24*time.Hour, d.Warn)
				assert.Empty(t, d.LateCallers, "no instance at all")
			}
		}

		rollouttest.Forced(t, c, "users_split_name", int(ledger.Complete))
		_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Force: true, Confirm: true, Reason: "setup"})
		require.NoError(t, err)
		d, err = c.Deadline(ctx, "users_split_name")
		require.NoError(t, err)
		assert.Equal(t, rollout.DeadlineDone, d.State, "contracted: the old path is gone")

		_, err = c.Deadline(ctx, "no_such_migration")
		require.Error(t, err)
	})
}

// Once overdue, the live instances whose heartbeats reported old-path
// calls after the date are named, by id, service and build: not one whose
// calls all came before it (and that has stopped calling the old path
// since), not one whose last call was reported at the date itself, not
// one no longer live.
func TestDeadlineNamesLateCallers(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clock := rollouttest.NewClock()
		at := clock.Now().Add(time.Hour)
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{sunsetPlan(at, time.Hour)}, rollout.WithClock(clock.Now))
		require.NoError(t, err)
		const m = "users_split_name"
		instance := func(id, service, build string) *fleet.Instance {
			in, err := fleet.NewInstance(db, service, build, []string{m}, fleet.WithID(id), fleet.WithClock(clock.Now))
			require.NoError(t, err)
			return in
		}
		hostile := "</li><script>alert(1)</script>\n\"x\"/../"
		early := instance("early", "users-api", "v1")
		edge := instance("edge", "users-api", "v1")
		late := instance(hostile, "billing<b>", "v0.9\n<i>")
		late2 := instance("late-2", "users-api", "v1.1")
		gone := instance("gone", "users-api", "v0")

		rollouttest.Beat(t, early, flags.DualWrite) // calls before the date
		clock.Add(time.Hour)                        // the date
		rollouttest.Beat(t, edge, flags.DualWrite)  // reported at the date: made before it
		clock.Add(time.Second)
		rollouttest.Beat(t, gone, flags.DualWrite) // after the date, then it stops beating
		clock.Add(2 * time.Minute)                 // gone ages out (1m)
		rollouttest.Beat(t, early, flags.Complete) // live, no old-path call since before the date
		rollouttest.Beat(t, edge, flags.Complete)
		rollouttest.Beat(t, late, flags.Shadow)
		rollouttest.Beat(t, late2, flags.Live, flags.Complete)
		clock.Add(time.Second)

		d, err := c.Deadline(ctx, m)
		require.NoError(t, err)
		require.Equal(t, rollout.DeadlineOverdue, d.State)
		require.Len(t, d.LateCallers, 2, "%+v", d.LateCallers)
		assert.Equal(t, rollout.LateCaller{ID: hostile, Service: "billing<b>", Build: "v0.9\n<i>", LastOldCall: at.Add(time.Second + 2*time.Minute), OldCalls: 1}, d.LateCallers[0])
		assert.Equal(t, "late-2", d.LateCallers[1].ID)
		assert.Equal(t, "v1.1", d.LateCallers[1].Build)
		for _, l := range d.LateCallers {
			assert.NotContains(t, []string{"early", "edge", "gone"}, l.ID)
		}

		// One that keeps beating without old-path calls stays named: its
		// call after the date was made.
		clock.Add(10 * time.Second)
		rollouttest.Beat(t, late2, flags.Complete)
		d, err = c.Deadline(ctx, m)
		require.NoError(t, err)
		assert.Len(t, d.LateCallers, 2)
	})
}

// The first coordinator to see a migration overdue with late callers
// records it in the audit trail, once: not while it is overdue with no
// late caller, not by a read-only coordinator, not again on any of many
// polls by two coordinators racing each other. The event names the
// instance and its build, quoted.
func TestDeadlineAuditedOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clock := rollouttest.NewClock()
		at := clock.Now().Add(time.Minute)
		const m = "users_split_name"
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{sunsetPlan(at, time.Hour)}, rollout.WithClock(clock.Now))
		require.NoError(t, err)
		second, err := rollout.Open(ctx, db, rollout.WithClock(clock.Now))
		require.NoError(t, err)
		readOnly, err := rollout.OpenReadOnly(ctx, db, rollout.WithClock(clock.Now))
		require.NoError(t, err)
		events := func() []ledger.Event {
			all, err := ledger.Audit(ctx, db, m, 1000)
			require.NoError(t, err)
			var out []ledger.Event
			for _, e := range all {
				if e.Kind == "sunset-overdue" {
					out = append(out, e)
				}
			}
			return out
		}

		clock.Add(2 * time.Minute)
		d, err := c.Deadline(ctx, m)
		require.NoError(t, err)
		require.Equal(t, rollout.DeadlineOverdue, d.State)
		assert.Empty(t, events(), "overdue, but no one calls the old path")

		in, err := fleet.NewInstance(db, "users-api", "v2\n<b>", []string{m}, fleet.WithID("pod\"7\n"), fleet.WithClock(clock.Now))
		require.NoError(t, err)
		rollouttest.Beat(t, in, flags.DualWrite)
		for range 5 {
			d, err := readOnly.Deadline(ctx, m)
			require.NoError(t, err)
			require.Len(t, d.LateCallers, 1, "a read-only coordinator reports them")
		}
		assert.Empty(t, events(), "a read-only coordinator records nothing")

		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for _, co := range []*rollout.Coordinator{c, second} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					d, err := co.Deadline(ctx, m)
					if err == nil && len(d.LateCallers) != 1 {
						err = assert.AnError
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		got := events()
		require.Len(t, got, 1, "recorded once over 100 polls of two coordinators")
		e := got[0]
		assert.Equal(t, "sunset", e.Actor)
		assert.Equal(t, clock.Now(), e.At.UTC())
		assert.Contains(t, e.Reason, `instance "pod\"7\n" (service "users-api", build "v2\n<b>")`)
		assert.Contains(t, e.Reason, at.Format(time.RFC3339Nano))
		assert.False(t, strings.Contains(e.Reason, "\n"), "names are quoted: %q", e.Reason)

		clock.Add(time.Hour)
		rollouttest.Beat(t, in, flags.DualWrite)
		_, err = c.Deadline(ctx, m)
		require.NoError(t, err)
		assert.Len(t, events(), 1, "still once, later")
	})
}
