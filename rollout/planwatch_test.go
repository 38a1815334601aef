package rollout_test

import (
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// The plans of hot queries are recorded before the expand and after each
// DDL step; a changed shape lands in the audit trail and on the board.
func TestQueryPlanWatch(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testQueryPlanWatch)
}

func testQueryPlanWatch(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	db.MustExecContext(ctx, `WITH RECURSIVE s(i) AS (SELECT 501 UNION ALL SELECT i + 1 FROM s WHERE i < 20000)
		INSERT INTO users SELECT i, 'Grace Hopper' || i FROM s`)
	// Each database words its plans its own way.
	seqScan, byIndex := "Seq Scan on users", "using users_full_name"
	if db.DriverName() == "sqlite" {
		seqScan, byIndex = "SCAN users", "USING INDEX users_full_name"
	}
	db.MustExecContext(ctx, `ANALYZE users`)
	plan := rollout.Plan{Migration: "users_by_name",
		ExpandOps:   []ddl.Op{ddl.CreateIndex{Name: "users_full_name", Table: "users", Columns: []string{"full_name"}}},
		ContractOps: []ddl.Op{ddl.DropIndex{Name: "users_full_name"}},
		HotQueries:  []rollout.HotQuery{{Name: "user by name", SQL: `SELECT id FROM users WHERE full_name = $1`, Args: []any{"Ada Lovelace7"}}},
	}
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	require.NoError(t, err)
	_, err = c.Advance(ctx, rollout.Request{Migration: "users_by_name", Actor: "t"})
	require.NoError(t, err)

	plans, err := c.QueryPlans(ctx, "users_by_name")
	require.NoError(t, err)
	require.Len(t, plans, 2)
	assert.Equal(t, "before expand", plans[0].When)
	assert.Equal(t, []string{seqScan}, plans[0].Shape)
	assert.Equal(t, "after advance to expanded", plans[1].When)
	assert.Contains(t, strings.Join(plans[1].Shape, " "), byIndex, "the new index is used")
	assert.Contains(t, plans[1].Changes, "- "+seqScan)

	ev, err := ledger.Audit(ctx, db, "users_by_name", 1)
	require.NoError(t, err)
	assert.Equal(t, "query-plan", ev[0].Kind)
	assert.Contains(t, ev[0].Reason, "plan of user by name changed after advance to expanded")

	// Undoing the expand drops the index: the sequential scan is back, flagged.
	_, err = c.Rollback(ctx, rollout.Request{Migration: "users_by_name", Actor: "t"})
	require.NoError(t, err)
	plans, err = c.QueryPlans(ctx, "users_by_name")
	require.NoError(t, err)
	require.Len(t, plans, 3)
	assert.Contains(t, plans[2].Changes, "+ "+seqScan)
	ev, err = ledger.Audit(ctx, db, "users_by_name", 1)
	require.NoError(t, err)
	assert.Contains(t, ev[0].Reason, "+ "+seqScan)

	// On the board.
	b, err := board.New(c)
	require.NoError(t, err)
	snap, err := b.Snapshot(ctx)
	require.NoError(t, err)
	require.Len(t, snap.Migrations[0].QueryPlans, 1, "the latest plan of each query")
	assert.Equal(t, []string{seqScan}, snap.Migrations[0].QueryPlans[0].Shape)
}
