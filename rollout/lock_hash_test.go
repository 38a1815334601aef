package rollout_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// While one coordinator is inside a transition of a migration
// (it holds the migration's lock), a second coordinator of the same
// migration must wait. Here the second one's clock is 31 s ahead of the
// first's (more than the SQLite lease of 30 s): the lock must not depend
// on it. The first stops inside its lock at its reading of the clock for
// the ledger transaction (its first reading on both databases: a SQLite
// lease reads real time, not the coordinator's clock).
func TestLockHoldsAgainstASkewedClock(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clk := rollouttest.NewClock()
		const inside = 1 // the lock's lease reads real time, never the coordinator's clock
		entered, release := make(chan struct{}), make(chan struct{})
		var reads atomic.Int64
		var armed atomic.Bool
		held := func() time.Time {
			if armed.Load() && reads.Add(1) == int64(inside) {
				close(entered)
				<-release
			}
			return clk.Now()
		}
		a, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{racePlan()}, rollout.WithClock(held))
		require.NoError(t, err)
		skewed := func() time.Time { return clk.Now().Add(31 * time.Second) }
		b, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{racePlan()}, rollout.WithClock(skewed))
		require.NoError(t, err)
		armed.Store(true)

		aDone := make(chan error, 1)
		go func() {
			_, err := a.Advance(ctx, rollout.Request{Migration: "race", Actor: "a", Force: true, Reason: "a"})
			aDone <- err
		}()
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("a never got inside its lock")
		}
		short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		_, bErr := b.Advance(short, rollout.Request{Migration: "race", Actor: "b", Force: true, Reason: "b"})
		cancel()
		close(release)
		require.NoError(t, <-aDone)
		require.ErrorIs(t, bErr, context.DeadlineExceeded,
			"b ran a transition of the migration while a held its lock (b's clock is 31 s ahead)")
	})
}

// A ledger row registered by a build before stored plans has a
// legacy hash and no definition. The legacy hash cannot see an index's
// columns, so a plan changed there matches it; whether or not it is taken,
// it must not become the stored definition on that hash alone: the plan
// the old build registered then conflicts (its new build's services fail
// to start), and rollout.Open (the CLI) coordinates the changed one.
func TestLegacyRowWithoutDefinitionIsNotTakenOver(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		require.NoError(t, rollout.Register(ctx, db, goldenPlan()))
		const golden = "056f5ee3709e2af877ef722eb393d0ea" // what the old build recorded
		db.MustExecContext(ctx, `UPDATE schemashift_migrations SET definition_hash = $1, definition = NULL WHERE migration = $2`, golden, "users_split_name")

		changed := goldenPlan()
		changed.ExpandOps[1] = ddl.CreateIndex{Name: "users_given_name", Table: "users", Columns: []string{"id"}}
		err := rollout.Register(ctx, db, changed)
		t.Logf("the changed plan on the legacy hash alone: %v", err)
		open, err := rollout.Open(ctx, db)
		require.NoError(t, err)
		if p, err := open.Plan("users_split_name"); err == nil {
			assert.Equal(t, goldenPlan().ExpandOps[1], p.ExpandOps[1], "the ledger now serves the changed plan's index")
		}
		assert.NoError(t, rollout.Register(ctx, db, goldenPlan()),
			"the plan the old build registered conflicts with what the changed one stored")
	})
}

// Two plans whose backfill expression differs in
// one byte that is not UTF-8 hash the same (encoding/json writes every
// such byte as U+FFFD), and the second registers under the first's name:
// what the ledger stores is neither. Raw steps are refused by the lint's
// parser; a job's Set expression and Version are not parsed at
// registration.
func TestInvalidUTF8IsPartOfTheHash(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		p1, p2 := goldenPlan(), goldenPlan()
		p1.Backfills[0].Set = []backfill.Assign{{Column: "given_name", Expr: "split_part(full_name, '\xff', 1)"}}
		p2.Backfills[0].Set = []backfill.Assign{{Column: "given_name", Expr: "split_part(full_name, '\xfe', 1)"}}
		h1, err := rollout.DefinitionHash(p1)
		require.NoError(t, err)
		h2, err := rollout.DefinitionHash(p2)
		require.NoError(t, err)
		assert.NotEqual(t, h1, h2, "different expressions, one hash")

		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		if err := rollout.Register(ctx, db, p1); err != nil {
			t.Logf("register refuses invalid UTF-8: %v", err)
			return
		}
		assert.ErrorIs(t, rollout.Register(ctx, db, p2), rollout.ErrPlanConflict, "a changed expression registered under the same name")
	})
}

// A plan holding a string that is not UTF-8, anywhere (a job's
// expression, an operation's field behind its interface), is refused at
// registration, naming the field; nothing is stored.
func TestPlanWithInvalidUTF8IsRefused(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		p := goldenPlan()
		p.Backfills[0].Set = []backfill.Assign{{Column: "given_name", Expr: "split_part(full_name, '\xff', 1)"}}
		err := rollout.Register(ctx, db, p)
		require.ErrorIs(t, err, rollout.ErrInvalidPlan)
		assert.Contains(t, err.Error(), "Backfills[0].Set[0].Expr")

		p = goldenPlan()
		p.ExpandOps[1] = ddl.CreateIndex{Name: "users_given_name", Table: "users", Columns: []string{"given_name\xfe"}}
		err = rollout.Register(ctx, db, p)
		require.ErrorIs(t, err, rollout.ErrInvalidPlan)
		assert.Contains(t, err.Error(), "ExpandOps[1].Columns[0]")

		var n int
		require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM schemashift_migrations`))
		assert.Zero(t, n, "an invalid plan stores nothing")
		require.NoError(t, rollout.Register(ctx, db, goldenPlan()))
	})
}
