package report_test

import (
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

func TestRunbook(t *testing.T) {
	t.Parallel()
	p := rollouttest.UsersPlan(nil)
	p.ExpandOps = []ddl.Op{ddl.CreateIndex{Name: "users_full_name", Table: "users", Columns: []string{"full_name"}}}
	md, err := report.Runbook(p)
	require.NoError(t, err)
	for _, want := range []string{
		"# Runbook: users_split_name",
		"## 1. planned → expanded (stage off)",
		`CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_full_name" ON "users" ("full_name");`,
		"ALTER TABLE users ADD COLUMN given_name text",
		"## 3. dualwrite → backfill (stage dualwrite)",
		"every live instance evaluated only dualwrite or later for the whole window",
		"`schemashift backfill run users_split_name`",
		"`schemashift backfill pause users_split_name`",
		"shadow consistency ≥ 0.9 over ≥ 10 comparisons since shadow began",
		"`schemashift advance users_split_name --confirm`",
		"ALTER TABLE users DROP COLUMN full_name;",
		"**Irreversible.**",
		"`schemashift rollback users_split_name --to-off`",
		"**If refused:** An instance still evaluates an older stage",
		"Runs the expand, each statement with a short lock_timeout, retried on lock timeouts:",
		"**If refused:** The expand failed: read the error in the audit trail. A lock timeout means a long transaction holds the table; find it in pg_stat_activity and retry.\n",
	} {
		assert.Contains(t, md, want)
	}
	assert.Equal(t, 9, strings.Count(md, "\n## "), "one section per transition")
}

// The coordinator's runbook shows the DDL its database will run: the
// concurrent build on PostgreSQL; on SQLite the plain build with the note
// saying what it gives up, and an operation SQLite cannot run as a comment.
func TestCoordinatorRunbook(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testCoordinatorRunbook)
}

func testCoordinatorRunbook(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	p := rollouttest.UsersPlan(db)
	p.ExpandOps = []ddl.Op{
		ddl.CreateIndex{Name: "users_full_name", Table: "users", Columns: []string{"full_name"}},
		ddl.AddCheck{Table: "users", Name: "users_full_name_len", Expr: "length(full_name) < 500"},
	}
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{p})
	require.NoError(t, err)
	md, err := report.RunbookFor(t.Context(), c, "users_split_name")
	require.NoError(t, err)
	assert.Contains(t, md, "ALTER TABLE users ADD COLUMN given_name text")
	assert.Contains(t, md, "`schemashift advance users_split_name --confirm`")
	if dbtest.IsSQLite(t, db) {
		assert.Contains(t, md, "Runs the expand on SQLite, each statement waiting for the database write lock")
		assert.Contains(t, md, "-- sqlite: CREATE INDEX without CONCURRENTLY: writers wait for the build\n"+
			`CREATE INDEX IF NOT EXISTS "users_full_name" ON "users" ("full_name");`)
		assert.Contains(t, md, "\n-- add check users_full_name_len on users: operation not supported by the database: SQLite cannot add a check constraint")
		assert.Contains(t, md, `"database is locked" means a writer held the write lock`)
		assert.Contains(t, md, "**If refused:** The expand failed: read the error in the audit trail. "+
			`"database is locked" means a writer held the write lock past busy_timeout; retry when it is done. `+
			"An operation SQLite cannot run (a foreign key, a check, SET NOT NULL on an existing column) has to leave the plan.\n")
		assert.Contains(t, md, "Runs the contract on SQLite, each statement waiting for the database write lock (busy_timeout); "+
			"the PostgreSQL-only safety steps run in their plain form, as each comment says:\n")
		assert.NotContains(t, md, "CONCURRENTLY IF NOT EXISTS")
		assert.NotContains(t, md, "lock_timeout")
		assert.NotContains(t, md, "pg_stat_activity")
	} else {
		assert.Contains(t, md, `CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_full_name" ON "users" ("full_name");`)
		assert.Contains(t, md, `ADD CONSTRAINT "users_full_name_len" CHECK (length(full_name) < 500) NOT VALID;`)
		assert.Contains(t, md, "each statement with a short lock_timeout")
		assert.Contains(t, md, "A lock timeout means a long transaction holds the table; find it in pg_stat_activity and retry.")
		assert.NotContains(t, md, "database is locked")
		assert.NotContains(t, md, "-- sqlite:")
	}
	_, err = report.RunbookFor(t.Context(), c, "no_such_migration")
	require.ErrorIs(t, err, ledger.ErrUnknownMigration)
}
