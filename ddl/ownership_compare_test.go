package ddl_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// Objects there before whose definition differs in what same() does not
// compare: Apply takes them as done (created false), so nothing is dropped,
// but the rollout believes it has what the operation asks for.
func TestDifferingObjectsTakenAsDone(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, setup string
		op          ddl.Op
	}{
		{"column with a collation", `ALTER TABLE users ADD COLUMN nick text COLLATE "C"`, ddl.AddColumn{Table: "users", Column: "nick", Type: "text"}},
		{"column NOT NULL", `ALTER TABLE users ADD COLUMN nick text NOT NULL DEFAULT ''`, ddl.AddColumn{Table: "users", Column: "nick", Type: "text", Default: "'x'"}},
		{"deferrable unique", `ALTER TABLE users ADD CONSTRAINT u UNIQUE (email) DEFERRABLE INITIALLY DEFERRED`, ddl.AddUnique{Name: "u", Table: "users", Columns: []string{"email"}}},
		{"foreign key ON UPDATE CASCADE, deferred", `ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (age) REFERENCES users (id) ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED`,
			ddl.AddForeignKey{Name: "fk", Table: "users", Columns: []string{"age"}, RefTable: "users", RefColumns: []string{"id"}}},
		{"foreign key ON UPDATE CASCADE", `ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (age) REFERENCES users (id) ON UPDATE CASCADE`,
			ddl.AddForeignKey{Name: "fk", Table: "users", Columns: []string{"age"}, RefTable: "users", RefColumns: []string{"id"}}},
		{"foreign key MATCH FULL", `ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (age) REFERENCES users (id) MATCH FULL`,
			ddl.AddForeignKey{Name: "fk", Table: "users", Columns: []string{"age"}, RefTable: "users", RefColumns: []string{"id"}}},
		{"check NO INHERIT", `ALTER TABLE users ADD CONSTRAINT c CHECK (age > 0) NO INHERIT`, ddl.AddCheck{Name: "c", Table: "users", Expr: "age > 0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.DB(t)
			ctx := t.Context()
			db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text, age int)`)
			db.MustExecContext(ctx, c.setup)
			err := executor(t, db).Apply(ctx, "m", []ddl.Op{c.op})
			assert.ErrorIs(t, err, ddl.ErrExists, "%s taken as done", c.name)
		})
	}
}

// Attacks that held, kept as regression tests.
func TestOwnershipHeld(t *testing.T) {
	t.Parallel()
	t.Run("fragments refused", func(t *testing.T) {
		t.Parallel()
		for _, op := range []ddl.Op{
			ddl.AddColumn{Table: "t", Column: "c", Type: "int", Default: "'a'\r--x\r'\n;DROP TABLE victim;--'"},
			ddl.CreateIndex{Name: "i", Table: "t", Columns: []string{"c"}, Where: "c = 'a'\n--x\n'b'"},
			ddl.AddColumn{Table: "t", Column: "c", Type: "int", Default: "1 -/**/- 1"},
			ddl.AddColumn{Table: "t", Column: "c", Type: "int", Default: "1 --\n, ADD COLUMN d int"},
			ddl.AddColumn{Table: "t", Column: "c", Type: "text COLLATE \"C\""},
			ddl.AddColumn{Table: "t", Column: "c", Type: "int", Default: "1 NOT NULL"},
			ddl.AddColumn{Table: "t", Column: "c", Type: "int", Default: "1, ADD COLUMN d int"},
			ddl.AddCheck{Name: "n", Table: "t", Expr: "true) NOT VALID, ADD CONSTRAINT m CHECK (true"},
			ddl.AddCheck{Name: "n", Table: "t", Expr: "c > (SELECT 1)"},
			ddl.AddCheck{Name: "n", Table: "t", Expr: "ARRAY(SELECT 1) IS NOT NULL"},
			ddl.AddTable{Table: "t", Columns: "c int) INHERITS (users"},
			ddl.AddTable{Table: "t", Columns: "LIKE users INCLUDING ALL"},
			ddl.CreateIndex{Name: "i", Table: "t", Columns: []string{"c"}, Where: "c = U&'\\0041'"},
			ddl.CreateIndex{Name: "i", Table: "t", Columns: []string{"c"}, Where: "c = $$x$$"},
			ddl.CreateIndex{Name: "i", Table: "t", Columns: []string{"c"}, Where: "c = e'\\''"},
			ddl.CreateIndex{Name: "i", Table: "t", Columns: []string{"c"}, Where: "c[\"x]\"] = 1"},
			ddl.CreateIndex{Name: "i", Table: "t", Columns: []string{"c"}, Where: "c = 1\v OR true"},
			ddl.CreateIndex{Name: "i", Table: "t", Columns: []string{"c"}, Where: "c = 'it\\'' OR ''=''"},
		} {
			_, err := op.Up(15)
			assert.ErrorIs(t, err, ddl.ErrFragment, "%#v", op)
		}
	})
	// SQLite reads @a(') as one Tcl-style parameter (quote included): the
	// fragment check refuses what SQLite reads as a parameter, so the
	// fragment reads the same on both databases.
	t.Run("sqlite parameter swallowing a quote", func(t *testing.T) {
		t.Parallel()
		db := dbtest.SQLite(t)
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text); CREATE INDEX users_email ON users (email); CREATE TABLE victim (id int)`)
		op := ddl.CreateIndex{Name: "USERS_EMAIL", Table: "users", Columns: []string{"email"}, Where: "@a(');DROP TABLE victim;--')"}
		_, err := op.Up(15)
		require.ErrorIs(t, err, ddl.ErrFragment)
		require.ErrorIs(t, executor(t, db).Apply(ctx, "m", []ddl.Op{op}), ddl.ErrFragment)
		for _, where := range []string{"c = ?", "c = ?1", "c = :name", "c = #a", "c = @a", "c = $a(x)"} {
			_, err := ddl.CreateIndex{Name: "i", Table: "t", Columns: []string{"c"}, Where: where}.Up(15)
			assert.ErrorIs(t, err, ddl.ErrFragment, "%s", where)
		}
		for _, where := range []string{"c::text = 'a'", "tags @> ARRAY[1]", "ARRAY[1] <@ tags", "c = '?:a@b#c'", `"a:b" > 0`, "c[1 : 2] IS NULL"} {
			_, err := ddl.CreateIndex{Name: "i", Table: "t", Columns: []string{"c"}, Where: where}.Up(15)
			assert.NoError(t, err, "%s", where)
		}
		var n int
		require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM sqlite_schema WHERE name = 'victim'`))
		assert.Equal(t, 1, n)
	})
	// The table named with its schema at revert and without at apply: the
	// apply resolved users once, to public.users, so both name one table;
	// n found the column (its revert keeps it), m made it (its revert,
	// naming the table with its schema, drops it).
	t.Run("schema-qualified at revert", func(t *testing.T) {
		t.Parallel()
		db := pgtest.DB(t)
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY)`)
		require.NoError(t, executor(t, db).Apply(ctx, "m", []ddl.Op{ddl.AddColumn{Table: "users", Column: "nick", Type: "text"}}))
		require.NoError(t, executor(t, db).Apply(ctx, "n", []ddl.Op{ddl.AddColumn{Table: "public.users", Column: "nick", Type: "text"}}))
		require.NoError(t, executor(t, db).Revert(ctx, "n", []ddl.Op{ddl.AddColumn{Table: "public.users", Column: "nick", Type: "text"}}))
		assert.True(t, hasColumn(t, db, "public", "users", "nick"))
		require.NoError(t, executor(t, db).Revert(ctx, "m", []ddl.Op{ddl.AddColumn{Table: "public.users", Column: "nick", Type: "text"}}))
		assert.False(t, hasColumn(t, db, "public", "users", "nick"), "m made public.users.nick: its revert drops it")
	})
	// Two migrations one after the other on one object: the second finds
	// it (created false); reverting the second keeps it.
	t.Run("second migration on the same objects", func(t *testing.T) {
		t.Parallel()
		db := pgtest.DB(t)
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text, age int)`)
		ops := []ddl.Op{
			ddl.AddColumn{Table: "users", Column: "nick", Type: "text"},
			ddl.CreateIndex{Name: "users_x", Table: "users", Columns: []string{"email"}},
			ddl.AddCheck{Name: "c", Table: "users", Expr: "age > 0"},
			ddl.AddUnique{Name: "u", Table: "users", Columns: []string{"email"}},
			ddl.SetNotNull{Table: "users", Column: "email"},
		}
		require.NoError(t, executor(t, db).Apply(ctx, "m", ops))
		made := catalog(t, db, "public")
		require.NoError(t, executor(t, db).Apply(ctx, "n", ops))
		require.NoError(t, executor(t, db).Revert(ctx, "n", ops))
		assert.Equal(t, made, catalog(t, db, "public"))
		require.NoError(t, executor(t, db).Apply(ctx, "n", ops))
		require.NoError(t, executor(t, db).Revert(ctx, "n", ops))
		assert.Equal(t, made, catalog(t, db, "public"), "apply, revert, apply, revert of n")
	})
}
