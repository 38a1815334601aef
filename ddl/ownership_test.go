package ddl_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// A revert undoes only what its migration's apply made: these tests set
// up every object an operation makes by hand first, as a schema that
// already has it would, and show that apply then revert leaves it, its
// definition and its rows exactly as they were.

// sqliteCatalog is SQLite's whole schema, one line per object, but the
// executor's own table.
func sqliteCatalog(t *testing.T, db *sqlx.DB) []string {
	t.Helper()
	var out []string
	require.NoError(t, db.SelectContext(t.Context(), &out, `SELECT type || ' ' || name || ' on ' || tbl_name || ': ' || coalesce(sql, '')
		FROM sqlite_schema WHERE tbl_name <> 'schemashift_ddl_steps' ORDER BY type, name`))
	return out
}

// catalogOf is the catalog of everything the tests' operations touch.
func catalogOf(t *testing.T, db *sqlx.DB) []string {
	t.Helper()
	if db.DriverName() == "sqlite" {
		return sqliteCatalog(t, db)
	}
	return catalog(t, db, "public")
}

// rowsOf is every row of the tables, as text.
func rowsOf(t *testing.T, db *sqlx.DB, tables ...string) []string {
	t.Helper()
	var out []string
	for _, tbl := range tables {
		var rows []string
		require.NoError(t, db.SelectContext(t.Context(), &rows, `SELECT CAST(id AS text) || '|' || coalesce(email, 'NULL') || '|' || coalesce(nick, 'NULL')
			FROM `+tbl+` ORDER BY id`))
		out = append(out, rows...)
	}
	return out
}

// existing sets up, by hand, each object the returned operations make,
// with the operation's definition, and rows in every table.
func existing(t *testing.T, db *sqlx.DB) []ddl.Op {
	t.Helper()
	ctx := t.Context()
	sqlite := db.DriverName() == "sqlite"
	for _, q := range []string{
		`CREATE TABLE parent (id int PRIMARY KEY)`,
		`INSERT INTO parent VALUES (1)`,
		`CREATE TABLE users (id int PRIMARY KEY, email text, nick text DEFAULT 'x', age int, ref int, nn text NOT NULL)`,
		`INSERT INTO users (id, email, nick, age, ref, nn) VALUES (1, 'ada@example.com', 'ada', 36, 1, 'a'), (2, 'alan@example.com', NULL, 41, 1, 'b')`,
		`CREATE TABLE totals (id bigint PRIMARY KEY, email text, nick text)`,
		`INSERT INTO totals VALUES (7, 't@example.com', 'tot')`,
		`CREATE INDEX users_email ON users (email) WHERE email IS NOT NULL`,
		`CREATE UNIQUE INDEX users_nick ON users (nick)`,
	} {
		db.MustExecContext(ctx, q)
	}
	ops := []ddl.Op{
		ddl.AddColumn{Table: "users", Column: "email", Type: "text"},
		ddl.AddColumn{Table: "users", Column: "nick", Type: "text", Default: "'x'"},
		ddl.AddTable{Table: "totals", Columns: "id bigint PRIMARY KEY, email text, nick text"},
		ddl.CreateIndex{Name: "users_email", Table: "users", Columns: []string{"email"}, Where: "email IS NOT NULL"},
	}
	if sqlite {
		return append(ops, ddl.AddUnique{Name: "users_nick", Table: "users", Columns: []string{"nick"}})
	}
	db.MustExecContext(ctx, `ALTER TABLE users ADD COLUMN tok uuid DEFAULT gen_random_uuid();
		ALTER TABLE users ADD CONSTRAINT users_ref FOREIGN KEY (ref) REFERENCES parent (id);
		ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0);
		ALTER TABLE users ADD CONSTRAINT users_nick_key UNIQUE (nick)`)
	return append(ops,
		ddl.AddColumn{Table: "users", Column: "tok", Type: "uuid", Default: "gen_random_uuid()", Volatile: true},
		ddl.AddForeignKey{Name: "users_ref", Table: "users", Columns: []string{"ref"}, RefTable: "parent", RefColumns: []string{"id"}},
		ddl.AddCheck{Name: "age_positive", Table: "users", Expr: "age > 0"},
		ddl.SetNotNull{Table: "users", Column: "nn"},
		ddl.SetNotNull{Table: "users", Column: "id"},
		ddl.AddUnique{Name: "users_nick_key", Table: "users", Columns: []string{"nick"}},
	)
}

// Each operation whose object was there before: applied (skipped, every
// step), then reverted, changes nothing; nor do all of them at once.
func TestRevertKeepsWhatWasThereBefore(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		ops := existing(t, db)
		require.NoError(t, executor(t, db).Apply(ctx, "steps table", nil))
		before, rows := catalogOf(t, db), rowsOf(t, db, "users", "totals")
		var kept []ddl.Note
		e := executor(t, db, ddl.WithNotes(func(_ context.Context, n ddl.Note) {
			if n.Direction == "down" {
				kept = append(kept, n)
			}
		}))
		for i, op := range ops {
			m := fmt.Sprint("pre", i)
			require.NoError(t, e.Apply(ctx, m, []ddl.Op{op}), "%s", op)
			assert.Equal(t, before, catalogOf(t, db), "%s applied over what was there", op)
			var ran int
			require.NoError(t, db.GetContext(ctx, &ran, `SELECT count(*) FROM schemashift_ddl_steps WHERE migration = $1 AND NOT skipped`, m))
			assert.Zero(t, ran, "%s: a step ran", op)
			kept = nil
			require.NoError(t, e.Revert(ctx, m, []ddl.Op{op}), "%s", op)
			assert.Equal(t, before, catalogOf(t, db), "%s reverted: it removed what was there before", op)
			assert.Equal(t, rows, rowsOf(t, db, "users", "totals"), "%s reverted: rows lost", op)
			require.NotEmpty(t, kept, "%s: the revert says what it kept", op)
			for _, n := range kept {
				assert.True(t, n.Skipped)
				assert.Contains(t, n.Text, "kept: not made by this migration's apply")
			}
		}
		require.NoError(t, e.Apply(ctx, "all", ops))
		require.NoError(t, e.Revert(ctx, "all", ops))
		assert.Equal(t, before, catalogOf(t, db), "an apply that found everything there, reverted")
		assert.Equal(t, rows, rowsOf(t, db, "users", "totals"))

		// The same operations on objects they made themselves are undone:
		// the test can tell the two apart.
		for _, q := range []string{`DROP TABLE totals`, `DROP INDEX users_email`, `ALTER TABLE users DROP COLUMN email`} {
			db.MustExecContext(ctx, q)
		}
		gone := catalogOf(t, db)
		require.NoError(t, e.Apply(ctx, "made", ops[:4]))
		assert.NotEqual(t, gone, catalogOf(t, db))
		require.NoError(t, e.Revert(ctx, "made", ops[:4]))
		assert.Equal(t, gone, catalogOf(t, db), "what the apply made, the revert removed")
	})
}

// An object of the operation's name with another definition is neither
// taken as done nor changed: the apply fails with ErrExists, naming it,
// and the catalog is as it was.
func TestApplyRefusesAnObjectOfAnotherDefinition(t *testing.T) {
	t.Parallel()
	type refusal struct {
		name  string
		setup string
		op    ddl.Op
		want  string // in the error
	}
	common := []refusal{
		{"column of another type", `ALTER TABLE users ADD COLUMN score int`,
			ddl.AddColumn{Table: "users", Column: "score", Type: "text"}, `column "score" on users is there, not made by this migration, and is of type`},
		{"column without the default", `ALTER TABLE users ADD COLUMN score int`,
			ddl.AddColumn{Table: "users", Column: "score", Type: "int", Default: "0"}, `has a default: false, not true`},
		{"index on other columns", `CREATE INDEX users_x ON users (age)`,
			ddl.CreateIndex{Name: "users_x", Table: "users", Columns: []string{"email"}}, `index "users_x" on users`},
		{"index not unique", `CREATE INDEX users_x ON users (email)`,
			ddl.CreateIndex{Name: "users_x", Table: "users", Columns: []string{"email"}, Unique: true}, `index "users_x" on users`},
		{"index with another predicate", `CREATE INDEX users_x ON users (email) WHERE age > 1`,
			ddl.CreateIndex{Name: "users_x", Table: "users", Columns: []string{"email"}, Where: "age > 2"}, `index "users_x" on users`},
		{"partial index for a full one", `CREATE INDEX users_x ON users (email) WHERE age > 1`,
			ddl.CreateIndex{Name: "users_x", Table: "users", Columns: []string{"email"}}, `index "users_x" on users`},
		{"table of other columns", `CREATE TABLE totals (id bigint PRIMARY KEY, amount int)`,
			ddl.AddTable{Table: "totals", Columns: "id bigint PRIMARY KEY, amount numeric(12,2)"}, `table totals is there`},
		{"index of another table", `CREATE TABLE other (email text); CREATE INDEX users_x ON other (email)`,
			ddl.CreateIndex{Name: "users_x", Table: "users", Columns: []string{"email"}}, `index "users_x" on users`},
	}
	pgOnly := []refusal{
		{"numeric of another precision", `ALTER TABLE users ADD COLUMN amount numeric(10,0)`,
			ddl.AddColumn{Table: "users", Column: "amount", Type: "numeric(12,2)"}, `is of type numeric(10,0), not numeric(12,2)`},
		{"check of another expression", `ALTER TABLE users ADD CONSTRAINT c CHECK (age > 1)`,
			ddl.AddCheck{Name: "c", Table: "users", Expr: "age > 0"}, `check constraint "c" on users`},
		{"check that is a foreign key", `ALTER TABLE users ADD CONSTRAINT c FOREIGN KEY (id) REFERENCES users (id)`,
			ddl.AddCheck{Name: "c", Table: "users", Expr: "age > 0"}, `check constraint "c" on users`},
		{"foreign key to another column", `ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (age) REFERENCES users (id) NOT VALID`,
			ddl.AddForeignKey{Name: "fk", Table: "users", Columns: []string{"id"}, RefTable: "users", RefColumns: []string{"id"}}, `foreign key "fk" on users`},
		{"foreign key without the cascade", `ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (id) REFERENCES users (id)`,
			ddl.AddForeignKey{Name: "fk", Table: "users", Columns: []string{"id"}, RefTable: "users", RefColumns: []string{"id"}, OnDeleteCascading: true}, `foreign key "fk" on users`},
		{"unique on other columns", `ALTER TABLE users ADD CONSTRAINT u UNIQUE (email)`,
			ddl.AddUnique{Name: "u", Table: "users", Columns: []string{"age"}}, `index "u" on users`},
		{"unique taking over an index made by hand", `CREATE UNIQUE INDEX u ON users (email)`,
			ddl.AddUnique{Name: "u", Table: "users", Columns: []string{"email"}}, `index "u" on users is there, not made by this migration, and the operation would take it over`},
		{"an INVALID index made by another", `INSERT INTO users (id, email) VALUES (10, 'dup'), (11, 'dup')`,
			ddl.CreateIndex{Name: "u", Table: "users", Columns: []string{"email"}, Unique: true}, `INVALID`},
		{"a view of the table's name", `CREATE VIEW totals AS SELECT 1 AS id`,
			ddl.AddTable{Table: "totals", Columns: "id int"}, `table totals is there, not made by this migration, and is a relation of kind "v"`},
	}
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		sqlite := db.DriverName() == "sqlite"
		cases := common
		if !sqlite {
			cases = append(cases, pgOnly...)
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := t.Context()
				if sqlite {
					for _, tbl := range []string{"users", "other", "totals"} {
						db.MustExecContext(ctx, `DROP TABLE IF EXISTS `+tbl)
					}
				} else {
					db.MustExecContext(ctx, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`)
				}
				db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text, age int)`)
				db.MustExecContext(ctx, `INSERT INTO users VALUES (1, 'ada@example.com', 36)`)
				for _, q := range strings.Split(c.setup, "; ") {
					db.MustExecContext(ctx, q)
				}
				if c.want == "INVALID" {
					// A failed concurrent build of another migration's.
					require.Error(t, executor(t, db).Apply(ctx, "someone else "+c.name, []ddl.Op{c.op}))
					db.MustExecContext(ctx, `DELETE FROM users WHERE id = 11`)
				}
				require.NoError(t, executor(t, db).Apply(ctx, "steps table", nil))
				before := catalogOf(t, db)
				err := executor(t, db).Apply(ctx, "m "+c.name, []ddl.Op{c.op})
				require.ErrorIs(t, err, ddl.ErrExists)
				want := c.want
				if !sqlite {
					// The table named without its schema is resolved once,
					// and named with it.
					want = strings.NewReplacer(" on users", " on public.users", "table totals", "table public.totals").Replace(want)
				}
				assert.ErrorContains(t, err, want)
				assert.Equal(t, before, catalogOf(t, db), "the catalog changed")
				require.NoError(t, executor(t, db).Revert(ctx, "m "+c.name, []ddl.Op{c.op}))
				assert.Equal(t, before, catalogOf(t, db), "the revert of the refused apply changed the catalog")
			})
		}
	})
}

var errKilled = errors.New("killed")

// killAt returns a hook that fails once, at op's step.
func killAt(op, step int) func(int, int) error {
	fired := false
	return func(o, s int) error {
		if o == op && s == step && !fired {
			fired = true
			return errKilled
		}
		return nil
	}
}

// A run killed at each line around a statement that makes an object:
// after its record that the object was not there (intent) and before the
// statement, and after the statement and before its step is recorded
// done. Resumed, or reverted straight away by a new executor, the
// executor tells what the cut-off attempt made (and removes it) from what
// was there before it (and keeps it). CREATE INDEX CONCURRENTLY runs
// outside a transaction, so its intent is committed before it and the
// second window leaves a built index with only the intent recorded.
func TestCrashAroundAStatementThatMakesAnObject(t *testing.T) {
	t.Parallel()
	type window struct {
		name string
		set  func(*ddl.Executor, func(int, int) error)
	}
	windows := []window{{"after the intent", ddl.OnIntent}, {"after the statement", ddl.OnStatement}}
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text, age int)`)
		db.MustExecContext(ctx, `INSERT INTO users VALUES (1, 'ada@example.com', 36)`)
		require.NoError(t, executor(t, db).Apply(ctx, "steps table", nil))
		ops := []ddl.Op{
			ddl.AddColumn{Table: "users", Column: "nick", Type: "text"},
			ddl.CreateIndex{Name: "users_email", Table: "users", Columns: []string{"email"}},
			ddl.AddUnique{Name: "users_age", Table: "users", Columns: []string{"age"}},
			ddl.AddTable{Table: "totals", Columns: "id int PRIMARY KEY"},
		}
		if db.DriverName() != "sqlite" {
			ops = append(ops, ddl.AddCheck{Name: "age_positive", Table: "users", Expr: "age > 0"}, ddl.SetNotNull{Table: "users", Column: "email"})
		}
		before := catalogOf(t, db)
		for _, w := range windows {
			for i, op := range ops {
				plan, err := executor(t, db).Plan(ctx, []ddl.Op{op})
				require.NoError(t, err)
				for step := range plan {
					for _, then := range []string{"resume", "revert"} {
						m := fmt.Sprintf("%s %d.%d %s %s", w.name, i, step, then, op)
						e := executor(t, db)
						w.set(e, killAt(0, step))
						err := e.Apply(ctx, m, []ddl.Op{op})
						if !errors.Is(err, errKilled) {
							// The step makes nothing that needs an intent
							// (a VALIDATE): no window there.
							require.NoError(t, err, m)
							require.NoError(t, executor(t, db).Revert(ctx, m, []ddl.Op{op}), m)
							require.Equal(t, before, catalogOf(t, db), m)
							continue
						}
						if then == "resume" {
							require.NoError(t, executor(t, db).Apply(ctx, m, []ddl.Op{op}), m)
							assert.NotEqual(t, before, catalogOf(t, db), "%s: resumed, and nothing made", m)
						}
						require.NoError(t, executor(t, db).Revert(ctx, m, []ddl.Op{op}), m)
						require.Equal(t, before, catalogOf(t, db), "%s: what the killed attempt made is left behind", m)
					}
				}
			}
		}

		// The same windows over objects there before the run: every
		// object is kept, the index included though it is found in the
		// state the cut-off build leaves.
		db.MustExecContext(ctx, `ALTER TABLE users ADD COLUMN nick text`)
		db.MustExecContext(ctx, `CREATE INDEX users_email ON users (email)`)
		db.MustExecContext(ctx, `CREATE TABLE totals (id int PRIMARY KEY)`)
		pre := catalogOf(t, db)
		for _, w := range windows {
			for i, op := range ops[:2] {
				m := fmt.Sprintf("there before %s %d", w.name, i)
				e := executor(t, db)
				w.set(e, killAt(0, 0))
				require.NoError(t, e.Apply(ctx, m, []ddl.Op{op}), "nothing runs, so nothing is killed")
				require.NoError(t, executor(t, db).Revert(ctx, m, []ddl.Op{op}))
				assert.Equal(t, pre, catalogOf(t, db), "%s: an object there before was removed", m)
			}
		}
	})
}

// An INVALID index left by this migration's own failed build is dropped
// and built again on resume, and dropped by its revert; the same INVALID
// index found by a migration that did not build it is refused (not
// dropped: it is not this migration's).
func TestInvalidIndexIsOnlyRebuiltByItsMigration(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text); INSERT INTO users VALUES (1, 'dup'), (2, 'dup')`)
	require.NoError(t, executor(t, db).Apply(ctx, "steps table", nil))
	before := catalog(t, db, "public")
	op := []ddl.Op{ddl.CreateIndex{Name: "users_email", Table: "users", Columns: []string{"email"}, Unique: true}}
	require.Error(t, executor(t, db).Apply(ctx, "mine", op))
	invalid := catalog(t, db, "public")
	assert.Contains(t, strings.Join(invalid, "\n"), "index public.users_email on users valid=f")

	err := executor(t, db).Apply(ctx, "theirs", op)
	require.ErrorIs(t, err, ddl.ErrExists)
	assert.ErrorContains(t, err, "INVALID")
	assert.Equal(t, invalid, catalog(t, db, "public"), "another migration's INVALID index dropped")

	db.MustExecContext(ctx, `UPDATE users SET email = 'other' WHERE id = 2`)
	require.NoError(t, executor(t, db).Apply(ctx, "mine", op))
	assert.Contains(t, strings.Join(catalog(t, db, "public"), "\n"), "index public.users_email on users valid=t")
	require.NoError(t, executor(t, db).Revert(ctx, "mine", op))
	assert.Equal(t, before, catalog(t, db, "public"))
}

// A steps table from before objects were recorded gains the columns, and
// a migration applied then is not reverted blind: its rows do not say
// what it made, so what it added is kept (and the revert says so), while
// a migration applied after the upgrade reverts as usual.
func TestStepsFromBeforeOwnershipAreKept(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		ts := "timestamptz NOT NULL DEFAULT now()"
		if db.DriverName() == "sqlite" {
			ts = "timestamp NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))"
		}
		db.MustExecContext(ctx, `CREATE TABLE schemashift_ddl_steps (migration text NOT NULL, direction text NOT NULL, op integer NOT NULL,
			step integer NOT NULL, statement text NOT NULL, skipped boolean NOT NULL DEFAULT false, note text NOT NULL DEFAULT '',
			applied_at `+ts+`, PRIMARY KEY (migration, direction, op, step))`)
		db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text)`)
		// What the old executor did for AddColumn users.nick: the column and its row.
		db.MustExecContext(ctx, `ALTER TABLE users ADD COLUMN nick text`)
		db.MustExecContext(ctx, `INSERT INTO users VALUES (1, 'ada@example.com', 'ada')`)
		db.MustExecContext(ctx, `INSERT INTO schemashift_ddl_steps (migration, direction, op, step, statement)
			VALUES ('old', 'up', 0, 0, 'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "nick" text')`)
		op := []ddl.Op{ddl.AddColumn{Table: "users", Column: "nick", Type: "text"}}

		var notes []ddl.Note
		e := executor(t, db, ddl.WithNotes(func(_ context.Context, n ddl.Note) { notes = append(notes, n) }))
		require.NoError(t, e.Apply(ctx, "old", op), "recorded: nothing runs")
		require.NoError(t, e.Revert(ctx, "old", op))
		var nick string
		require.NoError(t, db.GetContext(ctx, &nick, `SELECT nick FROM users WHERE id = 1`), "the column the old record does not prove ours is gone")
		assert.Equal(t, "ada", nick)
		require.Len(t, notes, 1)
		assert.Contains(t, notes[0].Text, "applied by an executor that did not record which objects it made")

		op = []ddl.Op{ddl.AddColumn{Table: "users", Column: "given", Type: "text"}}
		require.NoError(t, e.Apply(ctx, "new", op))
		require.NoError(t, e.Revert(ctx, "new", op))
		assert.NotContains(t, strings.Join(catalogOf(t, db), "\n"), "given", "a migration recorded by this executor reverts")
	})
}
