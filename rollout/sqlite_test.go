package rollout_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// A SQLite pool limited to one connection (common advice for SQLite in Go)
// advances a plan with DDL operations: the migration's lock holds no
// connection while the transition runs.
func TestSQLiteOneConnectionPool(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	rollouttest.UsersDB(t, db)
	db.SetMaxOpenConns(1)
	p := rollouttest.UsersPlan(db)
	p.ExpandOps = []ddl.Op{ddl.CreateIndex{Name: "users_full_name", Table: "users", Columns: []string{"full_name"}}}
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{p})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t"})
	require.NoError(t, err, "advance to expanded on a one-connection pool")
}

// Times read from SQLite's text columns come back as times, including
// through Audit's subquery.
func TestSQLiteTimesScan(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	rollouttest.UsersDB(t, db)
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.UsersPlan(db)})
	require.NoError(t, err)
	_, err = c.Advance(t.Context(), rollout.Request{Migration: "users_split_name", Actor: "t"})
	require.NoError(t, err)
	st, err := ledger.Get(t.Context(), db, "users_split_name")
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), st.PhaseSince, time.Minute)
	ev, err := ledger.Audit(t.Context(), db, "users_split_name", 10)
	require.NoError(t, err)
	require.NotEmpty(t, ev)
	for _, e := range ev {
		require.WithinDuration(t, time.Now(), e.At, time.Minute, "%+v", e)
	}
}

// Every transition of a migration takes the migration's lock, those
// without DDL operations too: none may commit while another's DDL runs.
func TestTransitionsWaitForTheMigrationLock(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		rollouttest.UsersDB(t, db)
		c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.UsersPlan(db)})
		require.NoError(t, err)
		unlock, err := dbtest.Dialect(t, db).Lock(t.Context(), db, "schemashift:users_split_name", nil)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Force: true, Reason: "t"})
		require.ErrorIs(t, err, context.DeadlineExceeded, "waits while the lock is held elsewhere")
		unlock()
		st, err := c.Advance(t.Context(), rollout.Request{Migration: "users_split_name", Actor: "t", Force: true, Reason: "t"})
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, st.Phase)
	})
}
