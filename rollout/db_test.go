package rollout_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// A service and a coordinator on a plain *sql.DB work end to end, on both
// databases: the service registers and beats, the coordinator advances
// through the expand's DDL, the fleet gate and the backfill, the ledger's
// provider serves the stage, and Open and Register take the same pool.
func TestPlainSQLDB(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, x *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		rollouttest.UsersDB(t, x)
		db, plan, clock := x.DB, rollouttest.UsersPlan(x), rollouttest.NewClock()
		svc, err := rollout.Start(ctx, db, rollout.ServiceConfig{Service: "users-api", Build: "v2", InstanceID: "i1",
			Plans: []rollout.Plan{plan}, Heartbeat: time.Hour, Poll: 10 * time.Millisecond, Clock: clock.Now})
		require.NoError(t, err, "Start takes a *sql.DB")
		t.Cleanup(func() { _ = svc.Close() })
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan}, rollout.WithClock(clock.Now))
		require.NoError(t, err, "NewCoordinator takes a *sql.DB")
		flag, err := svc.Flag(plan.Migration)
		require.NoError(t, err)

		advance := func(want ledger.Phase) {
			t.Helper()
			st, err := c.Advance(ctx, rollout.Request{Migration: plan.Migration, Actor: "t"})
			require.NoError(t, err)
			require.Equal(t, want, st.Phase)
		}
		advance(ledger.Expanded)
		advance(ledger.DualWrite)
		require.Eventually(t, func() bool { return flag.Stage(ctx) == flags.DualWrite }, 5*time.Second, time.Millisecond,
			"the provider on the *sql.DB serves the stage")
		rollouttest.Beat(t, svc.Instance, flags.DualWrite)
		clock.Add(rollouttest.Window + time.Second)
		rollouttest.Beat(t, svc.Instance, flags.DualWrite)
		f, err := c.Fleet(ctx, plan.Migration)
		require.NoError(t, err)
		require.Len(t, f.Instances, 1)
		assert.Equal(t, "i1", f.Instances[0].ID, "the heartbeat on the *sql.DB is seen")
		advance(ledger.Backfill)
		require.NoError(t, c.RunBackfills(ctx, plan.Migration))
		advance(ledger.Verify)

		opened, err := rollout.Open(ctx, db)
		require.NoError(t, err, "Open takes a *sql.DB")
		assert.Equal(t, []string{plan.Migration}, opened.Migrations())
		require.NoError(t, rollout.Register(ctx, db, plan), "Register takes a *sql.DB")
	})
}

// A pool of no supported database is refused by every way in, with
// ErrInvalidArgument and the dialects' ErrUnknownDriver, under the
// function's prefix, before anything runs.
func TestUnknownDriverIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := rollouttest.UnknownPool(t)
	plan := rollouttest.LedgerPlan()
	_, errNew := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	_, errOpen := rollout.Open(ctx, db)
	_, errStart := rollout.Start(ctx, db, rollout.ServiceConfig{Service: "s", Build: "b", Plans: []rollout.Plan{plan}})
	for prefix, err := range map[string]error{
		"new coordinator:":                 errNew,
		"open coordinator:":                errOpen,
		"start:":                           errStart,
		`register plan "users_split_name"`: rollout.Register(ctx, db, plan),
	} {
		require.ErrorIs(t, err, rollout.ErrInvalidArgument, prefix)
		require.ErrorIs(t, err, dialects.ErrUnknownDriver, prefix)
		assert.True(t, strings.HasPrefix(err.Error(), prefix), "%s: %v", prefix, err)
	}
}
