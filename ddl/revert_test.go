package ddl_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// catalog describes, by name, everything the operations can change in
// schemas: every relation (pg_class), index (pg_index, with its validity
// and definition), constraint (pg_constraint, with its validation and
// definition) and live column (pg_attribute, with its type, nullability
// and default), one line each, sorted.
func catalog(t *testing.T, db *sqlx.DB, schemas ...string) []string {
	t.Helper()
	var out []string
	require.NoError(t, db.SelectContext(t.Context(), &out, `
		SELECT format('class %s.%s kind=%s', n.nspname, c.relname, c.relkind)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY($1)
		UNION ALL
		SELECT format('index %s.%s on %s valid=%s unique=%s %s', n.nspname, c.relname, i.indrelid::regclass, i.indisvalid, i.indisunique, pg_get_indexdef(i.indexrelid))
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY($1)
		UNION ALL
		SELECT format('constraint %s.%s on %s type=%s validated=%s %s', n.nspname, co.conname, co.conrelid::regclass, co.contype, co.convalidated, pg_get_constraintdef(co.oid))
		FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE n.nspname = ANY($1)
		UNION ALL
		SELECT format('column %s.%s.%s %s notnull=%s default=%s', n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			coalesce(pg_get_expr(d.adbin, d.adrelid), ''))
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE n.nspname = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY 1`, schemas))
	return out
}

// only keeps the lines of a catalog about schema.
func only(lines []string, schema string) []string {
	var out []string
	for _, l := range lines {
		if _, rest, _ := strings.Cut(l, " "); strings.HasPrefix(rest, schema+".") {
			out = append(out, l)
		}
	}
	return out
}

// Every operation with a reverse, applied to a table of a schema other
// than public, then reverted, changes only its own object: public holds
// a table of the same name with an object of the same name for each
// operation (column, table, index, constraints, the NOT NULL helper's
// name), and the whole catalog of both schemas is compared before and
// after, at each step.
func TestRevertTouchesOnlyItsOwnObject(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	const other = "other schema"
	for _, schema := range []string{"public", `"other schema"`} {
		db.MustExecContext(ctx, fmt.Sprintf(`
			CREATE SCHEMA IF NOT EXISTS %[1]s;
			CREATE TABLE %[1]s.parent (id int PRIMARY KEY);
			CREATE TABLE %[1]s."t x" (id int PRIMARY KEY, v int, "ref id" int, "nn col" int);
			INSERT INTO %[1]s.parent VALUES (1);
			INSERT INTO %[1]s."t x" VALUES (1, 1, 1, 1)`, schema))
	}
	// public's objects of the same names, as the operations would make them.
	db.MustExecContext(ctx, `
		ALTER TABLE public."t x" ADD COLUMN "new col" text DEFAULT 'x', ADD COLUMN tok uuid DEFAULT gen_random_uuid();
		CREATE TABLE public."new t" (id int PRIMARY KEY);
		CREATE INDEX "t x idx" ON public."t x" (v) WHERE v IS NOT NULL;
		ALTER TABLE public."t x" ADD CONSTRAINT "t x fk" FOREIGN KEY ("ref id") REFERENCES public.parent (id);
		ALTER TABLE public."t x" ADD CONSTRAINT "t x check" CHECK (v > 0);
		ALTER TABLE public."t x" ALTER COLUMN "nn col" SET NOT NULL;
		ALTER TABLE public."t x" ADD CONSTRAINT "nn col_not_null" CHECK ("nn col" IS NOT NULL);
		ALTER TABLE public."t x" ADD CONSTRAINT "t x unique" UNIQUE (v, id)`)
	tbl := other + ".t x"
	ops := []ddl.Op{
		ddl.AddColumn{Table: tbl, Column: "new col", Type: "text", Default: "'x'"},
		ddl.AddColumn{Table: tbl, Column: "tok", Type: "uuid", Default: "gen_random_uuid()", Volatile: true},
		ddl.AddTable{Table: other + ".new t", Columns: "id int PRIMARY KEY"},
		ddl.CreateIndex{Name: "t x idx", Table: tbl, Columns: []string{"v"}, Where: "v IS NOT NULL"},
		ddl.AddForeignKey{Name: "t x fk", Table: tbl, Columns: []string{"ref id"}, RefTable: other + ".parent", RefColumns: []string{"id"}},
		ddl.AddCheck{Name: "t x check", Table: tbl, Expr: "v > 0"},
		ddl.SetNotNull{Table: tbl, Column: "nn col"},
		ddl.AddUnique{Name: "t x unique", Table: tbl, Columns: []string{"v", "id"}},
	}
	require.NoError(t, executor(t, db).Apply(ctx, "steps table", nil)) // not part of what is compared
	before := catalog(t, db, "public", other)
	public := only(before, "public")
	require.NotEmpty(t, only(before, other))
	for i, op := range ops {
		e := executor(t, db)
		m := fmt.Sprint("own", i)
		require.NoError(t, e.Apply(ctx, m, []ddl.Op{op}), op)
		applied := catalog(t, db, "public", other)
		assert.Equal(t, public, only(applied, "public"), "%s changed public", op)
		assert.NotEqual(t, before, applied, "%s changed nothing", op)
		require.NoError(t, executor(t, db).Apply(ctx, m+"-again", []ddl.Op{op}), op)
		assert.Equal(t, applied, catalog(t, db, "public", other), "%s applied again", op)
		require.NoError(t, e.Revert(ctx, m, []ddl.Op{op}), op)
		assert.Equal(t, before, catalog(t, db, "public", other), "%s reverted", op)
	}
	// All at once, reverted last first.
	e := executor(t, db)
	require.NoError(t, e.Apply(ctx, "all", ops))
	assert.Equal(t, public, only(catalog(t, db, "public", other), "public"))
	require.NoError(t, e.Revert(ctx, "all", ops))
	assert.Equal(t, before, catalog(t, db, "public", other))
}
