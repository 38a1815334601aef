package postgres

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
)

var _ dialect.Constraints = Dialect{}

// guards are the queries of [dialect.Guard]s, over $1 the table and $2
// the constraint's name (byColumn: the column's), or, of both, $2 the
// constraint's name and $3 the column's.
var guards = map[dialect.Guard]struct {
	query            string
	byColumn, byBoth bool
}{
	dialect.GuardNamed:       {query: `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2)`},
	dialect.GuardValidated:   {query: `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2 AND convalidated)`},
	dialect.GuardNoneInvalid: {query: `SELECT NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2 AND NOT convalidated)`},
	dialect.GuardNotNull: {query: `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND attnotnull)`,
		byColumn: true},
	dialect.GuardNamedOrNotNull: {query: `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2)
		OR EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $3 AND attnotnull)`, byBoth: true},
}

// Guard implements [dialect.Constraints].
func (Dialect) Guard(ctx context.Context, q sqlx.QueryerContext, g dialect.Guard, t ident.Table, constraint, column string) (bool, error) {
	guard, ok := guards[g]
	if !ok {
		return false, fmt.Errorf("guard %d: no such guard", g)
	}
	args := []any{t.Quoted(), constraint}
	switch {
	case guard.byColumn:
		args[1] = column
	case guard.byBoth:
		args = append(args, column)
	}
	var done bool
	err := sqlx.GetContext(ctx, q, &done, guard.query, args...)
	return done, err
}

// constraintColumns is the SQL of the names of a constraint's columns,
// in order, as text[].
func constraintColumns(keys, rel string) string {
	return `(SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(` + keys + `) WITH ORDINALITY k(attnum, n)
		JOIN pg_attribute a ON a.attrelid = ` + rel + ` AND a.attnum = k.attnum)`
}

// ConstraintShape implements [dialect.Constraints]: the columns and the
// referenced table by the catalog's numbers; what the operations never
// make (DEFERRABLE, INITIALLY DEFERRED, NO INHERIT, ON UPDATE other than
// NO ACTION, MATCH other than SIMPLE) makes another definition.
func (Dialect) ConstraintShape(ctx context.Context, q sqlx.QueryerContext, t ident.Table, name string, cols []string,
	ref ident.Table, refCols []string, cascade bool) (dialect.ConstraintShape, error) {
	var have dialect.ConstraintShape
	err := sqlx.GetContext(ctx, q, &have, `SELECT co.contype::text AS contype, pg_get_constraintdef(co.oid) AS def,
			(co.contype = 'c' OR coalesce(`+constraintColumns("co.conkey", "co.conrelid")+` = $3::text[], false))
			AND NOT co.condeferrable AND NOT co.condeferred AND (co.contype <> 'c' OR NOT co.connoinherit)
			AND (co.contype <> 'f' OR (co.confrelid = to_regclass($4) AND `+constraintColumns("co.confkey", "co.confrelid")+` = $5::text[]
				AND co.confdeltype = $6 AND co.confupdtype = 'a' AND co.confmatchtype = 's')) AS same,
			CASE WHEN co.contype = 'u' THEN coalesce(pg_get_indexdef(co.conindid), '') ELSE '' END AS index
		FROM pg_constraint co WHERE co.conrelid = to_regclass($1) AND co.conname = $2`,
		t.Quoted(), name, cols, ref.Quoted(), refCols, map[bool]string{true: "c", false: "a"}[cascade])
	return have, err
}

// NotNullConflicts implements [dialect.Constraints]. From 18 a
// constraint of the operation's name must be the column's NOT NULL (its
// validation is the next step); any other NOT NULL constraint of the
// column must be validated already.
func (Dialect) NotNullConflicts(ctx context.Context, q sqlx.QueryerContext, t ident.Table, column, constraint string) ([]string, error) {
	var wrong []string
	err := sqlx.SelectContext(ctx, q, &wrong, `SELECT format('%s %s', conname, pg_get_constraintdef(co.oid)) FROM pg_constraint co
		WHERE co.conrelid = to_regclass($1) AND (
			(co.conname = $3 AND (co.contype <> 'n' OR co.conkey <> ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = co.conrelid AND attname = $2)]))
			OR (co.conname <> $3 AND co.contype = 'n' AND NOT co.convalidated
				AND co.conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = co.conrelid AND attname = $2)]))`,
		t.Quoted(), column, constraint)
	return wrong, err
}
