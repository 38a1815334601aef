package sqlite

import (
	"fmt"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
)

var _ dialect.PlainRenderer = Dialect{}

// The notes a statement carries: what it gives up against the safe
// forms of package ddl.
const (
	noteIndex      = "sqlite: CREATE INDEX without CONCURRENTLY: writers wait for the build"
	noteUnique     = "sqlite: unique constraint as a unique index (SQLite cannot add a constraint to an existing table), built without CONCURRENTLY: writers wait for the build"
	noteDropColumn = "sqlite: DROP COLUMN rewrites the table under the database write lock, and fails while an index, constraint, view or trigger uses the column"
)

// AddColumn implements [dialect.PlainRenderer]. SQLite's ALTER TABLE has
// no IF NOT EXISTS (the executor guards it), and adds a column only with
// a constant default, which it cannot set later.
func (Dialect) AddColumn(table, column, typ, def string, volatile bool) (sql, note string) {
	sql = fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", table, column, typ)
	switch {
	case def == "":
	case volatile:
		note = fmt.Sprintf("sqlite: column added without its volatile default %s (SQLite adds a column only with a constant default "+
			"and cannot set one later): new rows get NULL unless written, existing rows are the backfill's", def)
	default:
		sql += " DEFAULT " + def
	}
	return sql, note
}

// DropColumn implements [dialect.PlainRenderer].
func (Dialect) DropColumn(table, column string) (sql, note string) {
	return fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", table, column), noteDropColumn
}

// indexName quotes index as SQLite names a table's index: qualified by
// the table's schema, where SQLite keeps it. Both names were checked by
// the caller.
func indexName(t ident.Table, index string) string {
	n, _ := ident.Quote(index)
	if t.Schema != "" {
		s, _ := ident.Quote(t.Schema)
		n = s + "." + n
	}
	return n
}

// CreateIndex implements [dialect.PlainRenderer]: the index is built
// inside the writing transaction, named in the table's schema, with the
// table named bare.
func (Dialect) CreateIndex(t ident.Table, index, columns string, unique bool, where string, constraint bool) (sql, strict, note string) {
	n := indexName(t, index)
	on, _ := ident.Quote(t.Name)
	u, w := "", ""
	if unique {
		u = "UNIQUE "
	}
	if where != "" {
		w = " WHERE " + where
	}
	note = noteIndex
	if constraint {
		note = noteUnique
	}
	return fmt.Sprintf("CREATE %sINDEX IF NOT EXISTS %s ON %s (%s)%s", u, n, on, columns, w),
		fmt.Sprintf("CREATE %sINDEX %s ON %s (%s)%s", u, n, on, columns, w), note
}

// DropIndex implements [dialect.PlainRenderer].
func (Dialect) DropIndex(t ident.Table, index string) string {
	return "DROP INDEX IF EXISTS " + indexName(t, index)
}

// CannotAdd implements [dialect.PlainRenderer]: SQLite adds no
// constraint to an existing table.
func (Dialect) CannotAdd(what dialect.Addition) string {
	switch what {
	case dialect.AddsForeignKey:
		return "SQLite cannot add a foreign key to an existing table; declare it when the table is created"
	case dialect.AddsCheck:
		return "SQLite cannot add a check constraint to an existing table; declare it when the table is created"
	}
	return "SQLite cannot make an existing column NOT NULL; declare it when the table is created " +
		"(or add the column NOT NULL with a constant default)"
}
