package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
)

// schemaOf is the schema SQLite keeps t in, quoted.
func schemaOf(t ident.Table) string {
	s, _ := ident.Quote(cmp.Or(t.Schema, "main")) // checked by ParseTable
	return s
}

// TableExists implements [dialect.Catalog].
func (Dialect) TableExists(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (bool, error) {
	var exists bool
	err := sqlx.GetContext(ctx, q, &exists, `SELECT EXISTS (SELECT 1 FROM `+schemaOf(t)+`.sqlite_schema
		WHERE type = 'table' AND name = $1)`, t.Name)
	return exists, err
}

// rowidKey is true, in a query over pragma_table_info($1, $2), when the
// table's primary key is its rowid: SQLite gives every other primary key
// an index (origin 'pk'), a rowid table's and a WITHOUT ROWID table's
// alike, and none to the rowid, which is the table itself. (So an INTEGER
// PRIMARY KEY DESC column, which is not the rowid and does hold NULL, is
// told apart too.)
const rowidKey = `NOT EXISTS (SELECT 1 FROM pragma_index_list($1, $2) WHERE origin = 'pk')`

// Columns implements [dialect.Catalog]. The rowid key, an INTEGER PRIMARY
// KEY, is NOT NULL though the catalog calls it nullable.
func (Dialect) Columns(ctx context.Context, q sqlx.QueryerContext, t ident.Table) ([]dialect.Column, error) {
	var cols []dialect.Column
	err := sqlx.SelectContext(ctx, q, &cols, `SELECT name, type, "notnull" <> 0 OR (pk > 0 AND `+rowidKey+`) AS not_null, pk AS key
		FROM pragma_table_info($1, $2) ORDER BY cid`, t.Name, cmp.Or(t.Schema, "main"))
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t, err)
	}
	return cols, nil
}

// Indexes implements [dialect.Catalog]; the rowid key is listed unnamed.
func (Dialect) Indexes(ctx context.Context, q sqlx.QueryerContext, t ident.Table) ([]dialect.Index, error) {
	var rows []dialect.IndexRow
	err := sqlx.SelectContext(ctx, q, &rows, `SELECT l.name, l."unique" <> 0 AS is_unique, true AS is_valid,
			coalesce((SELECT group_concat(name, ',') FROM (SELECT i.name FROM pragma_index_info(l.name, $2) i ORDER BY i.seqno)), '') AS columns
		FROM pragma_index_list($1, $2) l
		UNION ALL
		SELECT '', true, true, c.name FROM pragma_table_info($1, $2) c WHERE c.pk > 0 AND `+rowidKey, t.Name, cmp.Or(t.Schema, "main"))
	if err != nil {
		return nil, fmt.Errorf("read indexes of %s: %w", t, err)
	}
	return dialect.IndexesOf(rows), nil
}

// RelationExists implements [dialect.Objects]: anything of the name in
// the schema, compared without regard to case as SQLite does.
func (Dialect) RelationExists(ctx context.Context, q sqlx.QueryerContext, t ident.Table, name string) (bool, error) {
	var found bool
	err := sqlx.GetContext(ctx, q, &found, `SELECT EXISTS (SELECT 1 FROM `+schemaOf(t)+`.sqlite_schema WHERE name = $1 COLLATE NOCASE)`, name)
	return found, err
}

// ColumnShape implements [dialect.Objects]; SQLite keeps no collation
// apart from the declaration.
func (Dialect) ColumnShape(ctx context.Context, q sqlx.QueryerContext, t ident.Table, name string) ([]dialect.ColumnShape, error) {
	var have []dialect.ColumnShape
	err := sqlx.SelectContext(ctx, q, &have, `SELECT type, dflt_value IS NOT NULL AS has_default, "notnull" <> 0 AS not_null, NULL AS collation
		FROM pragma_table_info($1, $2) WHERE name = $3 COLLATE NOCASE`, t.Name, cmp.Or(t.Schema, "main"), name)
	return have, err
}

// IsTable implements [dialect.Objects].
func (Dialect) IsTable(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (string, error) {
	var kind string
	if err := sqlx.GetContext(ctx, q, &kind, `SELECT type FROM `+schemaOf(t)+`.sqlite_schema WHERE name = $1 COLLATE NOCASE`, t.Name); err != nil {
		return "", err
	}
	if kind != "table" {
		return "a " + kind, nil
	}
	return "", nil
}

// IndexDef implements [dialect.Objects]: the CREATE INDEX SQLite keeps.
// index is named in t's schema, where SQLite keeps a table's indexes.
func (Dialect) IndexDef(ctx context.Context, q sqlx.QueryerContext, index, t ident.Table) ([]dialect.IndexDef, error) {
	var def []dialect.IndexDef
	err := sqlx.SelectContext(ctx, q, &def, `SELECT coalesce(sql, '') AS def, tbl_name = $2 COLLATE NOCASE AS on_table FROM `+schemaOf(t)+`.sqlite_schema
		WHERE type = 'index' AND name = $1 COLLATE NOCASE`, index.Name, t.Name)
	return def, err
}

// IndexState implements [dialect.Objects]: an index SQLite has is valid
// (it is built in its transaction or not at all).
func (d Dialect) IndexState(ctx context.Context, q sqlx.QueryerContext, index, t ident.Table) (dialect.IndexState, error) {
	def, err := d.IndexDef(ctx, q, index, t)
	switch {
	case err != nil:
		return 0, err
	case len(def) == 1 && def[0].OnTable:
		return dialect.IndexValid, nil
	}
	found, err := d.RelationExists(ctx, q, t, index.Name)
	if err != nil || !found {
		return dialect.IndexAbsent, err
	}
	return dialect.IndexOther, nil
}

// ResolveSchema implements [dialect.Objects]: an unqualified name is
// main's.
func (Dialect) ResolveSchema(_ context.Context, _ sqlx.QueryerContext, t ident.Table) (sql.NullString, error) {
	return sql.NullString{String: cmp.Or(t.Schema, "main"), Valid: true}, nil
}
