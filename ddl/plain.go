package ddl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
)

// ErrUnsupported is wrapped by the error of an operation the database
// cannot do: on a database of plain DDL (SQLite), adding a constraint to
// an existing table, or an [Op] of the caller's own that is not a
// [PlainOp].
var ErrUnsupported = errors.New("operation not supported by the database")

// PlainOp is an [Op] that also has a plain form: the statements it takes
// on a database of plain DDL, which has no concurrent index builds, no
// constraints added NOT VALID, no lock or statement timeouts (SQLite, the
// embedded default). The executor runs the plain form there, where an Op
// of the caller's own without one fails with [ErrUnsupported] before
// anything runs. Its statements run in a write transaction each, unless
// NoTx.
type PlainOp interface {
	Op
	// PlainUp returns the statements that apply it on a database of
	// plain DDL.
	PlainUp() ([]Statement, error)
	// PlainDown returns the statements that undo it there, or
	// ErrIrreversible.
	PlainDown() ([]Statement, error)
}

// render returns the statements of o, applied (or undone, when down) on
// a database of dialect d at server version major. On a database of
// plain DDL ([dialect.Capabilities.PlainDDL]) the built-in operations are
// rendered by the dialect's [dialect.PlainRenderer], and an operation of
// the caller's own by its [PlainOp] form.
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
	type plainForm interface {
		plainUp(p dialect.PlainRenderer) ([]Statement, error)
		plainDown(p dialect.PlainRenderer) ([]Statement, error)
	}
	p, ok := d.(dialect.PlainRenderer)
	if !ok {
		return nil, fmt.Errorf("%w: %s renders no DDL of its own", ErrUnsupported, d)
	}
	// The built-in operations, values or pointers, have their plain forms
	// unexported.
	f, ok := o.(plainForm)
	if !ok {
		if f, ok := o.(PlainOp); ok {
			if down {
				return f.PlainDown()
			}
			return f.PlainUp()
		}
		return nil, fmt.Errorf("%w: %T has no form on %s (it does not implement ddl.PlainOp)", ErrUnsupported, o, d)
	}
	if down {
		return f.plainDown(p)
	}
	return f.plainUp(p)
}

// columnGuard skips a statement that adds (present) or drops a column
// when the catalog already shows it so.
type columnGuard struct {
	table   ident.Table
	name    string
	present bool
}

func (o AddColumn) plainUp(p dialect.PlainRenderer) ([]Statement, error) {
	t, c, typ, def, err := o.parts()
	if err != nil {
		return nil, err
	}
	sql, note := p.AddColumn(t.Quoted(), c, typ, def, o.Volatile)
	return []Statement{{SQL: sql, Note: note,
		column:  &columnGuard{table: t, name: o.Column, present: true},
		creates: &object{kind: kColumn, table: t, name: o.Column, typ: typ, hasDefault: def != "" && !o.Volatile}}}, nil
}

func (o AddColumn) plainDown(p dialect.PlainRenderer) ([]Statement, error) {
	return dropping(DropColumn{Table: o.Table, Column: o.Column}.plainUp(p))(o.made())
}

func (o DropColumn) plainUp(p dialect.PlainRenderer) ([]Statement, error) {
	t, c, err := tableColumn(o.Table, o.Column)
	if err != nil {
		return nil, err
	}
	sql, note := p.DropColumn(t.Quoted(), c)
	return []Statement{{SQL: sql, Note: note, column: &columnGuard{table: t, name: o.Column, present: false}}}, nil
}

func (o DropColumn) plainDown(dialect.PlainRenderer) ([]Statement, error) {
	return nil, ErrIrreversible
}

// A table is created and dropped with the same plain DDL in every
// dialect.
func (o AddTable) plainUp(dialect.PlainRenderer) ([]Statement, error) { return o.Up(0) }
func (o AddTable) plainDown(p dialect.PlainRenderer) ([]Statement, error) {
	return dropping(DropTable{Table: o.Table}.plainUp(p))(o.made())
}
func (o DropTable) plainUp(dialect.PlainRenderer) ([]Statement, error)   { return o.Up(0) }
func (o DropTable) plainDown(dialect.PlainRenderer) ([]Statement, error) { return nil, ErrIrreversible }

func (o CreateIndex) plainUp(p dialect.PlainRenderer) ([]Statement, error) {
	return plainIndex(p, o.Name, o.Table, o.Columns, o.Unique, o.Where, false)
}

func (o CreateIndex) plainDown(p dialect.PlainRenderer) ([]Statement, error) {
	return plainDropIndex(p, o.Name, o.Table)
}

// plainMade names the index a plain CREATE INDEX makes.
func plainMade(name, tbl string, columns []string, unique bool, where string) (*object, error) {
	t, err := tableOf(tbl)
	return &object{kind: kIndex, table: t, name: name, cols: columns, unique: unique, expr: strings.TrimSpace(where)}, err
}

// plainDropIndex drops the index name that a CREATE INDEX on tbl made.
func plainDropIndex(p dialect.PlainRenderer, name, tbl string) ([]Statement, error) {
	t, err := tableOf(tbl)
	if err != nil {
		return nil, err
	}
	if _, err := named("index", name); err != nil {
		return nil, err
	}
	return dropping([]Statement{{SQL: p.DropIndex(t, name)}}, nil)(plainMade(name, tbl, nil, false, ""))
}

// plainIndex renders CREATE INDEX on tbl in the dialect's form; unique
// says it stands for a unique constraint.
func plainIndex(p dialect.PlainRenderer, name, tbl string, columns []string, unique bool, where string, constraint bool) ([]Statement, error) {
	t, err := tableOf(tbl)
	if err != nil {
		return nil, err
	}
	if _, err := named("index", name); err != nil {
		return nil, err
	}
	cs, err := cols(columns)
	if err != nil {
		return nil, err
	}
	w := ""
	if where != "" {
		if w, err = checkFragment("where", where); err != nil {
			return nil, err
		}
	}
	made, err := plainMade(name, tbl, columns, unique, where)
	sql, strict, note := p.CreateIndex(t, name, cs, unique, w, constraint)
	return []Statement{{SQL: sql, strict: strict, Note: note, creates: made}}, err
}

func (o DropIndex) plainUp(dialect.PlainRenderer) ([]Statement, error) {
	n, err := o.quoted()
	if err != nil {
		return nil, err
	}
	return []Statement{{SQL: "DROP INDEX IF EXISTS " + n}}, nil
}

func (o DropIndex) plainDown(dialect.PlainRenderer) ([]Statement, error) { return nil, ErrIrreversible }

func (o AddUnique) plainUp(p dialect.PlainRenderer) ([]Statement, error) {
	return plainIndex(p, o.Name, o.Table, o.Columns, true, "", true)
}

func (o AddUnique) plainDown(p dialect.PlainRenderer) ([]Statement, error) {
	return plainDropIndex(p, o.Name, o.Table)
}

// unsupported validates o as its own form would (so hostile input is
// refused as such) and refuses it, saying why the dialect cannot.
func unsupported(o Op, p dialect.PlainRenderer, what dialect.Addition) ([]Statement, error) {
	if _, err := o.Up(0); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, p.CannotAdd(what))
}

func (o AddForeignKey) plainUp(p dialect.PlainRenderer) ([]Statement, error) {
	return unsupported(o, p, dialect.AddsForeignKey)
}

func (o AddForeignKey) plainDown(p dialect.PlainRenderer) ([]Statement, error) { return o.plainUp(p) }

func (o AddCheck) plainUp(p dialect.PlainRenderer) ([]Statement, error) {
	return unsupported(o, p, dialect.AddsCheck)
}

func (o AddCheck) plainDown(p dialect.PlainRenderer) ([]Statement, error) { return o.plainUp(p) }

func (o SetNotNull) plainUp(p dialect.PlainRenderer) ([]Statement, error) {
	return unsupported(o, p, dialect.AddsNotNull)
}

func (o SetNotNull) plainDown(p dialect.PlainRenderer) ([]Statement, error) { return o.plainUp(p) }
