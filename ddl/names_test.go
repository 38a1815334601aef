package ddl_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// indexes lists every index outside the system schemas, schema-qualified.
func indexes(t *testing.T, db *sqlx.DB) []string {
	t.Helper()
	var out []string
	require.NoError(t, db.SelectContext(t.Context(), &out, `SELECT schemaname || '|' || indexname FROM pg_indexes
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND indexname NOT LIKE 'schemashift%' ORDER BY 1`))
	return out
}

// An index is dropped by its revert, and by the cleanup of a failed build,
// only where it was made: in its table's schema, by its whole name.
// Objects of the same name in another schema, or named like the parts of
// a dotted name, are left alone.
func TestIndexRevertTouchesOnlyItsOwnIndex(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE SCHEMA "other schema"; CREATE SCHEMA a;
		CREATE TABLE "other schema"."t x" (id int PRIMARY KEY, v int);
		CREATE TABLE public.t (id int PRIMARY KEY, v int);
		CREATE TABLE a.u (id int PRIMARY KEY, v int);
		CREATE INDEX shared_name ON public.t (v);
		CREATE INDEX b ON a.u (v)`)
	before := indexes(t, db)
	require.Contains(t, before, "public|shared_name")
	require.Contains(t, before, "a|b")

	ops := []ddl.Op{
		ddl.CreateIndex{Name: "shared_name", Table: "other schema.t x", Columns: []string{"v"}},
		ddl.CreateIndex{Name: "a.b", Table: "t", Columns: []string{"id", "v"}},
	}
	e := executor(t, db)
	require.NoError(t, e.Apply(ctx, "names", ops))
	applied := indexes(t, db)
	assert.Contains(t, applied, "other schema|shared_name")
	assert.Contains(t, applied, "public|a.b")
	assert.Len(t, applied, len(before)+2)

	// A second apply runs the INVALID-leftover cleanup for each index:
	// it must look up "a.b" whole, in public, not b in schema a.
	require.NoError(t, executor(t, db).Apply(ctx, "names-again", ops))
	assert.Equal(t, applied, indexes(t, db))

	require.NoError(t, e.Revert(ctx, "names", ops))
	assert.Equal(t, before, indexes(t, db), "only the indexes the ops made are gone")

	// DropIndex takes the name as it is.
	db.MustExecContext(ctx, `CREATE INDEX "a.b" ON public.t (v)`)
	require.NoError(t, executor(t, db).Apply(ctx, "drop", []ddl.Op{ddl.DropIndex{Name: "a.b"}}))
	assert.Equal(t, before, indexes(t, db))
	require.NoError(t, executor(t, db).Apply(ctx, "drop-qualified", []ddl.Op{ddl.DropIndex{Schema: "a", Name: "b"}}))
	assert.NotContains(t, indexes(t, db), "a|b")
	assert.Contains(t, indexes(t, db), "public|shared_name")
}

// SetNotNull's helper constraint is named after the column: for a long
// name in any script it is shortened on a character boundary with a hash,
// never cut inside a character, and the op and its reverse run.
func TestSetNotNullOnLongNamesInEveryScript(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	names := []string{
		"c",
		strings.Repeat("a", 63),
		"x" + strings.Repeat("д", 27),       // 55 bytes, Cyrillic
		strings.Repeat("名", 21),             // 63 bytes, CJK
		"e" + strings.Repeat("🙂", 15) + "z", // 62 bytes, emoji
	}
	for i, name := range names {
		require.LessOrEqual(t, len(name), 63)
		table := fmt.Sprintf("nn%d", i)
		db.MustExecContext(ctx, fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, %s int)`, table, pgx.Identifier{name}.Sanitize()))
		db.MustExecContext(ctx, fmt.Sprintf(`INSERT INTO %s VALUES (1, 1)`, table))
		op := ddl.SetNotNull{Table: table, Column: name}
		stmts, err := op.Up(15)
		require.NoError(t, err, name)
		for _, st := range stmts {
			assert.True(t, utf8.ValidString(st.SQL), "%q", st.SQL)
			assert.NotContains(t, st.SQL, "CONSTRAINT  ", "a constraint with no name")
		}
		e := executor(t, db)
		require.NoError(t, e.Apply(ctx, table, []ddl.Op{op}), name)
		var notNull bool
		require.NoError(t, db.GetContext(ctx, &notNull, `SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2`, table, name))
		assert.True(t, notNull, name)
		require.NoError(t, e.Revert(ctx, table, []ddl.Op{op}), name)
		require.NoError(t, db.GetContext(ctx, &notNull, `SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2`, table, name))
		assert.False(t, notNull, name)
	}
}

// Names of 1 to 63 bytes in ASCII, Cyrillic, CJK and emoji (and with a
// quote, a space and a dot in them) go through every operation and its
// reverse whole: each object is found in the catalog under exactly its
// name, nothing is truncated or cut inside a character, and the revert
// leaves the catalog as it was. Names also appear quoted inside the SQL
// fragments (a column list, a check, an index predicate).
func TestEveryOpOnNamesInEveryScript(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	require.NoError(t, executor(t, db).Apply(ctx, "steps table", nil))
	// fill repeats r after prefix up to n bytes, never past them.
	fill := func(prefix, r string, n int) string {
		s := prefix
		for len(s)+len(r) <= n {
			s += r
		}
		return s
	}
	scripts := []struct {
		name string
		of   func(tag string) string // a distinct name for each tag
	}{
		{"ascii short", func(tag string) string { return tag }},
		{"ascii 63", func(tag string) string { return fill(tag, "a", 63) }},
		{"odd ascii", func(tag string) string {
			if strings.ContainsAny(tag, "trn") { // a table's name is split at a dot
				return tag + ` it's a "name"`
			}
			return tag + ` it's a "name".x`
		}},
		{"cyrillic", func(tag string) string { return fill(tag, "д", 63) }},
		{"cjk", func(tag string) string { return fill(tag, "名", 63) }},
		{"emoji", func(tag string) string { return fill(tag, "🙂", 63) }},
	}
	q := func(n string) string { return pgx.Identifier{n}.Sanitize() }
	for _, sc := range scripts {
		n := sc.of
		tbl, ref, created := n("t"), n("r"), n("n")
		cv, cr, cn, ca := n("v"), n("f"), n("z"), n("a")
		for _, s := range []string{tbl, ref, created, cv, cr, cn, ca, n("i"), n("k"), n("c"), n("u")} {
			require.LessOrEqual(t, len(s), 63, s)
			require.True(t, utf8.ValidString(s), s)
		}
		db.MustExecContext(ctx, fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY); INSERT INTO %[1]s VALUES (1);
			CREATE TABLE %s (id int PRIMARY KEY, %s int, %s int, %s int); INSERT INTO %[2]s VALUES (1, 1, 1, 1)`,
			q(ref), q(tbl), q(cv), q(cr), q(cn)))
		ops := []ddl.Op{
			ddl.AddColumn{Table: tbl, Column: ca, Type: "text", Default: "'x'"},
			ddl.AddTable{Table: created, Columns: fmt.Sprintf("id int PRIMARY KEY, %s text NOT NULL DEFAULT '', CHECK (%[1]s <> 'x')", q(cv))},
			ddl.CreateIndex{Name: n("i"), Table: tbl, Columns: []string{cv}, Where: q(cv) + " IS NOT NULL"},
			ddl.AddForeignKey{Name: n("k"), Table: tbl, Columns: []string{cr}, RefTable: ref, RefColumns: []string{"id"}},
			ddl.AddCheck{Name: n("c"), Table: tbl, Expr: q(cv) + " > 0"},
			ddl.SetNotNull{Table: tbl, Column: cn},
			ddl.AddUnique{Name: n("u"), Table: tbl, Columns: []string{cv, "id"}},
		}
		before := catalog(t, db, "public")
		e := executor(t, db)
		require.NoError(t, e.Apply(ctx, sc.name, ops), sc.name)
		var got struct {
			Columns, Table, Index, Constraints int
			NotNull                            bool
		}
		require.NoError(t, db.QueryRowxContext(ctx, `SELECT
			(SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped),
			(SELECT count(*) FROM pg_class WHERE relname = $3 AND relkind = 'r'),
			(SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $4 AND i.indisvalid AND i.indpred IS NOT NULL),
			(SELECT count(*) FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname IN ($5, $6, $7) AND convalidated),
			(SELECT attnotnull FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $8)`,
			q(tbl), ca, created, n("i"), n("k"), n("c"), n("u"), cn).Scan(&got.Columns, &got.Table, &got.Index, &got.Constraints, &got.NotNull), sc.name)
		assert.Equal(t, struct {
			Columns, Table, Index, Constraints int
			NotNull                            bool
		}{1, 1, 1, 3, true}, got, "%s: every object under exactly its name", sc.name)
		require.NoError(t, e.Revert(ctx, sc.name, ops), sc.name)
		assert.Equal(t, before, catalog(t, db, "public"), "%s: reverted", sc.name)
	}
}
