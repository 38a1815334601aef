package ddl_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/ident"
)

// Golden SQLite renderings: plain DDL, a catalog guard where SQLite's
// ALTER TABLE has no IF [NOT] EXISTS, and a note for each safety step
// given up.
func TestSQLiteRenderedSQL(t *testing.T) {
	t.Parallel()
	type stmt struct{ SQL, Guard, Note string }
	const (
		indexNote  = "sqlite: CREATE INDEX without CONCURRENTLY: writers wait for the build"
		dropNote   = "sqlite: DROP COLUMN rewrites the table under the database write lock, and fails while an index, constraint, view or trigger uses the column"
		uniqueNote = "sqlite: unique constraint as a unique index (SQLite cannot add a constraint to an existing table), built without CONCURRENTLY: writers wait for the build"
	)
	cases := []struct {
		op       ddl.Op
		up, down []stmt
	}{
		{ddl.AddColumn{Table: "users", Column: "given_name", Type: "text"},
			[]stmt{{`ALTER TABLE "users" ADD COLUMN "given_name" text`, "skip when users.given_name exists", ""}},
			[]stmt{{`ALTER TABLE "users" DROP COLUMN "given_name"`, "skip when users.given_name is gone", dropNote}}},
		{ddl.AddColumn{Table: "users", Column: "n", Type: "int", Default: "0"},
			[]stmt{{`ALTER TABLE "users" ADD COLUMN "n" int DEFAULT 0`, "skip when users.n exists", ""}}, nil},
		{ddl.AddColumn{Table: "users", Column: "token", Type: "uuid", Default: "gen_random_uuid()", Volatile: true},
			[]stmt{{`ALTER TABLE "users" ADD COLUMN "token" uuid`, "skip when users.token exists",
				"sqlite: column added without its volatile default gen_random_uuid() (SQLite adds a column only with a constant default " +
					"and cannot set one later): new rows get NULL unless written, existing rows are the backfill's"}}, nil},
		{ddl.AddTable{Table: "app.order_totals", Columns: "order_id bigint PRIMARY KEY, amount numeric(12,2)"},
			[]stmt{{`CREATE TABLE IF NOT EXISTS "app"."order_totals" (order_id bigint PRIMARY KEY, amount numeric(12,2))`, "", ""}},
			[]stmt{{`DROP TABLE IF EXISTS "app"."order_totals"`, "", ""}}},
		{ddl.CreateIndex{Name: "users_email", Table: "users", Columns: []string{"email"}, Unique: true, Where: "deleted_at IS NULL"},
			[]stmt{{`CREATE UNIQUE INDEX IF NOT EXISTS "users_email" ON "users" ("email") WHERE deleted_at IS NULL`, "", indexNote}},
			[]stmt{{`DROP INDEX IF EXISTS "users_email"`, "", ""}}},
		{ddl.CreateIndex{Name: "totals_amount", Table: "app.order_totals", Columns: []string{"amount"}},
			[]stmt{{`CREATE INDEX IF NOT EXISTS "app"."totals_amount" ON "order_totals" ("amount")`, "", indexNote}},
			[]stmt{{`DROP INDEX IF EXISTS "app"."totals_amount"`, "", ""}}},
		{ddl.DropIndex{Name: "users_email"}, []stmt{{`DROP INDEX IF EXISTS "users_email"`, "", ""}}, nil},
		{ddl.AddUnique{Name: "users_email_key", Table: "users", Columns: []string{"tenant", "email"}},
			[]stmt{{`CREATE UNIQUE INDEX IF NOT EXISTS "users_email_key" ON "users" ("tenant", "email")`, "", uniqueNote}},
			[]stmt{{`DROP INDEX IF EXISTS "users_email_key"`, "", ""}}},
		{ddl.DropColumn{Table: "users", Column: `full "name"`},
			[]stmt{{`ALTER TABLE "users" DROP COLUMN "full ""name"""`, `skip when users.full "name" is gone`, dropNote}}, nil},
		{ddl.DropTable{Table: "legacy"}, []stmt{{`DROP TABLE IF EXISTS "legacy"`, "", ""}}, nil},
	}
	render := func(o ddl.Op, down bool) []stmt {
		st, err := ddl.RenderSQLite(o, down)
		require.NoError(t, err, o)
		out := make([]stmt, len(st))
		for i, s := range st {
			assert.False(t, s.NoTx, "every SQLite statement runs in its write transaction")
			out[i] = stmt{s.SQL, ddl.Guard(s), s.Note}
		}
		return out
	}
	for _, c := range cases {
		assert.Equal(t, c.up, render(c.op, false), "%s", c.op)
		if c.down != nil {
			assert.Equal(t, c.down, render(c.op, true), "%s", c.op)
		}
	}
	for _, o := range []ddl.Op{ddl.DropColumn{Table: "t", Column: "c"}, ddl.DropTable{Table: "t"}, ddl.DropIndex{Name: "i"}} {
		_, err := ddl.RenderSQLite(o, true)
		assert.ErrorIs(t, err, ddl.ErrIrreversible, "%s", o)
	}
}

// The notes reach the caller three ways: in the plan, through WithNotes
// as each step is applied, and recorded with the step. PostgreSQL gives
// nothing up, so it has none.
func TestSQLiteDegradationIsNoted(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		fixture(t, db)
		sqlite := (db.DriverName() == "sqlite")
		var got []ddl.Note
		e := executor(t, db, ddl.WithNotes(func(_ context.Context, n ddl.Note) { got = append(got, n) }))
		ops := []ddl.Op{
			ddl.AddColumn{Table: "users", Column: "given_name", Type: "text"},
			ddl.CreateIndex{Name: "users_email", Table: "users", Columns: []string{"email"}},
		}
		plan, err := e.Plan(t.Context(), ops)
		require.NoError(t, err)
		require.NoError(t, e.Apply(t.Context(), "m", ops))
		recorded, err := e.Notes(t.Context(), "m")
		require.NoError(t, err)
		if !sqlite {
			for _, s := range plan {
				assert.Empty(t, s.Note, s.SQL)
			}
			assert.Empty(t, got)
			assert.Empty(t, recorded)
			return
		}
		assert.Equal(t, []string{"", "sqlite: CREATE INDEX without CONCURRENTLY: writers wait for the build"}, []string{plan[0].Note, plan[1].Note})
		want := ddl.Note{Migration: "m", Direction: "up", Op: 1, Step: 0, Statement: `CREATE INDEX IF NOT EXISTS "users_email" ON "users" ("email")`,
			Text: "sqlite: CREATE INDEX without CONCURRENTLY: writers wait for the build"}
		assert.Equal(t, []ddl.Note{want}, got)
		assert.Equal(t, []ddl.Note{want}, recorded)
		assert.Equal(t, `up m: sqlite: CREATE INDEX without CONCURRENTLY: writers wait for the build (CREATE INDEX IF NOT EXISTS "users_email" ON "users" ("email"))`,
			want.String(), "one line for an audit trail")
		var note string
		require.NoError(t, db.GetContext(t.Context(), &note, `SELECT note FROM schemashift_ddl_steps WHERE migration = 'm' AND op = 1`))
		assert.Equal(t, want.Text, note)

		// A recorded step does not run, nor report, again.
		require.NoError(t, e.Apply(t.Context(), "m", ops))
		assert.Len(t, got, 1)

		// Dropping a column gives up rewriting it without a long lock; an
		// add found already done is recorded as skipped.
		got = nil
		require.NoError(t, e.Apply(t.Context(), "again", append(ops, ddl.AddColumn{Table: "users", Column: "token", Type: "uuid",
			Default: "gen_random_uuid()", Volatile: true})))
		require.Len(t, got, 2)
		assert.True(t, got[0].Skipped, "the index m made is found there, as this op makes it: skipped (and not this migration's to drop)")
		assert.Contains(t, got[1].Text, "without its volatile default gen_random_uuid()")
		var skipped []bool
		require.NoError(t, db.SelectContext(t.Context(), &skipped, `SELECT skipped FROM schemashift_ddl_steps
			WHERE migration = 'again' AND direction = 'up' ORDER BY op, step`))
		assert.Equal(t, []bool{true, true, false}, skipped, "the column and the index already there are skipped; the new column runs")
		require.NoError(t, e.Apply(t.Context(), "third", ops[:1]))
		got = nil
		require.NoError(t, e.Revert(t.Context(), "m", ops))
		require.Len(t, got, 1)
		assert.Equal(t, "down", got[0].Direction)
		assert.Contains(t, got[0].Text, "DROP COLUMN rewrites the table")
		recorded, err = e.Notes(t.Context(), "m")
		require.NoError(t, err)
		assert.Equal(t, got, recorded, "the up notes went with the up record")

		got = nil
		require.NoError(t, executor(t, db, ddl.WithNotes(func(_ context.Context, n ddl.Note) { got = append(got, n) })).
			Revert(t.Context(), "third", ops[:1]))
		require.Len(t, got, 1)
		assert.True(t, got[0].Skipped, "the column was already gone: the guard skipped the drop")
	})
}

// A constraint SQLite cannot add to an existing table fails the whole run
// before anything runs, and says what to do instead.
func TestSQLiteRefusesConstraintsOnExistingTables(t *testing.T) {
	t.Parallel()
	db := fixture(t, dbtest.SQLite(t))
	before := schemaOf(t, db)
	e := executor(t, db)
	for _, o := range []ddl.Op{
		ddl.AddForeignKey{Name: "orders_user", Table: "orders", Columns: []string{"user_id"}, RefTable: "users", RefColumns: []string{"id"}},
		ddl.AddCheck{Name: "age_positive", Table: "users", Expr: "age > 0"},
		ddl.SetNotNull{Table: "users", Column: "email"},
	} {
		ops := []ddl.Op{ddl.AddColumn{Table: "users", Column: "given_name", Type: "text"}, o}
		err := e.Apply(t.Context(), "m", ops)
		require.ErrorIs(t, err, ddl.ErrUnsupported, "%s", o)
		assert.ErrorContains(t, err, "declare it when the table is created")
		assert.ErrorContains(t, err, o.String(), "the error names the operation")
		assert.ErrorIs(t, e.Revert(t.Context(), "m", ops), ddl.ErrUnsupported)
		_, err = e.Plan(t.Context(), ops)
		assert.ErrorIs(t, err, ddl.ErrUnsupported)
	}
	assert.Equal(t, before, schemaOf(t, db), "not even the column before it was added")
	exists, err := dbtest.Dialect(t, db).TableExists(t.Context(), db, ident.Table{Name: "schemashift_ddl_steps"})
	require.NoError(t, err)
	assert.False(t, exists, "nothing was created")
	notes, err := e.Notes(t.Context(), "m")
	require.NoError(t, err)
	assert.Empty(t, notes, "no steps table, no notes")
}

// Names and fragments are checked for SQLite as for PostgreSQL, before the
// question of support: hostile input is refused as invalid and changes
// nothing.
func TestSQLiteOpsRefuseHostileInput(t *testing.T) {
	t.Parallel()
	db := fixture(t, dbtest.SQLite(t))
	before := schemaOf(t, db)
	e := executor(t, db)
	for _, o := range []ddl.Op{
		ddl.AddColumn{Table: "users", Column: "a", Type: "int; DROP TABLE users"},
		ddl.AddColumn{Table: "users", Column: "a", Type: "int", Default: "0 -- x"},
		ddl.AddColumn{Table: "users", Column: "a", Type: "uuid", Default: "random()); DROP TABLE users; --", Volatile: true},
		ddl.AddColumn{Table: "", Column: "a", Type: "int"},
		ddl.AddColumn{Table: "users", Column: strings.Repeat("c", 64), Type: "int"},
		ddl.AddCheck{Name: "c", Table: "users", Expr: "a > 0) NOT VALID; DROP TABLE users; --"},
		ddl.AddForeignKey{Name: "fk", Table: "orders", Columns: []string{"user_id"}, RefTable: strings.Repeat("r", 64), RefColumns: []string{"id"}},
		ddl.SetNotNull{Table: "users", Column: ""},
		ddl.CreateIndex{Name: "i", Table: "users"},
		ddl.CreateIndex{Name: "i", Table: "users", Columns: []string{"email"}, Where: "1; DROP TABLE users"},
		ddl.CreateIndex{Name: "i", Table: ".users", Columns: []string{"email"}},
		ddl.AddUnique{Name: strings.Repeat("u", 64), Table: "users", Columns: []string{"email"}},
		ddl.DropColumn{Table: "users", Column: "a\x00b"},
		ddl.AddTable{Table: "t", Columns: "a int); DROP TABLE users; CREATE TABLE x (b int"},
	} {
		_, err := ddl.RenderSQLite(o, false)
		assert.ErrorIs(t, err, ddl.ErrInvalidOp, "%s", o)
		assert.ErrorIs(t, e.Apply(t.Context(), "hostile", []ddl.Op{o}), ddl.ErrInvalidOp, "%s", o)
	}
	byValue, err := ddl.RenderSQLite(ddl.CreateIndex{Name: "i", Table: "users", Columns: []string{"email"}}, false)
	require.NoError(t, err)
	byPointer, err := ddl.RenderSQLite(&ddl.CreateIndex{Name: "i", Table: "users", Columns: []string{"email"}}, false)
	require.NoError(t, err, "an operation passed by pointer has its SQLite form too")
	assert.Equal(t, byValue, byPointer)
	_, err = ddl.RenderSQLite(ddl.AddColumn{Table: "users", Column: `a"; DROP TABLE users; --`, Type: "text"}, true)
	require.NoError(t, err, "a strange name is quoted, not refused")
	assert.Equal(t, before, schemaOf(t, db))
}

// auditLog is an operation of the caller's own, with only a PostgreSQL
// form.
type auditLog struct{}

func (auditLog) Up(int) ([]ddl.Statement, error) {
	return []ddl.Statement{{SQL: `CREATE TABLE IF NOT EXISTS audit_log (id bigint PRIMARY KEY, at timestamptz)`}}, nil
}

func (auditLog) Down(int) ([]ddl.Statement, error) {
	return []ddl.Statement{{SQL: `DROP TABLE IF EXISTS audit_log`}}, nil
}

func (auditLog) String() string { return "add audit log" }

// portableAuditLog also has a plain form.
type portableAuditLog struct{ auditLog }

func (portableAuditLog) PlainUp() ([]ddl.Statement, error) {
	return []ddl.Statement{{SQL: `CREATE TABLE IF NOT EXISTS audit_log (id integer PRIMARY KEY, at text)`, Note: "plain: timestamps as text"}}, nil
}

func (portableAuditLog) PlainDown() ([]ddl.Statement, error) {
	return []ddl.Statement{{SQL: `DROP TABLE IF EXISTS audit_log`}}, nil
}

var _ ddl.PlainOp = portableAuditLog{}

// A caller's operation runs on SQLite through its PlainOp form, and
// without one fails clearly, before anything runs, instead of running
// PostgreSQL's DDL there; on PostgreSQL its Up and Down run.
func TestUserOpsOnSQLite(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		d, table := dbtest.Dialect(t, db), ident.Table{Name: "audit_log"}
		plain := dbtest.IsSQLite(t, db)
		e := executor(t, db)
		err := e.Apply(t.Context(), "audit", []ddl.Op{auditLog{}})
		if plain {
			require.ErrorIs(t, err, ddl.ErrUnsupported)
			assert.ErrorContains(t, err, "ddl_test.auditLog has no form on sqlite (it does not implement ddl.PlainOp)")
		} else {
			require.NoError(t, err)
			exists, err := d.TableExists(t.Context(), db, table)
			require.NoError(t, err)
			assert.True(t, exists)
			require.NoError(t, e.Revert(t.Context(), "audit", []ddl.Op{auditLog{}}))
		}
		exists, err := d.TableExists(t.Context(), db, table)
		require.NoError(t, err)
		assert.False(t, exists)

		require.NoError(t, e.Apply(t.Context(), "portable", []ddl.Op{portableAuditLog{}}))
		cols, err := d.Columns(t.Context(), db, table)
		require.NoError(t, err)
		require.Len(t, cols, 2)
		notes, err := e.Notes(t.Context(), "portable")
		require.NoError(t, err)
		if plain {
			assert.True(t, strings.EqualFold(cols[0].Type, "integer"), "the plain form ran, not %s", cols[0].Type)
			require.Len(t, notes, 1)
			assert.Equal(t, "plain: timestamps as text", notes[0].Text)
		} else {
			assert.Equal(t, "bigint", cols[0].Type)
			assert.Empty(t, notes)
		}
		require.NoError(t, e.Revert(t.Context(), "portable", []ddl.Op{portableAuditLog{}}))
		exists, err = d.TableExists(t.Context(), db, table)
		require.NoError(t, err)
		assert.False(t, exists)
	})
}

// A failed index build on SQLite rolls back with its transaction: no
// half-built index is left to be mistaken for the real one, and the run,
// once the data is fixed, builds it.
func TestSQLiteFailedIndexBuildLeavesNothing(t *testing.T) {
	t.Parallel()
	db := fixture(t, dbtest.SQLite(t))
	db.MustExecContext(t.Context(), `UPDATE users SET email = 'dup@x' WHERE id IN (1, 2)`)
	op := []ddl.Op{ddl.CreateIndex{Name: "users_email_unique", Table: "users", Columns: []string{"email"}, Unique: true}}
	err := executor(t, db).Apply(t.Context(), "idx", op)
	require.ErrorContains(t, err, "UNIQUE constraint failed")
	unique := func() bool {
		idx, err := dbtest.Dialect(t, db).Indexes(t.Context(), db, ident.Table{Name: "users"})
		require.NoError(t, err)
		for _, i := range idx {
			if i.Name == "users_email_unique" {
				return i.Unique
			}
		}
		return false
	}
	require.False(t, unique(), "no index left behind")

	db.MustExecContext(t.Context(), `UPDATE users SET email = 'other@x' WHERE id = 2`)
	require.NoError(t, executor(t, db).Apply(t.Context(), "idx", op))
	assert.True(t, unique())
}

// A steps table from before notes were recorded gains the column, keeping
// its records: a migration applied by an older version is not run again.
func TestStepsTableGainsNotes(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		fixture(t, db)
		db.MustExecContext(t.Context(), `CREATE TABLE schemashift_ddl_steps (
			migration  text NOT NULL,
			direction  text NOT NULL,
			op         integer NOT NULL,
			step       integer NOT NULL,
			statement  text NOT NULL,
			skipped    boolean NOT NULL DEFAULT false,
			applied_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
			PRIMARY KEY (migration, direction, op, step)
		)`)
		// Recorded as applied, though it never ran: the executor must trust
		// the record and not run it.
		db.MustExecContext(t.Context(), `INSERT INTO schemashift_ddl_steps (migration, direction, op, step, statement) VALUES ('old', 'up', 0, 0, 'x')`)
		ops := []ddl.Op{ddl.AddColumn{Table: "users", Column: "given_name", Type: "text"}, ddl.CreateIndex{Name: "users_email", Table: "users", Columns: []string{"email"}}}
		require.NoError(t, executor(t, db).Apply(t.Context(), "old", ops))
		applied := schemaOf(t, db)
		assert.NotContains(t, applied, "given_name", "the recorded step did not run again")
		assert.Contains(t, applied, "users_email:true", "the unrecorded one ran")
		var notes []string
		require.NoError(t, db.SelectContext(t.Context(), &notes, `SELECT note FROM schemashift_ddl_steps WHERE migration = 'old' ORDER BY op`))
		want := []string{"", ""}
		if db.DriverName() == "sqlite" {
			want[1] = "sqlite: CREATE INDEX without CONCURRENTLY: writers wait for the build"
		}
		assert.Equal(t, want, notes)
	})
}
