package ddl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
)

// ErrUnsupported is wrapped by the error of an operation the database
// cannot do: on SQLite, adding a constraint to an existing table, or an
// [Op] of the caller's own without a SQLite form.
var ErrUnsupported = errors.New("operation not supported by the database")

// SQLiteOp is an [Op] that also knows its SQLite form. The executor uses
// it on a SQLite database, where an Op without it fails with
// [ErrUnsupported]. Statements run in a write transaction each, unless
// NoTx; guards go in Exists.
type SQLiteOp interface {
	Op
	// SQLiteUp returns the statements that apply it on SQLite.
	SQLiteUp() ([]Statement, error)
	// SQLiteDown returns the statements that undo it on SQLite, or
	// ErrIrreversible.
	SQLiteDown() ([]Statement, error)
}

// The notes a SQLite statement carries: what it gives up against the
// PostgreSQL form.
const (
	noteIndex      = "sqlite: CREATE INDEX without CONCURRENTLY: writers wait for the build"
	noteUnique     = "sqlite: unique constraint as a unique index (SQLite cannot add a constraint to an existing table), built without CONCURRENTLY: writers wait for the build"
	noteDropColumn = "sqlite: DROP COLUMN rewrites the table under the database write lock, and fails while an index, constraint, view or trigger uses the column"
)

// render returns the statements of o, applied (or undone, when down) on
// a database of dialect d at server version major.
func render(d dialect.Dialect, o Op, major int, down bool) ([]Statement, error) {
	if !d.PlainDDL() {
		if !down {
			return o.Up(major)
		}
		st, err := o.Down(major)
		if l, ok := o.(interface{ leftovers() ([]Statement, error) }); ok && err == nil {
			more, err := l.leftovers()
			return append(st, more...), err
		}
		return st, err
	}
	type sqliteForm interface {
		sqliteUp() ([]Statement, error)
		sqliteDown() ([]Statement, error)
	}
	// The built-in operations, values or pointers, have their SQLite forms
	// unexported; the caller's own implement SQLiteOp.
	if f, ok := o.(sqliteForm); ok {
		if down {
			return f.sqliteDown()
		}
		return f.sqliteUp()
	}
	if f, ok := o.(SQLiteOp); ok {
		if down {
			return f.SQLiteDown()
		}
		return f.SQLiteUp()
	}
	return nil, fmt.Errorf("%w: %T has no SQLite form (it does not implement ddl.SQLiteOp)", ErrUnsupported, o)
}

// columnGuard skips a statement that adds (present) or drops a column
// when the catalog already shows it so.
type columnGuard struct {
	table   ident.Table
	name    string
	present bool
}

func (o AddColumn) sqliteUp() ([]Statement, error) {
	t, c, typ, def, err := o.parts()
	if err != nil {
		return nil, err
	}
	st := Statement{SQL: fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", t.Quoted(), c, typ),
		column:  &columnGuard{table: t, name: o.Column, present: true},
		creates: &object{kind: kColumn, table: t, name: o.Column, typ: typ, hasDefault: def != "" && !o.Volatile}}
	if def != "" {
		if o.Volatile {
			st.Note = fmt.Sprintf("sqlite: column added without its volatile default %s (SQLite adds a column only with a constant default "+
				"and cannot set one later): new rows get NULL unless written, existing rows are the backfill's", def)
		} else {
			st.SQL += " DEFAULT " + def
		}
	}
	return []Statement{st}, nil
}

func (o AddColumn) sqliteDown() ([]Statement, error) {
	return dropping(DropColumn{Table: o.Table, Column: o.Column}.sqliteUp())(o.made())
}

func (o DropColumn) sqliteUp() ([]Statement, error) {
	t, c, err := tableColumn(o.Table, o.Column)
	if err != nil {
		return nil, err
	}
	return []Statement{{SQL: fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", t.Quoted(), c), Note: noteDropColumn,
		column: &columnGuard{table: t, name: o.Column, present: false}}}, nil
}

func (o DropColumn) sqliteDown() ([]Statement, error) { return nil, ErrIrreversible }

// A table is created and dropped with the same plain DDL in both
// dialects.
func (o AddTable) sqliteUp() ([]Statement, error) { return o.Up(0) }
func (o AddTable) sqliteDown() ([]Statement, error) {
	return dropping(DropTable{Table: o.Table}.sqliteUp())(o.made())
}
func (o DropTable) sqliteUp() ([]Statement, error)   { return o.Up(0) }
func (o DropTable) sqliteDown() ([]Statement, error) { return nil, ErrIrreversible }

func (o CreateIndex) sqliteUp() ([]Statement, error) {
	return sqliteIndex(o.Name, o.Table, o.Columns, o.Unique, o.Where, noteIndex)
}

func (o CreateIndex) sqliteDown() ([]Statement, error) { return sqliteDropIndex(o.Name, o.Table) }

// sqliteMade names the index CREATE INDEX makes on SQLite.
func sqliteMade(name, tbl string, columns []string, unique bool, where string) (*object, error) {
	t, err := tableOf(tbl)
	return &object{kind: kIndex, table: t, name: name, cols: columns, unique: unique, expr: strings.TrimSpace(where)}, err
}

// sqliteDropIndex drops the index name that a CREATE INDEX on tbl made:
// in tbl's schema, where SQLite keeps a table's indexes.
func sqliteDropIndex(name, tbl string) ([]Statement, error) {
	_, n, err := sqliteIndexName(name, tbl)
	if err != nil {
		return nil, err
	}
	return dropping([]Statement{{SQL: "DROP INDEX IF EXISTS " + n}}, nil)(sqliteMade(name, tbl, nil, false, ""))
}

// sqliteIndexName quotes the index name of a table's index as SQLite
// wants it: qualified by the table's schema, where SQLite keeps it.
func sqliteIndexName(name, tbl string) (ident.Table, string, error) {
	t, err := tableOf(tbl)
	if err != nil {
		return ident.Table{}, "", err
	}
	n, err := named("index", name)
	if err != nil {
		return ident.Table{}, "", err
	}
	if t.Schema != "" {
		s, _ := col(t.Schema)
		n = s + "." + n
	}
	return t, n, nil
}

// sqliteIndex renders CREATE INDEX in SQLite's form, where the schema
// qualifies the index's name and the table is named bare.
func sqliteIndex(name, tbl string, columns []string, unique bool, where, note string) ([]Statement, error) {
	t, n, err := sqliteIndexName(name, tbl)
	if err != nil {
		return nil, err
	}
	cs, err := cols(columns)
	if err != nil {
		return nil, err
	}
	on, _ := col(t.Name)
	u, w := "", ""
	if unique {
		u = "UNIQUE "
	}
	if where != "" {
		f, err := fragment("where", where)
		if err != nil {
			return nil, err
		}
		w = " WHERE " + f
	}
	made, err := sqliteMade(name, tbl, columns, unique, where)
	return []Statement{{SQL: fmt.Sprintf("CREATE %sINDEX IF NOT EXISTS %s ON %s (%s)%s", u, n, on, cs, w),
		strict: fmt.Sprintf("CREATE %sINDEX %s ON %s (%s)%s", u, n, on, cs, w), Note: note, creates: made}}, err
}

func (o DropIndex) sqliteUp() ([]Statement, error) {
	n, err := o.quoted()
	if err != nil {
		return nil, err
	}
	return []Statement{{SQL: "DROP INDEX IF EXISTS " + n}}, nil
}

func (o DropIndex) sqliteDown() ([]Statement, error) { return nil, ErrIrreversible }

func (o AddUnique) sqliteUp() ([]Statement, error) {
	return sqliteIndex(o.Name, o.Table, o.Columns, true, "", noteUnique)
}

func (o AddUnique) sqliteDown() ([]Statement, error) { return sqliteDropIndex(o.Name, o.Table) }

// unsupported validates o as its PostgreSQL form would (so hostile input
// is refused as such) and refuses it.
func unsupported(o Op, why string) ([]Statement, error) {
	if _, err := o.Up(0); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, why)
}

func (o AddForeignKey) sqliteUp() ([]Statement, error) {
	return unsupported(o, "SQLite cannot add a foreign key to an existing table; declare it when the table is created")
}

func (o AddForeignKey) sqliteDown() ([]Statement, error) { return o.sqliteUp() }

func (o AddCheck) sqliteUp() ([]Statement, error) {
	return unsupported(o, "SQLite cannot add a check constraint to an existing table; declare it when the table is created")
}

func (o AddCheck) sqliteDown() ([]Statement, error) { return o.sqliteUp() }

func (o SetNotNull) sqliteUp() ([]Statement, error) {
	return unsupported(o, "SQLite cannot make an existing column NOT NULL; declare it when the table is created "+
		"(or add the column NOT NULL with a constant default)")
}

func (o SetNotNull) sqliteDown() ([]Statement, error) { return o.sqliteUp() }
