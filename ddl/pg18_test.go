package ddl_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// PostgreSQL 18 keeps a column's NOT NULL as a constraint of its own
// (contype 'n', validated or NOT VALID) where earlier versions keep only
// pg_attribute.attnotnull. These tests run on every version and say where
// the two differ.

// serverMajor is the major version of the server db is connected to.
func serverMajor(t *testing.T, db *sqlx.DB) int {
	t.Helper()
	var major int
	require.NoError(t, db.GetContext(t.Context(), &major, `SELECT current_setting('server_version_num')::int / 10000`))
	return major
}

// constraints lists table's constraints as name:validated, by name.
func constraints(t *testing.T, db *sqlx.DB, table string) []string {
	t.Helper()
	var out []string
	require.NoError(t, db.SelectContext(t.Context(), &out, `SELECT conname || ':' || convalidated FROM pg_constraint
		WHERE conrelid = $1::regclass ORDER BY conname`, table))
	return out
}

func attNotNull(t *testing.T, db *sqlx.DB, table, column string) bool {
	t.Helper()
	var v bool
	require.NoError(t, db.GetContext(t.Context(), &v, `SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2`, table, column))
	return v
}

// SetNotNull on a column that is NOT NULL already — declared so, or a
// primary key — changes nothing and succeeds on every version. On 18 the
// column's NOT NULL is a constraint named by CREATE TABLE (users_email_not_null),
// and a second NOT NULL constraint on the column is refused (55000, "cannot
// create not-null constraint"): the op must see the column's constraint,
// whatever its name, not only its own.
func TestSetNotNullOnNotNullColumn(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	major := serverMajor(t, db)
	db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
		INSERT INTO users VALUES (1, 'ada@example.com')`)
	before := constraints(t, db, "users")
	if major >= 18 {
		assert.Equal(t, []string{"users_email_not_null:true", "users_id_not_null:true", "users_pkey:true"}, before)
	} else {
		assert.Equal(t, []string{"users_pkey:true"}, before)
	}

	ops := []ddl.Op{ddl.SetNotNull{Table: "users", Column: "email"}, ddl.SetNotNull{Table: "users", Column: "id"}}
	require.NoError(t, executor(t, db).Apply(ctx, "already-not-null", ops), "PostgreSQL %d", major)
	assert.Equal(t, before, constraints(t, db, "users"), "a constraint added or left behind")
	assert.True(t, attNotNull(t, db, "users", "email"))
	assert.True(t, attNotNull(t, db, "users", "id"))
	require.NoError(t, executor(t, db).Apply(ctx, "already-not-null-again", ops), "PostgreSQL %d", major)
	assert.Equal(t, before, constraints(t, db, "users"))
}

// A SetNotNull whose validation meets a NULL fails and leaves its
// constraint NOT VALID: on 18 the native NOT NULL, which attnotnull already
// counts (the catalog says NOT NULL while a row is NULL), before 18 the
// helper CHECK. Once the NULL is gone, running the op again, even by an
// executor with no record of the first run, validates it.
func TestSetNotNullAfterFailedValidation(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	major := serverMajor(t, db)
	db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text);
		INSERT INTO users VALUES (1, 'ada@example.com'), (2, NULL)`)
	ops := []ddl.Op{ddl.SetNotNull{Table: "users", Column: "email"}}

	err := executor(t, db).Apply(ctx, "first", ops)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "validated NOT NULL over a NULL")
	if major >= 18 {
		assert.Equal(t, "23502", pgErr.Code, "not_null_violation: %v", err)
		assert.Contains(t, constraints(t, db, "users"), "email_not_null:false")
		assert.True(t, attNotNull(t, db, "users", "email"), "18's attnotnull counts a NOT VALID NOT NULL")
	} else {
		assert.Equal(t, "23514", pgErr.Code, "check_violation: %v", err)
		assert.Contains(t, constraints(t, db, "users"), "email_not_null:false")
		assert.False(t, attNotNull(t, db, "users", "email"))
	}

	db.MustExecContext(ctx, `UPDATE users SET email = 'alan@example.com' WHERE id = 2`)
	require.NoError(t, executor(t, db).Apply(ctx, "second", ops))
	assert.True(t, attNotNull(t, db, "users", "email"))
	if major >= 18 {
		assert.Equal(t, []string{"email_not_null:true", "users_id_not_null:true", "users_pkey:true"}, constraints(t, db, "users"))
	} else {
		assert.Equal(t, []string{"users_pkey:true"}, constraints(t, db, "users"), "the helper check is gone")
	}
	_, err = db.ExecContext(ctx, `INSERT INTO users VALUES (3, NULL)`)
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "23502", pgErr.Code)
}
