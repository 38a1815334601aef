package contract_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestVerify(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, full_name text, given_name varchar(80) NOT NULL,
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
		Indexes: []contract.Index{{Name: "users_pkey"}, {Columns: []string{"given_name", "id"}, Unique: true}},
		Absent:  []string{"legacy_name"},
	}}}
	require.NoError(t, contract.Verify(t.Context(), db, fits))

	unfit := contract.Schema{Tables: []contract.Table{
		{
			Name: "users",
			Columns: []contract.Column{
				{Name: "id", Type: "integer"},
				{Name: "family_name", Type: "text"},
				{Name: "full_name", Nullable: contract.NotNull},
				{Name: "given_name", Nullable: contract.Nullable},
			},
			Indexes: []contract.Index{{Columns: []string{"family_name"}}, {Name: "users_given", Unique: true}},
			Absent:  []string{"full_name"},
		},
		{Name: "order_totals"},
	}}
	err := contract.Verify(t.Context(), db, unfit)
	require.ErrorIs(t, err, contract.ErrMismatch)
	var me *contract.MismatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, []string{
		"column users.id is bigint, want integer",
		"column users.family_name is missing",
		"column users.full_name is nullable, want NOT NULL",
		"column users.given_name is NOT NULL, want nullable",
		"column users.full_name still exists, want it dropped",
		"index (family_name) on users is missing",
		"table order_totals is missing",
	}, me.Problems, "every unmet requirement, precisely")

	// An index left INVALID by a failed concurrent build does not count as there.
	db.MustExecContext(t.Context(), `UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'users_given'::regclass`)
	err = contract.Verify(t.Context(), db, contract.Schema{Tables: []contract.Table{{Name: "users", Indexes: []contract.Index{{Name: "users_given"}}}}})
	require.ErrorIs(t, err, contract.ErrMismatch)
	assert.Contains(t, err.Error(), "INVALID")

	err = contract.Verify(t.Context(), db, contract.Schema{Tables: []contract.Table{{Name: `users"; DROP TABLE users; --`}}})
	require.Error(t, err)
	var n int
	require.NoError(t, db.GetContext(t.Context(), &n, `SELECT count(*) FROM users`))
}
