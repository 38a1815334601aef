package rollout_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

type noticeList struct {
	mu sync.Mutex
	ns []rollout.Notice
}

func (l *noticeList) Notify(_ context.Context, n rollout.Notice) {
	l.mu.Lock()
	l.ns = append(l.ns, n)
	l.mu.Unlock()
}

func (l *noticeList) kinds(k rollout.NoticeKind) []rollout.Notice {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []rollout.Notice
	for _, n := range l.ns {
		if n.Kind == k {
			out = append(out, n)
		}
	}
	return out
}

// A sunset near, then passed with an old-path caller left, is told to
// the notifier once each however often the deadline is judged (the
// board polls it), with an ID another coordinator tells alike.
func TestDeadlineNotices(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clock := rollouttest.NewClock()
		at := clock.Now().Add(2 * time.Hour)
		const m = "users_split_name"
		one, two := &noticeList{}, &noticeList{}
		c1, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{sunsetPlan(at, time.Hour)}, rollout.WithClock(clock.Now), rollout.WithNotifier(one))
		require.NoError(t, err)
		c2, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{sunsetPlan(at, time.Hour)}, rollout.WithClock(clock.Now), rollout.WithNotifier(two))
		require.NoError(t, err)
		judge := func(c *rollout.Coordinator) {
			for range 5 {
				_, err := c.Deadline(ctx, m)
				require.NoError(t, err)
			}
			require.NoError(t, c.FlushNotices(ctx))
		}
		judge(c1)
		assert.Empty(t, one.kinds(rollout.NoticeDeadlineNear), "two hours off, warning from one")

		clock.Add(90 * time.Minute)
		judge(c1)
		judge(c2)
		near := one.kinds(rollout.NoticeDeadlineNear)
		require.Len(t, near, 1)
		require.Len(t, two.kinds(rollout.NoticeDeadlineNear), 1)
		assert.Equal(t, near[0].ID, two.kinds(rollout.NoticeDeadlineNear)[0].ID, "one happening, one ID")
		assert.Contains(t, near[0].Reason, "should be gone in 30m0s")

		in, err := fleet.NewInstance(db, "users-api", "v1", []string{m}, fleet.WithID("late-1"), fleet.WithClock(clock.Now))
		require.NoError(t, err)
		clock.Add(time.Hour)
		in.Observer().ObserveCall(ctx, dualwrite.Call{Migration: m, Origin: dualwrite.Old, Duration: time.Millisecond})
		require.NoError(t, in.Beat(ctx))
		judge(c1)
		passed := one.kinds(rollout.NoticeDeadlinePassed)
		require.Len(t, passed, 1)
		assert.Contains(t, passed[0].Reason, "late-1")
		assert.Len(t, one.kinds(rollout.NoticeDeadlineNear), 1, "near told once")
	})
}
