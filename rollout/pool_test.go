package rollout_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// poolDeadline bounds each pool test: a transition that needs a second
// connection of a pool that has none to give waits until it, and fails.
const poolDeadline = 20 * time.Second

// A pool of one connection advances and rolls back a plan with DDL
// operations (an index built concurrently, outside a transaction), raw
// steps, hot queries and gates, on both databases: the migration's lock
// and the transition share the one connection.
func TestOneConnectionPool(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		rollouttest.UsersDB(t, db)
		p := rollouttest.UsersPlan(db)
		p.ExpandOps = []ddl.Op{
			ddl.AddColumn{Table: "users", Column: "nickname", Type: "text"},
			ddl.CreateIndex{Name: "users_full_name", Table: "users", Columns: []string{"full_name"}},
		}
		p.HotQueries = []rollout.HotQuery{{Name: "by id", SQL: "SELECT full_name FROM users WHERE id = 1"}}
		c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{p})
		require.NoError(t, err)
		db.SetMaxOpenConns(1)

		ctx, cancel := context.WithTimeout(t.Context(), poolDeadline)
		defer cancel()
		st, err := c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t"})
		require.NoError(t, err, "advance to expanded on a one-connection pool")
		assert.Equal(t, ledger.Expanded, st.Phase)
		assert.True(t, hasIndex(t, db, "users", "users_full_name"))
		st, err = c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t"})
		require.NoError(t, err, "the dualwrite gate reads the catalog on the same connection")
		assert.Equal(t, ledger.DualWrite, st.Phase)
		_, err = c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t"})
		require.ErrorIs(t, err, rollout.ErrGateRefused, "a refusal is recorded on the one connection too")
		st, err = c.Rollback(ctx, rollout.Request{Migration: p.Migration, Actor: "t", ToOff: true})
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, st.Phase)
		st, err = c.Rollback(ctx, rollout.Request{Migration: p.Migration, Actor: "t"})
		require.NoError(t, err, "undo the expand on a one-connection pool")
		assert.Equal(t, ledger.Planned, st.Phase)
		assert.False(t, hasIndex(t, db, "users", "users_full_name"))
		assert.False(t, hasColumn(t, db, "users", "nickname"))

		trail, err := ledger.Audit(ctx, db, p.Migration, 100)
		require.NoError(t, err)
		var refused int
		for _, e := range trail {
			if !e.Accepted {
				refused++
			}
		}
		assert.Equal(t, 1, refused, "the refusal is in the audit trail")
		assert.Equal(t, 1, db.Stats().MaxOpenConnections)
	})
}

// Eight transitions at once on a pool of two connections all complete:
// each wins or is refused with ErrConflict, exactly one wins per version,
// and the versions run without a gap.
func TestConcurrentTransitionsOnASmallPool(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		rollouttest.UsersDB(t, db)
		p := racePlan()
		// An operation on every expand and undo: the executor's work runs
		// under the migration's lock too.
		p.ExpandOps = []ddl.Op{ddl.CreateIndex{Name: "users_full_name", Table: "users", Columns: []string{"full_name"}}}
		c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{p})
		require.NoError(t, err)
		db.SetMaxOpenConns(2)

		ctx, cancel := context.WithTimeout(t.Context(), poolDeadline)
		defer cancel()
		const goroutines, rounds = 8, 3
		for round := range rounds {
			before, err := ledger.Get(ctx, db, "race")
			require.NoError(t, err)
			start := make(chan struct{})
			wins := make([]bool, goroutines)
			errs := make([]error, goroutines)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					<-start
					r := rollout.Request{Migration: "race", Version: before.Version, Actor: "g" + strconv.Itoa(g), Force: true, Reason: "race"}
					if round%2 == 1 {
						r.ToOff = true
						_, errs[g] = c.Rollback(ctx, r)
					} else {
						_, errs[g] = c.Advance(ctx, r)
					}
					wins[g] = errs[g] == nil
				})
			}
			close(start)
			wg.Wait()
			won := 0
			for g, err := range errs {
				if wins[g] {
					won++
					continue
				}
				require.ErrorIs(t, err, rollout.ErrConflict, "goroutine %d: refused cleanly, not hung", g)
			}
			require.Equal(t, 1, won, "round %d: exactly one wins version %d", round, before.Version)
			after, err := ledger.Get(ctx, db, "race")
			require.NoError(t, err)
			require.Equal(t, before.Version+1, after.Version)
		}
		trail, err := ledger.Audit(ctx, db, "race", 1000)
		require.NoError(t, err)
		attempts, accepted := 0, 0
		for _, e := range trail {
			if e.Kind == "register" || e.Kind == "ddl-note" {
				continue
			}
			attempts++
			if e.Accepted {
				accepted++
			}
		}
		assert.Equal(t, goroutines*rounds, attempts, "every attempt is in the audit trail")
		assert.Equal(t, rounds, accepted)
	})
}

// A transition cut off by its deadline while its index build waits breaks
// its connection (pgx closes a connection whose statement was cut off):
// the failure is still recorded, on the pool, the lock goes with the
// connection, and the next advance, on a pool of one, goes through.
func TestCutOffTransitionIsRecorded(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, pgtest.DB(t))
	p := rollouttest.UsersPlan(db)
	p.ExpandOps = []ddl.Op{ddl.CreateIndex{Name: "users_full_name", Table: "users", Columns: []string{"full_name"}}}
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{p})
	require.NoError(t, err)

	// A writer's open transaction: the concurrent build waits for it.
	writer, err := db.BeginTxx(t.Context(), nil)
	require.NoError(t, err)
	writer.MustExecContext(t.Context(), `UPDATE users SET full_name = full_name WHERE id = 1`)
	short, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	_, err = c.Advance(short, rollout.Request{Migration: p.Migration, Actor: "t"})
	cancel()
	require.Error(t, err)
	require.NotErrorIs(t, err, rollout.ErrAudit, "the failure is recorded")
	require.NoError(t, writer.Rollback())

	trail, err := ledger.Audit(t.Context(), db, p.Migration, 100)
	require.NoError(t, err)
	require.NotEmpty(t, trail)
	last := trail[len(trail)-1]
	assert.Equal(t, "ddl", last.Kind)
	assert.False(t, last.Accepted)

	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(t.Context(), poolDeadline)
	defer cancel()
	st, err := c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t"})
	require.NoError(t, err, "the lock went with the broken connection")
	assert.Equal(t, ledger.Expanded, st.Phase)
}
