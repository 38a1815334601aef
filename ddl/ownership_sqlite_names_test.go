package ddl_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// SQLite's names are case-insensitive ("Users" is users), but the
// executor asks whether the object is there with sqlite_schema.name = $1,
// a case-sensitive comparison. So an AddTable or CreateIndex whose name
// differs from an object there only in case is taken as absent; its
// CREATE … IF NOT EXISTS is a no-op on the object there, recorded as
// made by this migration (created), and the revert drops the table (and
// its rows) or the index that was there before.
func TestSQLiteCaseInsensitiveNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		op   ddl.Op
	}{
		{"AddTable", ddl.AddTable{Table: "Users", Columns: "id int PRIMARY KEY, email text"}},
		{"CreateIndex", ddl.CreateIndex{Name: "Users_Email", Table: "users", Columns: []string{"email"}}},
		{"AddUnique", ddl.AddUnique{Name: "Users_Nick", Table: "users", Columns: []string{"nick"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := dbtest.SQLite(t)
			ctx := t.Context()
			db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text, nick text)`)
			db.MustExecContext(ctx, `CREATE INDEX users_email ON users (email)`)
			db.MustExecContext(ctx, `CREATE UNIQUE INDEX users_nick ON users (nick)`)
			db.MustExecContext(ctx, `INSERT INTO users VALUES (1, 'ada@example.com', 'ada')`)
			require.NoError(t, executor(t, db).Apply(ctx, "steps table", nil))
			before := sqliteCatalog(t, db)

			err := executor(t, db).Apply(ctx, "m", []ddl.Op{c.op})
			if c.name == "AddTable" {
				// Users is users, of other columns: refused.
				require.ErrorIs(t, err, ddl.ErrExists)
			} else {
				// The index there, of the same definition: found, taken as done.
				require.NoError(t, err)
			}
			var created []string
			require.NoError(t, db.SelectContext(ctx, &created, `SELECT object FROM schemashift_ddl_steps WHERE migration = 'm' AND created`))
			assert.Empty(t, created, "the apply recorded an object that was there before as made by it")

			require.NoError(t, executor(t, db).Revert(ctx, "m", []ddl.Op{c.op}))
			assert.Equal(t, before, sqliteCatalog(t, db), "the revert removed an object that was there before the migration")
		})
	}
}
