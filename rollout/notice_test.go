package rollout_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// noticePlan has no DDL and no gate before backfill (whose gate, with no
// fleet, is unmet). Its name is hostile.
func noticePlan() rollout.Plan { return rollout.Plan{Migration: "notice/<b>\"x\"\nnext"} }

// observer hands each notice to a channel, with the ledger's version of
// the migration as it read it when told: what was committed by then.
type observer struct {
	db   *sqlx.DB
	seen chan observed
}

type observed struct {
	n       rollout.Notice
	version int64
}

func (o observer) Notify(ctx context.Context, n rollout.Notice) {
	st, err := ledger.Get(ctx, o.db, n.Migration)
	if err != nil {
		st.Version = -1
	}
	o.seen <- observed{n, st.Version}
}

// Every transition and every refusal is noticed, in order, each once the
// ledger has committed it (the observer reads it there), with the
// phases, actor and reason of the audit trail's event and an id of its
// own; a refusal says which gate.
func TestNoticesFollowTheCommitInOrder(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		o := observer{db: db, seen: make(chan observed, 16)}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{noticePlan()}, rollout.WithNotifier(o))
		require.NoError(t, err)
		m := noticePlan().Migration
		for range 2 {
			_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "alice\n<i>", Reason: "go </b>"})
			require.NoError(t, err)
		}
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "bob"})
		require.ErrorIs(t, err, rollout.ErrGateRefused)
		require.NoError(t, c.FlushNotices(ctx))
		close(o.seen)
		var got []observed
		for s := range o.seen {
			got = append(got, s)
		}
		require.Len(t, got, 3)
		ids := map[string]bool{}
		for i, want := range []struct {
			kind     rollout.NoticeKind
			from, to ledger.Phase
			version  int64
		}{{rollout.NoticeTransition, ledger.Planned, ledger.Expanded, 2}, {rollout.NoticeTransition, ledger.Expanded, ledger.DualWrite, 3},
			{rollout.NoticeRefused, ledger.DualWrite, ledger.Backfill, 3}} {
			n := got[i].n
			assert.Equal(t, want.kind, n.Kind, "notice %d", i)
			assert.Equal(t, m, n.Migration)
			assert.Equal(t, want.from, n.From, "notice %d", i)
			assert.Equal(t, want.to, n.To, "notice %d", i)
			assert.Equal(t, want.version, n.Version, "notice %d", i)
			assert.GreaterOrEqual(t, got[i].version, n.Version, "notice %d came before its commit", i)
			assert.False(t, n.At.IsZero())
			assert.NotEmpty(t, n.ID)
			assert.False(t, ids[n.ID], "ids are distinct")
			ids[n.ID] = true
		}
		assert.Equal(t, "alice\n<i>", got[0].n.Actor)
		assert.Equal(t, "go </b>", got[0].n.Reason)
		assert.Equal(t, "bob", got[2].n.Actor)
		assert.Equal(t, "fleet at dualwrite", got[2].n.Gate)
		assert.Contains(t, got[2].n.Reason, "no live instance")
		events, err := ledger.Audit(ctx, db, m, 10)
		require.NoError(t, err)
		assert.Equal(t, events[len(events)-1].Reason, got[2].n.Reason, "the notice says what the audit trail says")
	})
}

// blocker blocks each Notify until the test lets it go, telling the test
// when it is blocked.
type blocker struct {
	entered chan rollout.Notice
	release chan struct{}
}

func (b blocker) Notify(_ context.Context, n rollout.Notice) {
	b.entered <- n
	<-b.release
}

// An observer that blocks holds no transition: advances go on while it
// is stuck in the first notice, the notices past the queue's bound are
// dropped and counted, and once it is let go the queued ones arrive in
// order.
func TestBlockingObserverDoesNotHoldAnAdvance(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		b := blocker{entered: make(chan rollout.Notice, 8), release: make(chan struct{})}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{noticePlan()}, rollout.WithNotifier(b), rollout.WithNoticeQueue(1))
		require.NoError(t, err)
		m := noticePlan().Migration
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "a"})
		require.NoError(t, err)
		first := <-b.entered // the observer holds it, blocked
		assert.Equal(t, ledger.Expanded, first.To)
		st, err := c.Advance(ctx, rollout.Request{Migration: m, Actor: "a"})
		require.NoError(t, err, "the blocked observer does not hold the advance")
		assert.Equal(t, ledger.DualWrite, st.Phase)
		_, err = c.Rollback(ctx, rollout.Request{Migration: m, Actor: "a", Reason: "back"})
		require.NoError(t, err, "nor a rollback, whose notice finds the queue full")
		dropped, _ := c.DroppedNotices()
		assert.Equal(t, int64(1), dropped)
		close(b.release)
		second := <-b.entered
		assert.Equal(t, ledger.DualWrite, second.To, "the queued notice follows, the dropped one does not")
		require.NoError(t, c.FlushNotices(ctx))
		assert.Empty(t, b.entered)
	})
}

// panicker panics on its first notice, and hands the others on.
type panicker struct{ seen chan rollout.Notice }

func (p panicker) Notify(_ context.Context, n rollout.Notice) {
	if n.To == ledger.Expanded {
		panic("observer bug")
	}
	p.seen <- n
}

// An observer that panics breaks no transition and no later notice: the
// panic is counted.
func TestPanickingObserverBreaksNothing(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	ctx := t.Context()
	p := panicker{seen: make(chan rollout.Notice, 4)}
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{noticePlan()}, rollout.WithNotifier(p))
	require.NoError(t, err)
	for range 2 {
		_, err = c.Advance(ctx, rollout.Request{Migration: noticePlan().Migration, Actor: "a"})
		require.NoError(t, err)
	}
	require.NoError(t, c.FlushNotices(ctx))
	n := <-p.seen
	assert.Equal(t, ledger.DualWrite, n.To)
	_, panicked := c.DroppedNotices()
	assert.Equal(t, int64(1), panicked)
}

// The options refuse what they cannot work with.
func TestNotifierOptions(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	ctx := t.Context()
	p := panicker{}
	for name, opts := range map[string][]rollout.CoordinatorOption{
		"nil notifier":       {rollout.WithNotifier(nil)},
		"two notifiers":      {rollout.WithNotifier(p), rollout.WithNotifier(p)},
		"queue first":        {rollout.WithNoticeQueue(4), rollout.WithNotifier(p)},
		"queue not positive": {rollout.WithNotifier(p), rollout.WithNoticeQueue(0)},
	} {
		_, err := rollout.NewCoordinator(ctx, db, nil, opts...)
		assert.ErrorIs(t, err, rollout.ErrInvalidArgument, name)
	}
	c, err := rollout.NewCoordinator(ctx, db, nil)
	require.NoError(t, err)
	assert.ErrorIs(t, c.FlushNotices(ctx), rollout.ErrNoNotifier)
}
