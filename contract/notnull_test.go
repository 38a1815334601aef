package contract_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// A NOT NULL that a failed SET NOT NULL left unvalidated does not make the
// column NOT NULL: rows written before it may still hold NULL. From
// PostgreSQL 18 on, ddl.SetNotNull adds a native NOT NULL constraint NOT
// VALID, which the catalog's attnotnull counts from then on, validated or
// not; before 18 it adds a CHECK, which attnotnull ignores. Verify reads the
// column as nullable on every version until the constraint is validated.
func TestVerifyUnvalidatedNotNull(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	var major int
	require.NoError(t, db.GetContext(ctx, &major, `SELECT current_setting('server_version_num')::int / 10000`))
	db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text);
		INSERT INTO users VALUES (1, 'ada@example.com'), (2, NULL)`)
	notNull := contract.Schema{Tables: []contract.Table{{Name: "users", Columns: []contract.Column{{Name: "email", Nullable: contract.NotNull}}}}}
	nullable := contract.Schema{Tables: []contract.Table{{Name: "users", Columns: []contract.Column{{Name: "email", Nullable: contract.Nullable}}}}}
	attnotnull := func() bool {
		var v bool
		require.NoError(t, db.GetContext(ctx, &v, `SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email'`))
		return v
	}

	e, err := ddl.NewExecutor(db, ddl.WithRetries(0, time.Millisecond))
	require.NoError(t, err)
	ops := []ddl.Op{ddl.SetNotNull{Table: "users", Column: "email"}}
	err = e.Apply(ctx, "email-not-null", ops)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "validated a NOT NULL over a NULL row")
	if major >= 18 {
		assert.Equal(t, "23502", pgErr.Code, "not_null_violation from VALIDATE of the native constraint: %v", err)
	} else {
		assert.Equal(t, "23514", pgErr.Code, "check_violation from VALIDATE of the helper CHECK: %v", err)
	}
	assert.Equal(t, major >= 18, attnotnull(), "attnotnull on PostgreSQL %d with an unvalidated NOT NULL", major)

	err = notNull.Verify(ctx, db)
	var me *contract.MismatchError
	require.ErrorAs(t, err, &me, "a column holding NULL passed for NOT NULL on PostgreSQL %d", major)
	assert.Equal(t, []string{"column users.email is nullable, want NOT NULL"}, me.Problems)
	require.NoError(t, nullable.Verify(ctx, db))

	// Once the NULL is gone the same op finishes, and the column is NOT NULL.
	db.MustExecContext(ctx, `UPDATE users SET email = 'alan@example.com' WHERE id = 2`)
	require.NoError(t, e.Apply(ctx, "email-not-null", ops))
	assert.True(t, attnotnull())
	require.NoError(t, notNull.Verify(ctx, db))
	err = nullable.Verify(ctx, db)
	require.ErrorAs(t, err, &me)
	assert.Equal(t, []string{"column users.email is NOT NULL, want nullable"}, me.Problems)
}
