package backfill_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// A database whose checkpoint tables predate schemashift_backfill_runs
// (every column current, the table missing) gets the table from the next
// EnsureSchema, and keeps its jobs.
func TestEnsureSchemaAddsTheRunsTable(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 10)
		_, err := mustNew(t, db, emailJob("before-runs"), backfill.WithDutyCycle(1)).Run(t.Context())
		require.NoError(t, err)
		db.MustExecContext(t.Context(), `DROP TABLE schemashift_backfill_runs`)
		require.NoError(t, backfill.EnsureSchema(t.Context(), db))
		var n int
		require.NoError(t, db.GetContext(t.Context(), &n, `SELECT count(*) FROM schemashift_backfill_runs`), "the table is back")
		st, err := mustNew(t, db, emailJob("before-runs")).State(t.Context())
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, st.Status)
		assert.Zero(t, divergent(t, db))
	})
}
