package rollout_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// collector keeps every notice it is told of.
type collector struct {
	mu sync.Mutex
	ns []rollout.Notice
}

func (c *collector) Notify(_ context.Context, n rollout.Notice) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ns = append(c.ns, n)
}

// of returns the notices of kind, flushed from cs' coordinators first.
func of(t *testing.T, kind rollout.NoticeKind, cs map[*rollout.Coordinator]*collector) []rollout.Notice {
	t.Helper()
	var out []rollout.Notice
	for c, col := range cs {
		require.NoError(t, c.FlushNotices(t.Context()))
		col.mu.Lock()
		for _, n := range col.ns {
			if n.Kind == kind {
				out = append(out, n)
			}
		}
		col.mu.Unlock()
	}
	return out
}

func scheduleCoordinator(t *testing.T, db *sqlx.DB, clock *rollouttest.Clock) (*rollout.Coordinator, *collector) {
	t.Helper()
	col := &collector{}
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{noticePlan()}, rollout.WithClock(clock.Now), rollout.WithNotifier(col))
	require.NoError(t, err)
	return c, col
}

func kinds(events []ledger.Event, kind string) []ledger.Event {
	var out []ledger.Event
	for _, e := range events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// A schedule is announced at once, does nothing before its time, and at
// its time advances once although two coordinators race to run it: one
// advance in the audit trail, one "schedule-ran" notice between them, and
// a later run does nothing.
func TestScheduleRunsAtItsTimeOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clock := rollouttest.NewClock()
		c1, col1 := scheduleCoordinator(t, db, clock)
		c2, col2 := scheduleCoordinator(t, db, clock)
		both := map[*rollout.Coordinator]*collector{c1: col1, c2: col2}
		m := noticePlan().Migration
		due := clock.Now().Add(14 * time.Hour)
		s, err := c1.Schedule(ctx, rollout.Request{Migration: m, Actor: "alice", Reason: "after the freeze\n<b>"}, due)
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, s.To)
		assert.Equal(t, rollout.SchedulePending, s.State)
		scheduled := of(t, rollout.NoticeScheduled, both)
		require.Len(t, scheduled, 1, "announced ahead of time")
		assert.Equal(t, s.ID, scheduled[0].Schedule)
		assert.True(t, due.Truncate(time.Microsecond).Equal(scheduled[0].Due))

		clock.Add(14*time.Hour - time.Microsecond)
		ran, err := c2.RunDueSchedules(ctx)
		require.NoError(t, err)
		assert.Empty(t, ran, "not before its time")

		clock.Add(time.Microsecond)
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, c := range []*rollout.Coordinator{c1, c2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = c.RunDueSchedules(ctx)
			}()
		}
		close(start)
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		st, err := ledger.Get(ctx, db, m)
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, st.Phase, "advanced once")
		got, err := c1.ReadSchedule(ctx, s.ID)
		require.NoError(t, err)
		assert.Equal(t, rollout.ScheduleRan, got.State)
		assert.Contains(t, got.Outcome, "advanced to expanded")
		assert.Len(t, of(t, rollout.NoticeScheduleRan, both), 1)
		assert.Len(t, of(t, rollout.NoticeGateMet, both), 1)

		clock.Add(time.Hour)
		again, err := c2.RunDueSchedules(ctx)
		require.NoError(t, err)
		assert.Empty(t, again)
		events, err := ledger.Audit(ctx, db, m, 100)
		require.NoError(t, err)
		advances := kinds(events, "advance")
		require.Len(t, advances, 1)
		assert.Equal(t, "alice", advances[0].Actor)
		assert.Contains(t, advances[0].Reason, "schedule "+s.ID+": after the freeze")
		assert.Len(t, kinds(events, "schedule"), 1)
		assert.Len(t, kinds(events, "schedule-ran"), 1)
	})
}

// A cancelled schedule never runs, and cannot be cancelled twice; the
// cancel is the canceller's, in the audit trail and noticed.
func TestCancelledScheduleNeverRuns(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clock := rollouttest.NewClock()
		c, col := scheduleCoordinator(t, db, clock)
		m := noticePlan().Migration
		s, err := c.Schedule(ctx, rollout.Request{Migration: m, Actor: "alice", Reason: "r"}, clock.Now().Add(time.Minute))
		require.NoError(t, err)
		_, err = c.CancelSchedule(ctx, s.ID, "", "no one")
		require.ErrorIs(t, err, rollout.ErrInvalidArgument)
		_, err = c.CancelSchedule(ctx, s.ID, "bob", " ")
		require.ErrorIs(t, err, rollout.ErrReasonRequired)
		got, err := c.CancelSchedule(ctx, s.ID, "bob", "the freeze goes on")
		require.NoError(t, err)
		assert.Equal(t, rollout.ScheduleCancelled, got.State)
		_, err = c.CancelSchedule(ctx, s.ID, "bob", "again")
		require.ErrorIs(t, err, rollout.ErrScheduleOver)
		_, err = c.CancelSchedule(ctx, "no such id", "bob", "x")
		require.ErrorIs(t, err, rollout.ErrUnknownSchedule)

		clock.Add(time.Hour)
		ran, err := c.RunDueSchedules(ctx)
		require.NoError(t, err)
		assert.Empty(t, ran)
		st, err := ledger.Get(ctx, db, m)
		require.NoError(t, err)
		assert.Equal(t, ledger.Planned, st.Phase, "never ran")
		cancelled := of(t, rollout.NoticeScheduleCancelled, map[*rollout.Coordinator]*collector{c: col})
		require.Len(t, cancelled, 1)
		assert.Equal(t, "bob", cancelled[0].Actor)
		events, err := ledger.Audit(ctx, db, m, 100)
		require.NoError(t, err)
		cancels := kinds(events, "schedule-cancel")
		require.Len(t, cancels, 1)
		assert.Equal(t, "bob", cancels[0].Actor)
		assert.Contains(t, cancels[0].Reason, "the freeze goes on")
	})
}

// At its time with its gate unmet, a schedule waits: why is recorded and
// noticed once per reason, not at every run; past its deadline it is
// cancelled, saying why.
func TestScheduleWaitsForItsGateUntilItsDeadline(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clock := rollouttest.NewClock()
		c, col := scheduleCoordinator(t, db, clock)
		m := noticePlan().Migration
		for range 2 {
			_, err := c.Advance(ctx, rollout.Request{Migration: m, Actor: "a"})
			require.NoError(t, err)
		}
		at := clock.Now().Add(time.Minute)
		s, err := c.ScheduleUntil(ctx, rollout.Request{Migration: m, Actor: "alice", Reason: "r"}, at, at.Add(time.Hour))
		require.NoError(t, err)
		assert.Equal(t, ledger.Backfill, s.To)
		clock.Add(time.Minute)
		for range 2 {
			ran, err := c.RunDueSchedules(ctx)
			require.NoError(t, err)
			require.Len(t, ran, 1)
			assert.Equal(t, rollout.SchedulePending, ran[0].State)
			assert.Contains(t, ran[0].Outcome, `gate "fleet at dualwrite" unmet`)
		}
		cs := map[*rollout.Coordinator]*collector{c: col}
		var waits []rollout.Notice
		for _, n := range of(t, rollout.NoticeRefused, cs) {
			if n.Schedule == s.ID {
				waits = append(waits, n)
			}
		}
		require.Len(t, waits, 1, "noticed once while the reason stays")
		assert.Equal(t, "fleet at dualwrite", waits[0].Gate)

		clock.Add(time.Hour + time.Microsecond)
		ran, err := c.RunDueSchedules(ctx)
		require.NoError(t, err)
		require.Len(t, ran, 1)
		assert.Equal(t, rollout.ScheduleCancelled, ran[0].State)
		assert.Contains(t, ran[0].Outcome, "still unmet")
		assert.Len(t, of(t, rollout.NoticeScheduleCancelled, cs), 1)
		st, err := ledger.Get(ctx, db, m)
		require.NoError(t, err)
		assert.Equal(t, ledger.DualWrite, st.Phase)
		events, err := ledger.Audit(ctx, db, m, 100)
		require.NoError(t, err)
		assert.Len(t, kinds(events, "schedule-wait"), 1)
	})
}

// A schedule is of the version it was scheduled at: the migration moved
// by hand since, it is cancelled, not run from where the migration is.
func TestScheduleOfAMovedMigrationIsCancelled(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clock := rollouttest.NewClock()
		c, _ := scheduleCoordinator(t, db, clock)
		m := noticePlan().Migration
		s, err := c.Schedule(ctx, rollout.Request{Migration: m, Actor: "alice", Reason: "r"}, clock.Now().Add(time.Minute))
		require.NoError(t, err)
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "bob", Reason: "by hand"})
		require.NoError(t, err)
		clock.Add(time.Minute)
		ran, err := c.RunDueSchedules(ctx)
		require.NoError(t, err)
		require.Len(t, ran, 1)
		assert.Equal(t, rollout.ScheduleCancelled, ran[0].State)
		assert.Contains(t, ran[0].Outcome, "moved since it was scheduled")
		st, err := ledger.Get(ctx, db, m)
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, st.Phase, "not advanced again")
		list, err := c.Schedules(ctx, m, 10)
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, s.ID, list[0].ID)
	})
}

// What cannot be scheduled is refused, and the refusal is in the audit
// trail.
func TestScheduleRefuses(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clock := rollouttest.NewClock()
		c, _ := scheduleCoordinator(t, db, clock)
		m := noticePlan().Migration
		soon := clock.Now().Add(time.Minute)
		for name, tc := range map[string]struct {
			r    rollout.Request
			at   time.Time
			want error
		}{
			"no actor":      {rollout.Request{Migration: m, Reason: "r"}, soon, rollout.ErrInvalidArgument},
			"newline actor": {rollout.Request{Migration: m, Actor: "a\nb", Reason: "r"}, soon, rollout.ErrInvalidArgument},
			"no reason":     {rollout.Request{Migration: m, Actor: "a"}, soon, rollout.ErrReasonRequired},
			"forced":        {rollout.Request{Migration: m, Actor: "a", Reason: "r", Force: true}, soon, rollout.ErrInvalidArgument},
			"stale version": {rollout.Request{Migration: m, Actor: "a", Reason: "r", Version: 99}, soon, rollout.ErrConflict},
			"in the past":   {rollout.Request{Migration: m, Actor: "a", Reason: "r"}, clock.Now().Add(-time.Second), rollout.ErrInvalidArgument},
		} {
			_, err := c.Schedule(ctx, tc.r, tc.at)
			assert.ErrorIs(t, err, tc.want, name)
		}
		_, err := c.ScheduleUntil(ctx, rollout.Request{Migration: m, Actor: "a", Reason: "r"}, soon, soon)
		assert.ErrorIs(t, err, rollout.ErrInvalidArgument, "until not after at")
		_, err = c.Schedule(ctx, rollout.Request{Migration: "nope", Actor: "a", Reason: "r"}, soon)
		assert.ErrorIs(t, err, ledger.ErrUnknownMigration)
		events, err := ledger.Audit(ctx, db, m, 100)
		require.NoError(t, err)
		refused := kinds(events, "schedule")
		assert.Len(t, refused, 7)
		for _, e := range refused {
			assert.False(t, e.Accepted)
		}
		list, err := c.Schedules(ctx, m, 10)
		require.NoError(t, err)
		assert.Empty(t, list)
	})
}
