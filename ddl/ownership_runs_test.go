package ddl_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/pgtest"
)

func hasColumn(t *testing.T, db *sqlx.DB, schema, table, column string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, db.GetContext(t.Context(), &ok, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 AND column_name = $3)`, schema, table, column))
	return ok
}

// A revert cut off after its first drop leaves the apply's 'up' rows in
// place (they are deleted only when a run of the other direction ends),
// so an Apply of the same migration then finds every step recorded done,
// runs nothing, reports success, and deletes the revert's rows: the
// column the revert dropped is missing, yet the migration is "applied".
// If another migration made a column of that name in between, the next
// revert of the first takes it for its own (its stale 'up' row says
// created) and drops it.
func TestRevertCutOffThenApply(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY)`)
	m := []ddl.Op{
		ddl.AddColumn{Table: "users", Column: "a", Type: "text"},
		ddl.AddColumn{Table: "users", Column: "b", Type: "text"},
	}
	require.NoError(t, executor(t, db).Apply(ctx, "m", m))
	e := executor(t, db)
	ddl.OnStep(e, killAt(0, 0)) // the revert runs b's drop first, then a's
	require.ErrorIs(t, e.Revert(ctx, "m", m), errKilled)
	require.False(t, hasColumn(t, db, "public", "users", "b"))

	// The operator rolls forward again instead of finishing the revert.
	require.NoError(t, executor(t, db).Apply(ctx, "m", m))
	assert.True(t, hasColumn(t, db, "public", "users", "b"), "Apply reported success, but the column b it adds is not there")

	// Another migration adds a column b of its own (it is absent, so it
	// makes it and is recorded as its maker).
	db.MustExecContext(ctx, `ALTER TABLE users DROP COLUMN IF EXISTS b`)
	n := []ddl.Op{ddl.AddColumn{Table: "users", Column: "b", Type: "text"}}
	require.NoError(t, executor(t, db).Apply(ctx, "n", n))
	db.MustExecContext(ctx, `INSERT INTO users (id, b) VALUES (1, 'n''s data')`)

	require.NoError(t, executor(t, db).Revert(ctx, "m", m))
	assert.True(t, hasColumn(t, db, "public", "users", "b"), "m's revert dropped column b, which migration n made (and its data)")
}

// The mirror cycle: apply, revert (its 'down' rows stay), apply again cut
// off after its first statement. The revert then finds every 'down' step
// recorded done from the previous revert, runs nothing and succeeds, and
// deletes the 'up' rows: what the cut-off apply made is left behind and
// no record says whose it is any more (a later apply takes it as there
// before, and no revert ever removes it).
func TestApplyCutOffAfterARevert(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY)`)
	require.NoError(t, executor(t, db).Apply(ctx, "steps table", nil))
	before := catalog(t, db, "public")
	m := []ddl.Op{
		ddl.AddColumn{Table: "users", Column: "a", Type: "text"},
		ddl.AddColumn{Table: "users", Column: "b", Type: "text"},
	}
	require.NoError(t, executor(t, db).Apply(ctx, "m", m))
	require.NoError(t, executor(t, db).Revert(ctx, "m", m))
	e := executor(t, db)
	ddl.OnStep(e, killAt(0, 0))
	require.ErrorIs(t, e.Apply(ctx, "m", m), errKilled)
	require.True(t, hasColumn(t, db, "public", "users", "a"))

	require.NoError(t, executor(t, db).Revert(ctx, "m", m))
	assert.Equal(t, before, catalog(t, db, "public"), "the revert ran nothing: the column a the cut-off apply made is left behind")
}

// Between the executor's check that the object is absent (and its record
// that it makes it) and the statement, the object is made by someone
// else: another migration's executor applying the same operation, or a
// hand-made object of another definition. The statement's IF NOT EXISTS
// turns it into a no-op with a NOTICE, and the step is recorded as
// having made the object. So (a) Apply silently accepts an object of
// another definition (an int column for Type text, an index on another
// column), and (b) both migrations are recorded as the maker, and the
// revert of one drops what the other needs.
func TestMadeBetweenCheckAndStatement(t *testing.T) {
	t.Parallel()
	type attack struct {
		name  string
		op    ddl.Op
		other string // the object of another definition, by hand
	}
	for _, a := range []attack{
		{"AddColumn", ddl.AddColumn{Table: "users", Column: "nick", Type: "text"}, `ALTER TABLE users ADD COLUMN nick int`},
		{"CreateIndex", ddl.CreateIndex{Name: "users_x", Table: "users", Columns: []string{"email"}}, `CREATE INDEX users_x ON users (age)`},
		{"AddTable", ddl.AddTable{Table: "totals", Columns: "id bigint PRIMARY KEY, amount numeric(12,2)"}, `CREATE TABLE totals (x text)`},
	} {
		t.Run(a.name+" of another definition", func(t *testing.T) {
			t.Parallel()
			db := pgtest.DB(t)
			ctx := t.Context()
			db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text, age int)`)
			e := executor(t, db)
			ddl.OnIntent(e, func(int, int) error {
				_, err := db.ExecContext(ctx, a.other)
				return err
			})
			err := e.Apply(ctx, "m", []ddl.Op{a.op})
			assert.ErrorIs(t, err, ddl.ErrExists, "Apply accepted an object of another definition than %s", a.op)
			after := catalog(t, db, "public")
			require.NoError(t, executor(t, db).Revert(ctx, "m", []ddl.Op{a.op}))
			assert.Equal(t, after, catalog(t, db, "public"), "the revert dropped an object that m did not make")
		})
		t.Run(a.name+" by another migration", func(t *testing.T) {
			t.Parallel()
			db := pgtest.DB(t)
			ctx := t.Context()
			db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text, age int)`)
			e := executor(t, db)
			ddl.OnIntent(e, func(int, int) error {
				return executor(t, db).Apply(ctx, "n", []ddl.Op{a.op})
			})
			require.NoError(t, e.Apply(ctx, "m", []ddl.Op{a.op}))
			var makers []string
			require.NoError(t, db.SelectContext(ctx, &makers, `SELECT migration FROM schemashift_ddl_steps WHERE direction = 'up' AND created ORDER BY 1`))
			assert.Equal(t, []string{"n"}, makers, "two migrations are recorded as the maker of one object")
			after := catalog(t, db, "public")
			require.NoError(t, executor(t, db).Revert(ctx, "m", []ddl.Op{a.op}))
			assert.Equal(t, after, catalog(t, db, "public"), "m's revert dropped the object n made and still needs")
		})
	}
}

// A run cut off right after the intent of CREATE INDEX CONCURRENTLY (its
// pending row committed, no index built) leaves the intent standing for
// as long as no one resumes. An index of that name made meanwhile by
// anyone (here by hand, on another column) is then, on resume, taken as
// this migration's own cut-off build, without comparing its definition;
// and a revert, resumed or not, drops it.
func TestIndexMadeByAnotherAfterACutOffIntent(t *testing.T) {
	t.Parallel()
	for _, then := range []string{"resume", "revert"} {
		t.Run(then, func(t *testing.T) {
			t.Parallel()
			db := pgtest.DB(t)
			ctx := t.Context()
			db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text, age int)`)
			op := []ddl.Op{ddl.CreateIndex{Name: "users_x", Table: "users", Columns: []string{"email"}}}
			e := executor(t, db)
			ddl.OnIntent(e, killAt(0, 0))
			require.ErrorIs(t, e.Apply(ctx, "m", op), errKilled)

			// Days later, a DBA makes an index of that name on another column.
			db.MustExecContext(ctx, `CREATE INDEX users_x ON users (age)`)
			theirs := catalog(t, db, "public")
			if then == "resume" {
				err := executor(t, db).Apply(ctx, "m", op)
				assert.ErrorIs(t, err, ddl.ErrExists, "the resumed apply took an index on (age) for its index on (email)")
			}
			require.NoError(t, executor(t, db).Revert(ctx, "m", op))
			assert.Equal(t, theirs, catalog(t, db, "public"), "the revert dropped an index m never built")
		})
	}
}

// The steps table names an object by the text of its table's name
// ("users"), not by the table it resolved to. A table named without its
// schema is resolved again, through the search path, when the revert
// runs: if by then an earlier schema of the search path ("$user", first
// by default) holds a table of that name with a column of that name, the
// revert of AddColumn drops that column, which the migration never made.
func TestTableResolvedAgainAtRevert(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	var user, path string
	require.NoError(t, db.GetContext(ctx, &user, `SELECT current_user`))
	require.NoError(t, db.GetContext(ctx, &path, `SHOW search_path`))
	require.Contains(t, path, `"$user"`)
	db.MustExecContext(ctx, `CREATE TABLE public.users (id int PRIMARY KEY)`)
	op := []ddl.Op{ddl.AddColumn{Table: "users", Column: "nick", Type: "text"}}
	require.NoError(t, executor(t, db).Apply(ctx, "m", op))
	require.True(t, hasColumn(t, db, "public", "users", "nick"))

	// Later, a schema named after the role appears (a tenant, a team's
	// sandbox), with a users table of its own.
	q, err := quoteIdent(user)
	require.NoError(t, err)
	db.MustExecContext(ctx, fmt.Sprintf(`CREATE SCHEMA %s; CREATE TABLE %s.users (id int PRIMARY KEY, nick text);
		INSERT INTO %s.users VALUES (1, 'ada')`, q, q, q))
	require.NoError(t, executor(t, db).Revert(ctx, "m", op))
	assert.True(t, hasColumn(t, db, user, "users", "nick"), "the revert dropped %s.users.nick, which m never made", user)
	assert.False(t, hasColumn(t, db, "public", "users", "nick"), "the column m made in public.users is left")
}

func quoteIdent(s string) (string, error) {
	if strings.ContainsRune(s, 0) {
		return "", errors.New("NUL")
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`, nil
}

// SetNotNull's helper CHECK may be dropped by any migration's apply once
// any migration's apply is recorded as having made a CHECK of that name
// on that table (anyMigration). That record outlives the helper: after
// migration a's SetNotNull ran to its end (helper made, then dropped),
// a CHECK of the same name made by hand is dropped by the next
// SetNotNull of the column by another migration b, although b found
// everything done and made nothing.
func TestSetNotNullHelperRecordOutlivesTheHelper(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text); INSERT INTO users VALUES (1, 'ada@example.com')`)
	op := []ddl.Op{ddl.SetNotNull{Table: "users", Column: "email"}}
	require.NoError(t, executor(t, db).Apply(ctx, "a", op))
	if serverMajor(t, db) >= 18 {
		// No helper from 18: a's NOT NULL is a constraint of that name,
		// so no CHECK of the name can be made beside it; b finds the
		// column NOT NULL, makes nothing, and its revert keeps a's.
		made := catalog(t, db, "public")
		require.Contains(t, made, "constraint public.email_not_null on users type=n validated=t NOT NULL email")
		_, err := db.ExecContext(ctx, `ALTER TABLE users ADD CONSTRAINT email_not_null CHECK (email IS NOT NULL)`)
		require.Error(t, err)
		require.NoError(t, executor(t, db).Apply(ctx, "b", op))
		var created []string
		require.NoError(t, db.SelectContext(ctx, &created, `SELECT object FROM schemashift_ddl_steps WHERE migration = 'b' AND created`))
		assert.Empty(t, created)
		require.NoError(t, executor(t, db).Revert(ctx, "b", op))
		assert.Equal(t, made, catalog(t, db, "public"), "b's revert changed a's NOT NULL")
		return
	}
	db.MustExecContext(ctx, `ALTER TABLE users ADD CONSTRAINT email_not_null CHECK (email IS NOT NULL)`)
	handMade := catalog(t, db, "public")

	require.NoError(t, executor(t, db).Apply(ctx, "b", op))
	assert.Equal(t, handMade, catalog(t, db, "public"), "b's apply, which made nothing, dropped the hand-made CHECK email_not_null")
}

// A revert cut off after dropping a column whose op also set its
// default (a step that makes no object of its own), then an apply: the
// apply adds the column again and sets its default again, since the
// revert's drop took the records of both steps with it.
func TestRevertCutOffThenApplyRunsTheWholeOpAgain(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY)`)
	m := []ddl.Op{ddl.AddColumn{Table: "users", Column: "tok", Type: "uuid", Default: "gen_random_uuid()", Volatile: true}}
	require.NoError(t, executor(t, db).Apply(ctx, "m", m))
	applied := catalog(t, db, "public")
	e := executor(t, db)
	ddl.OnStep(e, killAt(0, 0))
	require.ErrorIs(t, e.Revert(ctx, "m", m), errKilled)
	require.False(t, hasColumn(t, db, "public", "users", "tok"))
	require.NoError(t, executor(t, db).Apply(ctx, "m", m))
	assert.Equal(t, applied, catalog(t, db, "public"), "the apply did not make again what the cut-off revert dropped")
}

// A revert cut off right after DROP INDEX CONCURRENTLY (which runs
// outside a transaction), before its step is recorded, then an apply:
// the apply's step is recorded done, but its index is gone, so it is
// built again.
func TestRevertCutOffAfterAConcurrentDropThenApply(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text)`)
	m := []ddl.Op{ddl.CreateIndex{Name: "users_email", Table: "users", Columns: []string{"email"}}}
	require.NoError(t, executor(t, db).Apply(ctx, "m", m))
	applied := catalog(t, db, "public")
	e := executor(t, db)
	ddl.OnStatement(e, killAt(0, 0))
	require.ErrorIs(t, e.Revert(ctx, "m", m), errKilled)
	require.NotEqual(t, applied, catalog(t, db, "public"), "the index was not dropped")
	require.NoError(t, executor(t, db).Apply(ctx, "m", m))
	assert.Equal(t, applied, catalog(t, db, "public"), "the apply did not build again the index the cut-off revert dropped")
	require.NoError(t, executor(t, db).Revert(ctx, "m", m))
	assert.NotContains(t, strings.Join(catalog(t, db, "public"), "\n"), "users_email", "the revert kept the index the apply built")
}
