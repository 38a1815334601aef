package rollout_test

import (
	"errors"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// ordersPlan waits for users_split_name: it may not expand before the
// users migration is at dualwrite.
func ordersPlan() rollout.Plan {
	return rollout.Plan{Migration: "orders_move_amount", Thresholds: rollout.Thresholds{Window: rollouttest.Window, MinComparisons: 1},
		Requires: []rollout.Requirement{{Before: ledger.Expanded, Migration: "users_split_name", Reached: ledger.DualWrite}}}
}

// A migration that must wait for another is refused at the gate of the
// phase its requirement names, by a gate that names the migration it
// waits for and where that one stands; the readiness check says the same;
// once the other reaches the phase, it advances. The CLI's coordinator,
// opened from the stored plans, judges it alike.
func TestRequirementOrdersMigrations(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		rollouttest.UsersDB(t, db)
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.UsersPlan(db), ordersPlan()})
		require.NoError(t, err)
		orders := rollout.Request{Migration: "orders_move_amount", Actor: "ci"}

		_, err = c.Advance(ctx, orders)
		var refused *rollout.RefusedError
		require.True(t, errors.As(err, &refused), "%v", err)
		assert.Equal(t, "sequence", refused.Gate)
		assert.Contains(t, refused.Reason, `migration "users_split_name" is at planned; it must reach dualwrite first`)
		r, err := c.Check(ctx, "orders_move_amount")
		require.NoError(t, err)
		assert.False(t, r.Met)
		assert.Equal(t, "sequence", r.Gate)
		assert.Contains(t, r.Reason, "users_split_name")

		opened, err := rollout.Open(ctx, db)
		require.NoError(t, err)
		r, err = opened.Check(ctx, "orders_move_amount")
		require.NoError(t, err)
		assert.Equal(t, "sequence", r.Gate, "the stored plan keeps its requirement")
		assert.False(t, r.Met)

		users := rollout.Request{Migration: "users_split_name", Actor: "ci"}
		_, err = c.Advance(ctx, users) // expanded: not yet
		require.NoError(t, err)
		_, err = c.Advance(ctx, orders)
		require.ErrorIs(t, err, rollout.ErrGateRefused)
		assert.Contains(t, err.Error(), "is at expanded")
		_, err = c.Advance(ctx, users) // dualwrite
		require.NoError(t, err)
		r, err = c.Check(ctx, "orders_move_amount")
		require.NoError(t, err)
		assert.True(t, r.Met, "%+v", r)
		st, err := c.Advance(ctx, orders)
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, st.Phase)

		// A requirement of a later phase only: rolled back and forward
		// again, the users migration going back does not hold orders at
		// a phase it has entered.
		assert.Contains(t, report.Gate(ordersPlan(), ledger.Expanded), `migration "users_split_name" at dualwrite or later`)
		assert.NotContains(t, report.Gate(ordersPlan(), ledger.DualWrite), "users_split_name")
	})
}

// A requirement on a migration the ledger does not have is unmet (it
// must be registered and reach the phase first); a forced advance passes
// over it, recorded as forced.
func TestRequirementOnAnUnregisteredMigration(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	ctx := t.Context()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{ordersPlan()})
	require.NoError(t, err)
	_, err = c.Advance(ctx, rollout.Request{Migration: "orders_move_amount", Actor: "ci"})
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, err.Error(), `migration "users_split_name" is not registered`)
	st, err := c.Advance(ctx, rollout.Request{Migration: "orders_move_amount", Actor: "ci", Force: true, Reason: "users migration dropped"})
	require.NoError(t, err)
	assert.Equal(t, ledger.Expanded, st.Phase)
	events, err := ledger.Audit(ctx, db, "orders_move_amount", 0)
	require.NoError(t, err)
	last := events[len(events)-1]
	assert.Equal(t, "force-advance", last.Kind)
	assert.Contains(t, last.Reason, "forced: users migration dropped")
}

// Requirements that close a cycle are refused at registration, whether
// the cycle is among the plans of one coordinator (none is registered)
// or closed by a plan against the ledger's stored ones (it is not
// registered); the error names the cycle.
func TestRequirementCyclesAreRefused(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		a := rollout.Plan{Migration: "a", Requires: []rollout.Requirement{{Before: ledger.Contracted, Migration: "b", Reached: ledger.Complete}}}
		b := rollout.Plan{Migration: "b", Requires: []rollout.Requirement{{Before: ledger.Live, Migration: "c", Reached: ledger.Live}}}
		cBack := rollout.Plan{Migration: "c", Requires: []rollout.Requirement{{Before: ledger.Expanded, Migration: "a", Reached: ledger.Expanded}}}

		_, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{a, b, cBack})
		require.ErrorIs(t, err, rollout.ErrInvalidPlan)
		assert.Contains(t, err.Error(), "a needs b needs c needs a")
		list, err := ledger.List(ctx, db)
		require.NoError(t, err)
		assert.Empty(t, list, "a refused set of plans registers none of them")

		_, err = rollout.NewCoordinator(ctx, db, []rollout.Plan{a, b})
		require.NoError(t, err, "no cycle yet: c is not registered")
		err = rollout.Register(ctx, db, cBack)
		require.ErrorIs(t, err, rollout.ErrInvalidPlan)
		assert.Contains(t, err.Error(), "cycle")
		_, err = ledger.Get(ctx, db, "c")
		require.ErrorIs(t, err, ledger.ErrUnknownMigration, "the plan closing the cycle is not registered")
		require.NoError(t, rollout.Register(ctx, db, rollout.Plan{Migration: "c"}), "c without the requirement closes nothing")
	})
}

// A requirement that could never be judged as meant is refused by
// Normalize: on the plan's own migration, on none, before planned (no
// transition enters it), on reaching planned (always true) or on a phase
// that does not exist.
func TestRequirementsThatSayNothingAreRefused(t *testing.T) {
	t.Parallel()
	for name, r := range map[string]rollout.Requirement{
		"itself":         {Before: ledger.Live, Migration: "m", Reached: ledger.Live},
		"no migration":   {Before: ledger.Live, Migration: " ", Reached: ledger.Live},
		"before planned": {Before: ledger.Planned, Migration: "other", Reached: ledger.Live},
		"reach planned":  {Before: ledger.Live, Migration: "other", Reached: ledger.Planned},
		"no such phase":  {Before: ledger.Live, Migration: "other", Reached: ledger.Phase(200)},
		"no such before": {Before: ledger.Phase(99), Migration: "other", Reached: ledger.Live},
	} {
		p := rollout.Plan{Migration: "m", Requires: []rollout.Requirement{r}}
		assert.ErrorIs(t, p.Normalize(), rollout.ErrInvalidPlan, name)
	}
}
