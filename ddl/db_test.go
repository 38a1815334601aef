package ddl_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/ident"
)

// An executor runs on a *sql.DB as on a *sqlx.DB: one applies, the other
// reverts what the first recorded, both on the same database.
func TestExecutorTakesEitherPool(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE users (id bigint PRIMARY KEY, full_name text)`)
		ops := []ddl.Op{ddl.AddColumn{Table: "users", Column: "given_name", Type: "text"}}
		has := func() bool {
			cols, err := dbtest.Dialect(t, db).Columns(ctx, db, ident.Table{Name: "users"})
			require.NoError(t, err)
			for _, c := range cols {
				if c.Name == "given_name" {
					return true
				}
			}
			return false
		}
		plain, err := ddl.NewExecutor(db.DB)
		require.NoError(t, err)
		require.NoError(t, plain.Apply(ctx, "split", ops))
		assert.True(t, has(), "applied through a *sql.DB")
		wrapped, err := ddl.NewExecutor(db)
		require.NoError(t, err)
		require.NoError(t, wrapped.Revert(ctx, "split", ops))
		assert.False(t, has(), "reverted through a *sqlx.DB, as recorded by the other")
	})
}
