package ddl_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// smuggled is a fragment that tries to carry more than its field holds:
// a second statement, clause, command, constraint or column, or a token
// that some reader of the statement would end at another place.
type smuggled struct {
	field string
	op    ddl.Op
}

func hostileFragments() []smuggled {
	typ := func(s string) smuggled {
		return smuggled{"Type", ddl.AddColumn{Table: "users", Column: "x", Type: s}}
	}
	def := func(s string) smuggled {
		return smuggled{"Default", ddl.AddColumn{Table: "users", Column: "x", Type: "text", Default: s}}
	}
	volatile := func(s string) smuggled {
		return smuggled{"Default", ddl.AddColumn{Table: "users", Column: "x", Type: "text", Default: s, Volatile: true}}
	}
	check := func(s string) smuggled { return smuggled{"Expr", ddl.AddCheck{Name: "c", Table: "users", Expr: s}} }
	where := func(s string) smuggled {
		return smuggled{"Where", ddl.CreateIndex{Name: "i", Table: "users", Columns: []string{"id"}, Where: s}}
	}
	columns := func(s string) smuggled { return smuggled{"Columns", ddl.AddTable{Table: "t", Columns: s}} }
	var out []smuggled
	for _, s := range []string{
		"text, DROP COLUMN keep_me", // issue 13: dropped another column
		"text, ADD COLUMN y int",
		"int; DROP TABLE canary",
		"int DEFAULT 0",
		"int NOT NULL",
		"int PRIMARY KEY",
		"int REFERENCES canary",
		"int CHECK (false)",
		"int GENERATED ALWAYS AS (1) STORED",
		`text COLLATE "C"`,
		"text COMPRESSION pglz",
		"text STORAGE PLAIN",
		"int -- x",
		"int /* x */",
		"numeric((SELECT 1))",
		`U&"int4"`,
		"int\x00",
		"int4\v[]",
		"int4`",
		"",
		"  ",
	} {
		out = append(out, typ(s))
	}
	for _, s := range []string{
		"0 NOT NULL", // a second clause: DEFAULT takes a b_expr, then constraints
		"0 CHECK (false)",
		"0, DROP COLUMN keep_me",
		"0; DROP TABLE canary",
		"(SELECT 1)",
		"(SELECT count(*) FROM canary)::text",
		`'\' || ';DROP TABLE canary;--'`, // one string and another to the parser; with standard_conforming_strings off, a DROP
		`E'\'; DROP TABLE canary; --'`,
		"$$; DROP TABLE canary; $$",
		"$q$x$q$",
		`U&'d\0061t'`,
		"B'01'",
		"X'1F'",
		"$1",
		"now() -- x",
		"'x' /* */",
		"now()) ; DROP TABLE canary; SELECT (1",
	} {
		out = append(out, def(s))
	}
	for _, s := range []string{"now(), DROP COLUMN keep_me", "(SELECT 1)", "now(); DROP TABLE canary", "1 NOT NULL"} {
		out = append(out, volatile(s))
	}
	for _, s := range []string{
		"a > 0) NOT VALID; DROP TABLE users; --",
		// issue 13: a quote inside a quoted name hid the rest from the old check
		`"it's" IS NULL) NOT VALID; DROP TABLE canary; -- '`,
		"true) NOT VALID, ADD CONSTRAINT d CHECK (true",
		"true) NO INHERIT, DROP COLUMN keep_me, ADD CHECK (true",
		"x) OR (true",
		"1 FROM canary",
		"EXISTS (SELECT 1 FROM canary)",
		"id IN (SELECT id FROM canary)",
		"ARRAY(SELECT 1) IS NOT NULL",
		"true;",
		"keep_me > 0 -- ",
		"keep_me['] IS NULL; DROP TABLE canary; --'] IS NULL", // SQLite reads [ … ] as a name
		"keep_me[\"x\"] IS NULL",
		"keep_me ` 1",
		"keep_me = E'\\''",
	} {
		out = append(out, check(s))
	}
	for _, s := range []string{
		"deleted_at IS NULL; DROP TABLE canary",
		"true WITH (fillfactor = 10)",
		"id > (SELECT max(id) FROM canary)",
		"true) INCLUDE (keep_me",
		"$$x$$ = 'x'",
		"x /* a */ IS NULL",
	} {
		out = append(out, where(s))
	}
	for _, s := range []string{
		"a int); DROP TABLE users; CREATE TABLE x (b int",
		"a int) INHERITS (canary",
		"a int) PARTITION BY RANGE (a",
		"a int) WITH (fillfactor = 10",
		"LIKE canary INCLUDING ALL",
		"a int, LIKE canary",
		"a int DEFAULT (SELECT 1)",
		"a int CHECK (a IN (SELECT id FROM canary))",
		"a int -- ",
		"a int); --",
	} {
		out = append(out, columns(s))
	}
	return out
}

// Every field refuses what is more than one type, one expression or a
// column list, with an error naming the operation and the field; on
// SQLite too; and against a real PostgreSQL nothing runs.
func TestFragmentsRefuseSmuggling(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, keep_me int, "it's" int, deleted_at timestamptz, a int);
		CREATE TABLE canary (id int PRIMARY KEY); INSERT INTO users VALUES (1, 1, 1, NULL, 1)`)
	before := catalog(t, db, "public")
	e := executor(t, db)
	for i, c := range hostileFragments() {
		name := fmt.Sprintf("%d %s %q", i, c.field, c.op.String())
		_, err := c.op.Up(15)
		if !assert.Error(t, err, name) {
			continue
		}
		assert.ErrorIs(t, err, ddl.ErrFragment, name)
		assert.ErrorIs(t, err, ddl.ErrInvalidOp, name)
		assert.ErrorContains(t, err, ": "+c.field+": ", name)
		assert.True(t, strings.HasPrefix(err.Error(), "ddl: "), "%s: %v", name, err)
		_, err = ddl.RenderSQLite(c.op, false)
		assert.ErrorIs(t, err, ddl.ErrFragment, "%s on SQLite", name)
		assert.ErrorIs(t, e.Apply(ctx, fmt.Sprint("hostile", i), []ddl.Op{c.op}), ddl.ErrFragment, name)
	}
	assert.Equal(t, before, catalog(t, db, "public"), "nothing ran")
}

// The attacks are real: spliced into their statements as the
// old check let them through, PostgreSQL runs what they smuggle. (This
// is what the refusals above are worth.)
func TestSmuggledFragmentsWouldRun(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE TABLE users (id int PRIMARY KEY, keep_me int, "it's" int); CREATE TABLE canary (id int)`)
	for _, c := range []struct {
		setting, sql, gone string
	}{
		{"", `ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "x" text, DROP COLUMN keep_me`, "keep_me"},
		{"", `ALTER TABLE "users" ADD CONSTRAINT "c" CHECK ("it's" IS NULL) NOT VALID; DROP TABLE canary; -- ') NOT VALID`, "canary"},
		{"SET LOCAL standard_conforming_strings = off", `ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "x" text DEFAULT '\' || ';DROP TABLE canary;--'`, "canary"},
	} {
		tx := db.MustBeginTx(ctx, nil)
		if c.setting != "" {
			_, err := tx.ExecContext(ctx, c.setting)
			require.NoError(t, err)
		}
		_, err := tx.ExecContext(ctx, c.sql)
		require.NoError(t, err, c.sql)
		var left int
		require.NoError(t, tx.GetContext(ctx, &left, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = $1 AND NOT attisdropped
			UNION ALL SELECT count(*) FROM pg_class WHERE relname = $1 ORDER BY 1 DESC LIMIT 1`, c.gone))
		assert.Zero(t, left, "%s: %s survived", c.sql, c.gone)
		require.NoError(t, tx.Rollback())
	}
}

// Fragments that are one type, one expression or a column list run as
// written, against a real PostgreSQL, and are reverted.
func TestFragmentsThatFitRunOnPostgres(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE TABLE pay (id int PRIMARY KEY, amount numeric(12,2), currency text, email text, deleted_at timestamptz);
		INSERT INTO pay VALUES (1, 10, 'EUR', 'a@b.io', NULL)`)
	require.NoError(t, executor(t, db).Apply(ctx, "steps table", nil)) // not part of what is compared
	before := catalog(t, db, "public")
	types := map[string]string{ // the fragment, and format_type of the column it makes
		"timestamp with time zone":       "timestamp with time zone",
		"numeric(12,2)":                  "numeric(12,2)",
		"numeric( 12 , 2 )":              "numeric(12,2)",
		"character varying(20)":          "character varying(20)",
		"text[]":                         "text[]",
		"int[][]":                        "integer[]",
		"double precision":               "double precision",
		"timestamp(3) without time zone": "timestamp(3) without time zone",
		"interval year to month":         "interval year to month",
		"bit varying(8)":                 "bit varying(8)",
		"pg_catalog.int8":                "bigint",
		`"varchar"(5)`:                   "character varying(5)",
		"uuid":                           "uuid",
		"bytea":                          "bytea",
	}
	var ops []ddl.Op
	i := 0
	for typ := range types {
		ops = append(ops, ddl.AddColumn{Table: "pay", Column: fmt.Sprint("t", i), Type: typ})
		i++
	}
	defaults := []struct{ column, typ, def, want string }{
		{"d_now", "timestamp with time zone", "now()", "now()"},
		{"d_ts", "timestamptz", "CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP"},
		{"d_cur", "character varying(3)", "'EUR'", "'EUR'::character varying"},
		{"d_quote", "text", "'it''s'", "'it''s'::text"},
		{"d_arr", "text[]", "'{}'", "'{}'::text[]"},
		{"d_neg", "int", "-1", "'-1'::integer"},
		{"d_bytes", "bytea", `'\x0a'::bytea`, `'\x0a'::bytea`},
		{"d_cast", "int", "CAST('7' AS int)", "7"},
	}
	for _, d := range defaults {
		ops = append(ops, ddl.AddColumn{Table: "pay", Column: d.column, Type: d.typ, Default: d.def})
	}
	ops = append(ops,
		ddl.AddColumn{Table: "pay", Column: "token", Type: "uuid", Default: "gen_random_uuid()", Volatile: true},
		ddl.AddCheck{Name: "pay_amount", Table: "pay", Expr: "amount >= 0 AND currency IN ('EUR','USD')"},
		ddl.AddCheck{Name: "pay_email", Table: "pay", Expr: `email ~ '^[^@]+@[^@]+\.[a-z]+$'`},
		ddl.CreateIndex{Name: "pay_live", Table: "pay", Columns: []string{"id"}, Where: "deleted_at IS NULL"},
		ddl.AddTable{Table: "pay_totals", Columns: `id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL DEFAULT 0,
			currency text NOT NULL CHECK (currency IN ('EUR', 'USD')), "at" timestamptz DEFAULT now(),
			pay_id int REFERENCES pay (id), tags text[] DEFAULT '{}', UNIQUE (currency, id), CHECK (amount >= 0)`},
	)
	e := executor(t, db)
	require.NoError(t, e.Apply(ctx, "fit", ops))

	var got []struct {
		Name string `db:"attname"`
		Type string `db:"type"`
		Def  string `db:"def"`
	}
	require.NoError(t, db.SelectContext(ctx, &got, `SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS def
		FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = 'pay'::regclass AND a.attnum > 0 AND NOT a.attisdropped`))
	byName := map[string][2]string{}
	for _, g := range got {
		byName[g.Name] = [2]string{g.Type, g.Def}
	}
	for n, o := range ops[:len(types)] {
		ac := o.(ddl.AddColumn)
		assert.Equal(t, types[ac.Type], byName[ac.Column][0], "type %q (column %d)", ac.Type, n)
	}
	for _, d := range defaults {
		assert.Equal(t, d.want, byName[d.column][1], "default %q", d.def)
	}
	assert.Equal(t, "gen_random_uuid()", byName["token"][1])

	var indexDef string
	require.NoError(t, db.GetContext(ctx, &indexDef, `SELECT pg_get_indexdef('pay_live'::regclass)`))
	assert.Contains(t, indexDef, "WHERE (deleted_at IS NULL)")
	// The checks are enforced as written.
	for _, bad := range []string{
		`INSERT INTO pay (id, amount, currency, email) VALUES (2, -1, 'EUR', 'a@b.io')`,
		`INSERT INTO pay (id, amount, currency, email) VALUES (2, 1, 'GBP', 'a@b.io')`,
		`INSERT INTO pay (id, amount, currency, email) VALUES (2, 1, 'EUR', 'a@bxio')`,
		`INSERT INTO pay_totals (id, currency, amount) VALUES (1, 'EUR', -1)`,
	} {
		_, err := db.ExecContext(ctx, bad)
		assert.ErrorContains(t, err, "violates check constraint", bad)
	}
	db.MustExecContext(ctx, `INSERT INTO pay (id, amount, currency, email) VALUES (2, 1, 'USD', 'c@d.io')`)
	db.MustExecContext(ctx, `INSERT INTO pay_totals (id, currency, pay_id) VALUES (1, 'USD', 2)`)
	db.MustExecContext(ctx, `DELETE FROM pay_totals; DELETE FROM pay WHERE id = 2`)

	require.NoError(t, e.Revert(ctx, "fit", ops))
	assert.Equal(t, before, catalog(t, db, "public"))
}
