package contract_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestVerify(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint NOT NULL PRIMARY KEY, full_name text, given_name varchar(80) NOT NULL,
			created timestamptz, balance numeric(12,2))`)
		db.MustExecContext(t.Context(), `CREATE UNIQUE INDEX users_given ON users (given_name, id)`)

		fits := contract.Schema{Tables: []contract.Table{{
			Name: "users",
			Columns: []contract.Column{
				{Name: "id", Type: "int8", Nullable: contract.NotNull},
				{Name: "given_name", Type: "varchar(80)", Nullable: contract.NotNull},
				{Name: "created", Type: "timestamptz", Nullable: contract.Nullable},
				{Name: "balance", Type: "numeric(12, 2)"},
				{Name: "full_name"},
			},
			Indexes: []contract.Index{{Columns: []string{"id"}, Unique: true}, {Columns: []string{"given_name", "id"}, Unique: true}},
			Absent:  []string{"legacy_name"},
		}}}
		require.NoError(t, contract.Verify(t.Context(), db, fits))
		require.NoError(t, fits.Verify(t.Context(), db))

		unfit := contract.Schema{Tables: []contract.Table{
			{
				Name: "users",
				Columns: []contract.Column{
					{Name: "id", Type: "text"},
					{Name: "family_name", Type: "text"},
					{Name: "full_name", Nullable: contract.NotNull},
					{Name: "given_name", Nullable: contract.Nullable},
				},
				Indexes: []contract.Index{{Columns: []string{"family_name"}}, {Name: "users_given", Unique: true}, {Columns: []string{"full_name"}, Unique: true}},
				Absent:  []string{"full_name"},
			},
			{Name: "order_totals"},
		}}
		idType := map[bool]string{
			false: "column users.id is bigint, want text",
			true:  "column users.id is bigint, want text (SQLite type affinity INTEGER, want TEXT)",
		}[db.DriverName() == "sqlite"]
		err := unfit.Verify(t.Context(), db)
		require.ErrorIs(t, err, contract.ErrMismatch)
		var me *contract.MismatchError
		require.ErrorAs(t, err, &me)
		assert.Equal(t, []string{
			idType,
			"column users.family_name is missing",
			"column users.full_name is nullable, want NOT NULL",
			"column users.given_name is NOT NULL, want nullable",
			"column users.full_name still exists, want it dropped",
			"index (family_name) on users is missing",
			"index unique (full_name) on users is missing",
			"table order_totals is missing",
		}, me.Problems, "every unmet requirement, precisely")

		err = contract.Verify(t.Context(), db, contract.Schema{Tables: []contract.Table{{Name: `users"; DROP TABLE users; --`}}})
		require.Error(t, err)
		var n int
		require.NoError(t, db.GetContext(t.Context(), &n, `SELECT count(*) FROM users`))
	})
}

// PostgreSQL compares types by name and knows its own primary key index
// and INVALID indexes.
func TestVerifyPostgresCatalog(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, given_name text)`)
	db.MustExecContext(t.Context(), `CREATE UNIQUE INDEX users_given ON users (given_name, id)`)
	require.NoError(t, contract.Verify(t.Context(), db, contract.Schema{Tables: []contract.Table{{Name: "users", Indexes: []contract.Index{{Name: "users_pkey"}}}}}))

	err := contract.Verify(t.Context(), db, contract.Schema{Tables: []contract.Table{{Name: "users", Columns: []contract.Column{{Name: "id", Type: "integer"}}}}})
	var me *contract.MismatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, []string{"column users.id is bigint, want integer"}, me.Problems, "same affinity is not enough on PostgreSQL")

	// An index left INVALID by a failed concurrent build does not count as there.
	db.MustExecContext(t.Context(), `UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'users_given'::regclass`)
	err = contract.Verify(t.Context(), db, contract.Schema{Tables: []contract.Table{{Name: "users", Indexes: []contract.Index{{Name: "users_given"}}}}})
	require.ErrorIs(t, err, contract.ErrMismatch)
	assert.Contains(t, err.Error(), "INVALID")
}

// On SQLite a type is its affinity: a contract written in PostgreSQL's
// types is met by the declared types SQLite reads the same way, and only
// a different affinity is reported.
func TestVerifySQLiteAffinity(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	db.MustExecContext(t.Context(), `CREATE TABLE accounts (id INTEGER PRIMARY KEY, n INTEGER, name TEXT, code VARCHAR(10), photo BLOB,
		untyped, score REAL, ratio DOUBLE, amount NUMERIC(12,2), created timestamp, flag boolean, doc jsonb)`)
	rows := []struct {
		column, want string
		met          bool
		affinity     string
	}{
		{"n", "bigint", true, ""},
		{"n", "int", true, ""},
		{"n", "smallint", true, ""},
		{"id", "bigserial", true, ""}, // serial is integer, as PostgreSQL reads it
		{"n", "text", false, "INTEGER, want TEXT"},
		{"name", "text", true, ""},
		{"name", "varchar(80)", true, ""},
		{"name", "character varying", true, ""},
		{"code", "text", true, ""},
		{"name", "integer", false, "TEXT, want INTEGER"},
		{"photo", "blob", true, ""},
		{"untyped", "blob", true, ""},
		{"photo", "bytea", false, "BLOB, want NUMERIC"},
		{"score", "float8", true, ""},
		{"ratio", "double precision", true, ""},
		{"score", "real", true, ""},
		{"score", "numeric", false, "REAL, want NUMERIC"},
		{"amount", "numeric(12,2)", true, ""},
		{"amount", "decimal", true, ""},
		{"created", "timestamptz", true, ""},
		{"flag", "bool", true, ""},
		{"doc", "jsonb", true, ""},
		{"doc", "text", false, "NUMERIC, want TEXT"},
	}
	for _, r := range rows {
		err := contract.Schema{Tables: []contract.Table{{Name: "accounts", Columns: []contract.Column{{Name: r.column, Type: r.want}}}}}.Verify(t.Context(), db)
		if r.met {
			assert.NoError(t, err, "%s as %s", r.column, r.want)
			continue
		}
		var me *contract.MismatchError
		if assert.ErrorAs(t, err, &me, "%s as %s", r.column, r.want) {
			assert.Len(t, me.Problems, 1)
			assert.Contains(t, me.Problems[0], "SQLite type affinity "+r.affinity, "%s as %s", r.column, r.want)
		}
	}
	err := contract.Schema{Tables: []contract.Table{{Name: "accounts", Columns: []contract.Column{{Name: "untyped", Type: "text"}}}}}.Verify(t.Context(), db)
	assert.ErrorContains(t, err, "column accounts.untyped is declared without a type, want text (SQLite type affinity BLOB, want TEXT)")

	// INTEGER PRIMARY KEY is the rowid: never NULL (though the catalog says
	// nullable), in no index list, yet unique and indexed; it meets an
	// index requirement by columns, not by a name it lacks.
	require.NoError(t, contract.Schema{Tables: []contract.Table{{Name: "accounts", Columns: []contract.Column{{Name: "id", Nullable: contract.NotNull}}}}}.Verify(t.Context(), db))
	require.NoError(t, contract.Schema{Tables: []contract.Table{{Name: "accounts", Indexes: []contract.Index{{Columns: []string{"id"}, Unique: true}}}}}.Verify(t.Context(), db))
	err = contract.Schema{Tables: []contract.Table{{Name: "accounts", Indexes: []contract.Index{{Name: "accounts_pkey"}, {Columns: []string{"n"}}}}}}.Verify(t.Context(), db)
	var me *contract.MismatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, []string{"index accounts_pkey on accounts is missing", "index (n) on accounts is missing"}, me.Problems)

	// Any other primary key column of a rowid table accepts NULL in
	// SQLite unless declared NOT NULL, and is reported so.
	db.MustExecContext(t.Context(), `CREATE TABLE codes (code bigint PRIMARY KEY)`)
	err = contract.Schema{Tables: []contract.Table{{Name: "codes", Columns: []contract.Column{{Name: "code", Nullable: contract.NotNull}}}}}.Verify(t.Context(), db)
	require.ErrorAs(t, err, &me)
	assert.Equal(t, []string{"column codes.code is nullable, want NOT NULL"}, me.Problems)
	_, err = db.ExecContext(t.Context(), `INSERT INTO codes VALUES (NULL)`)
	require.NoError(t, err, "as SQLite indeed allows")
}
