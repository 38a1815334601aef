package dialects_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialects"
)

// Each database's plans read as the node descriptions the query-plan
// watch has always stored, outermost first: a changed word would flag
// every stored plan as changed.
func TestExplain(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		d := dbtest.Dialect(t, db)
		db.MustExecContext(ctx, `CREATE TABLE users (id integer PRIMARY KEY, full_name text NOT NULL, note text)`)
		db.MustExecContext(ctx, `CREATE INDEX users_full_name ON users (full_name)`)
		db.MustExecContext(ctx, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 20000)
			INSERT INTO users SELECT i, 'Grace Hopper' || i, NULL FROM s`)
		db.MustExecContext(ctx, `ANALYZE users`)

		want := map[string][3][]string{ // by index, by sequential scan, sorted
			"postgres": {
				{"Index Scan on users using users_full_name"},
				{"Seq Scan on users"},
				{"Sort", "Seq Scan on users"},
			},
			"sqlite": {
				{"SEARCH users USING INDEX users_full_name (full_name=?)"},
				{"SCAN users"},
				{"SCAN users", "USE TEMP B-TREE FOR ORDER BY"},
			},
		}[d.String()]
		require.NotNil(t, want, "a database of this test: %s", d)
		for i, q := range []struct {
			sql  string
			args []any
		}{
			{`SELECT note FROM users WHERE full_name = $1`, []any{"Grace Hopper7"}},
			{`SELECT id FROM users WHERE note = $1`, []any{"none"}},
			{`SELECT id FROM users ORDER BY note`, nil},
		} {
			shape, err := d.Explain(ctx, db, q.sql, q.args...)
			require.NoError(t, err, q.sql)
			assert.Equal(t, want[i], shape, q.sql)
		}

		// Explaining runs nothing, on a transaction as on a pool.
		tx, err := db.BeginTxx(ctx, nil)
		require.NoError(t, err)
		shape, err := d.Explain(ctx, tx, `DELETE FROM users WHERE id = $1`, 7)
		require.NoError(t, err)
		assert.NotEmpty(t, shape)
		require.NoError(t, tx.Commit())
		var n int
		require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM users`))
		assert.Equal(t, 20000, n)

		_, err = d.Explain(ctx, db, `SELECT id FROM no_such_table`)
		assert.Error(t, err, "a query that cannot be planned")
	})
}

// Each database says in its runbook how its DDL runs and what a lock
// wait that ran out means; one that cannot run every operation says what
// to do with one it cannot.
func TestRunbookText(t *testing.T) {
	t.Parallel()
	for _, d := range dialects.All() {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			text := d.Runbook()
			assert.NotEmpty(t, text.DDL)
			assert.NotEmpty(t, text.LockWait)
			assert.Equal(t, d.PlainDDL(), text.Unsupported != "", "advice on unsupported operations where DDL is plain: %q", text.Unsupported)
		})
	}
	assert.False(t, dialects.Reference().PlainDDL(), "a runbook of no database is written in the DDL operations' own, safe forms")
}
