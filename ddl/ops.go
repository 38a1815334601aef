package ddl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
)

// Statement is one step of an operation.
type Statement struct {
	SQL string
	// NoTx: the statement cannot run in a transaction block.
	NoTx bool
	// Exists, when set, is a query returning true when the statement's
	// effect is already there; the statement is then skipped.
	Exists     string
	ExistsArgs []any
	// Index names an index the statement builds concurrently, in
	// IndexSchema (its table's; empty: the search path decides): an
	// INVALID one of that name, left by a failed build, is dropped first.
	// The name is taken as it is, never split at a dot.
	Index, IndexSchema string
	// Note, when set, says what the database cannot do the safe way for
	// this statement (on SQLite: "CREATE INDEX without CONCURRENTLY");
	// the executor records it with the step and reports it.
	Note string
	// column, when set, skips the statement when the catalog already
	// shows the column present (or absent) as the statement leaves it:
	// the guard of a dialect whose DDL has no IF [NOT] EXISTS.
	column *columnGuard
	// creates names the object the statement makes (the executor records
	// whether this run made it or found it there); drops, one it removes
	// (run only when this migration's apply made it); needs, one it
	// changes (run only when this migration made it). Set by this
	// package's operations only: a caller's own Op runs as written.
	creates, drops, needs *object
	// guard, when set, skips the statement when the catalog shows its
	// effect there already, read by the dialect ([dialect.Constraints]).
	guard *catalogGuard
	// strict, when set, is SQL the executor runs in place of SQL once it
	// has found the object absent: the same statement without IF NOT
	// EXISTS, so that an object made by another between the check and
	// the statement fails it (and the retry compares what is there)
	// instead of making it a no-op recorded as this migration's.
	strict string
}

// The kinds of object an operation makes.
const (
	kColumn     = "column"
	kTable      = "table"
	kIndex      = "index"
	kCheck      = "check constraint"
	kForeignKey = "foreign key"
	kUnique     = "unique constraint"
	kNotNull    = "not null" // a column's NOT NULL (from 18, a constraint named name)
)

// object is one object an operation makes, named as the operation names
// it, with what the operation wants it to be: an object found there
// already is taken as done only when it is that.
type object struct {
	kind  string
	table ident.Table // the table it is on (a table: itself)
	// name is the column's, index's or constraint's name; for kNotNull
	// the column's, with the constraint's in constraint.
	name       string
	constraint string
	// anyMigration: a helper object (SetNotNull's CHECK) that may be
	// dropped once any migration's apply is recorded as its maker.
	anyMigration bool

	typ        string   // kColumn: its type, SQL
	hasDefault bool     // kColumn
	columns    string   // kTable: the column list, SQL
	cols       []string // kIndex, kForeignKey, kUnique: its columns
	unique     bool     // kIndex
	expr       string   // kCheck: its expression; kIndex: its predicate
	ref        ident.Table
	refCols    []string // kForeignKey
	cascade    bool     // kForeignKey
}

// key names the object in schemashift_ddl_steps: the same for the
// statement that makes it and the one that drops it.
func (o *object) key() string {
	k := o.kind + " " + o.table.Quoted()
	if o.name != "" {
		n, _ := ident.Quote(o.name) // checked when rendered
		k += " " + n
	}
	return k
}

func (o *object) String() string {
	if o.kind == kTable {
		return "table " + o.table.String()
	}
	return fmt.Sprintf("%s %q on %s", o.kind, o.name, o.table)
}

// ErrExists is wrapped by the error of an operation whose object is there
// already, not made by this migration, with another definition than the
// operation's (a column of another type, an index on other columns): the
// executor neither takes it as done nor changes it. The error names the
// object and what differs.
var ErrExists = errors.New("object exists with another definition")

// Op is one schema operation. An Op of the caller's own runs where DDL
// runs in the forms of Up and Down (PostgreSQL); on SQLite, whose forms
// of the built-in operations its dialect renders, it fails with
// [ErrUnsupported].
type Op interface {
	// Up returns the statements that apply it, for a server of the given
	// major version.
	Up(major int) ([]Statement, error)
	// Down returns the statements that undo it, or ErrIrreversible.
	Down(major int) ([]Statement, error)
	String() string
}

// ErrIrreversible: the operation cannot be undone (a drop).
var ErrIrreversible = errors.New("operation cannot be undone")

// ErrInvalidOp is wrapped by every operation validation error.
var ErrInvalidOp = errors.New("invalid DDL operation")

func table(name string) (string, error) {
	t, err := tableOf(name)
	if err != nil {
		return "", err
	}
	return t.Quoted(), nil
}

func tableOf(name string) (ident.Table, error) {
	t, err := ident.ParseTable(name)
	if err != nil {
		return ident.Table{}, fmt.Errorf("%w: table %q: %v", ErrInvalidOp, name, err)
	}
	return t, nil
}

func col(name string) (string, error) { return named("column", name) }

// named quotes the name of an object of kind (column, index, constraint),
// saying which when it is invalid.
func named(kind, name string) (string, error) {
	q, err := ident.Quote(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q: %v", ErrInvalidOp, kind, name, err)
	}
	return q, nil
}

// tableColumn validates and quotes a table and one of its columns.
func tableColumn(tbl, column string) (ident.Table, string, error) {
	t, err := tableOf(tbl)
	if err != nil {
		return ident.Table{}, "", err
	}
	c, err := col(column)
	return t, c, err
}

func cols(names []string) (string, error) {
	if len(names) == 0 {
		return "", fmt.Errorf("%w: no columns", ErrInvalidOp)
	}
	q, err := ident.QuoteAll(names)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidOp, err)
	}
	return strings.Join(q, ", "), nil
}

// catalogGuard is a [dialect.Guard] over constraint and column of table.
type catalogGuard struct {
	guard              dialect.Guard
	table              ident.Table
	constraint, column string
}

// namedGuard skips an ADD CONSTRAINT whose constraint is there.
func namedGuard(t ident.Table, name string) *catalogGuard {
	return &catalogGuard{guard: dialect.GuardNamed, table: t, constraint: name}
}

// validatedGuard skips a VALIDATE CONSTRAINT whose constraint is validated
// already (one found there, not this migration's, is then left as it is).
func validatedGuard(t ident.Table, name string) *catalogGuard {
	return &catalogGuard{guard: dialect.GuardValidated, table: t, constraint: name}
}

// AddColumn adds a nullable column, or one with a constant default. A
// volatile default (Volatile) is split: the column is added without it,
// the default set after, and existing rows are left to the backfill.
type AddColumn struct {
	Table, Column string
	// Type is SQL: exactly one type name, as PostgreSQL's parser reads it
	// after ADD COLUMN ("timestamp with time zone", "numeric(12,2)",
	// "text[]"); a collation, a constraint, a second column or anything
	// else is refused with [ErrFragment].
	Type string
	// Default, when set, is SQL: exactly one expression, as the parser
	// reads it after DEFAULT ("now()", "'EUR'"), with no subquery. The
	// functions it calls are the plan author's choice and are not checked.
	Default  string
	Volatile bool
}

func (o AddColumn) String() string {
	return fmt.Sprintf("add column %s.%s %s", o.Table, o.Column, o.Type)
}

// Up implements [Op].
func (o AddColumn) Up(int) ([]Statement, error) {
	tt, c, typ, def, err := o.parts()
	if err != nil {
		return nil, err
	}
	t := tt.Quoted()
	made := &object{kind: kColumn, table: tt, name: o.Column, typ: typ, hasDefault: def != ""}
	add := func(rest string) Statement {
		return Statement{SQL: fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s%s", t, c, typ, rest),
			strict: fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s%s", t, c, typ, rest), creates: made}
	}
	if def == "" {
		return []Statement{add("")}, nil
	}
	if !o.Volatile {
		return []Statement{add(" DEFAULT " + def)}, nil
	}
	// The default is set only on the column this migration added: one
	// found there is left as it is.
	return []Statement{
		add(""),
		{SQL: fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", t, c, def), needs: made},
	}, nil
}

// parts validates and quotes the table and column, and checks the type
// and the default ("" when none) as SQL fragments, each where it goes.
func (o AddColumn) parts() (t ident.Table, c, typ, def string, err error) {
	if t, c, err = tableColumn(o.Table, o.Column); err != nil {
		return
	}
	if typ, err = fit("Type", typeSlot, o.Type); err != nil {
		return t, c, "", "", o.refused(err)
	}
	if o.Default == "" {
		return
	}
	sl := defaultSlot(typ)
	if o.Volatile {
		sl = setDefaultSlot
	}
	if def, err = fit("Default", sl, o.Default); err != nil {
		return t, c, "", "", o.refused(err)
	}
	return
}

// refused says which operation a refused fragment belongs to.
func (o AddColumn) refused(err error) error {
	return fmt.Errorf("ddl: add column %s.%s: %w", o.Table, o.Column, err)
}

// Down implements [Op]: it drops the column only when this migration's
// apply added it.
func (o AddColumn) Down(int) ([]Statement, error) {
	return dropping(DropColumn{Table: o.Table, Column: o.Column}.Up(0))(o.made())
}

// made names the column the operation adds.
func (o AddColumn) made() (*object, error) {
	t, _, err := tableColumn(o.Table, o.Column)
	return &object{kind: kColumn, table: t, name: o.Column}, err
}

// dropping marks the statements of a drop as removing the object made,
// so that the executor runs them only when this migration made it.
func dropping(st []Statement, err error) func(*object, error) ([]Statement, error) {
	return func(made *object, err2 error) ([]Statement, error) {
		if err != nil {
			return nil, err
		}
		if err2 != nil {
			return nil, err2
		}
		for i := range st {
			st[i].drops = made
		}
		return st, nil
	}
}

// AddTable creates a table.
type AddTable struct {
	Table string
	// Columns is SQL: the table's column definitions and table
	// constraints, as PostgreSQL's parser reads them between the
	// parentheses of CREATE TABLE ("id bigint PRIMARY KEY, amount
	// numeric(12,2) NOT NULL, CHECK (amount >= 0)"). A LIKE clause,
	// anything after the closing parenthesis (INHERITS, PARTITION BY,
	// WITH, …), a subquery or a second statement is refused with
	// [ErrFragment]; types, defaults, references and the functions they
	// call are the plan author's choice and are not checked.
	Columns string
}

func (o AddTable) String() string { return "add table " + o.Table }

// Up implements [Op].
func (o AddTable) Up(int) ([]Statement, error) {
	t, err := table(o.Table)
	if err != nil {
		return nil, err
	}
	def, err := fit("Columns", columnsSlot, o.Columns)
	if err != nil {
		return nil, fmt.Errorf("ddl: %s: %w", o, err)
	}
	tt, _ := tableOf(o.Table)
	return []Statement{{SQL: fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s)", t, def), strict: fmt.Sprintf("CREATE TABLE %s (%s)", t, def),
		creates: &object{kind: kTable, table: tt, columns: def}}}, nil
}

// Down implements [Op]: it drops the table only when this migration's
// apply created it.
func (o AddTable) Down(int) ([]Statement, error) {
	return dropping(DropTable{Table: o.Table}.Up(0))(o.made())
}

func (o AddTable) made() (*object, error) {
	t, err := tableOf(o.Table)
	return &object{kind: kTable, table: t}, err
}

// CreateIndex builds an index concurrently.
type CreateIndex struct {
	Name, Table string
	Columns     []string
	Unique      bool
	// Where, when set, makes a partial index. It is SQL: exactly one
	// expression, as PostgreSQL's parser reads it after WHERE
	// ("deleted_at IS NULL"), with no subquery; anything else is refused
	// with [ErrFragment]. (PostgreSQL itself refuses a function that is
	// not IMMUTABLE there.)
	Where string
}

func (o CreateIndex) String() string { return fmt.Sprintf("create index %s on %s", o.Name, o.Table) }

// Up implements [Op].
func (o CreateIndex) Up(int) ([]Statement, error) {
	t, err := tableOf(o.Table)
	if err != nil {
		return nil, err
	}
	n, err := named("index", o.Name)
	if err != nil {
		return nil, err
	}
	cs, err := cols(o.Columns)
	if err != nil {
		return nil, err
	}
	unique, where := "", ""
	if o.Unique {
		unique = "UNIQUE "
	}
	if o.Where != "" {
		w, err := fit("Where", whereSlot, o.Where)
		if err != nil {
			return nil, fmt.Errorf("ddl: %s: %w", o, err)
		}
		where = " WHERE " + w
	}
	return []Statement{{SQL: fmt.Sprintf("CREATE %sINDEX CONCURRENTLY IF NOT EXISTS %s ON %s (%s)%s", unique, n, t.Quoted(), cs, where),
		strict: fmt.Sprintf("CREATE %sINDEX CONCURRENTLY %s ON %s (%s)%s", unique, n, t.Quoted(), cs, where),
		NoTx:   true, Index: o.Name, IndexSchema: t.Schema, creates: o.made(t)}}, nil
}

// made names the index the operation builds, on its table t.
func (o CreateIndex) made(t ident.Table) *object {
	return &object{kind: kIndex, table: t, name: o.Name, cols: o.Columns, unique: o.Unique, expr: strings.TrimSpace(o.Where)}
}

// Down implements [Op]: it drops the index it made, in its table's schema
// (PostgreSQL keeps an index beside its table), not one of the same name
// elsewhere.
func (o CreateIndex) Down(int) ([]Statement, error) {
	t, err := tableOf(o.Table)
	if err != nil {
		return nil, err
	}
	return dropping(DropIndex{Schema: t.Schema, Name: o.Name}.Up(0))(o.made(t), nil)
}

// DropIndex drops an index concurrently. Name is the index's name as it
// is: a dot is part of it, never a schema separator. Schema, when given,
// is the schema the index is in (its table's); empty, the search path
// decides.
type DropIndex struct{ Schema, Name string }

func (o DropIndex) String() string { return "drop index " + o.index().String() }

func (o DropIndex) index() ident.Table { return ident.Table{Schema: o.Schema, Name: o.Name} }

// Up implements [Op].
func (o DropIndex) Up(int) ([]Statement, error) {
	n, err := o.quoted()
	if err != nil {
		return nil, err
	}
	return []Statement{{SQL: "DROP INDEX CONCURRENTLY IF EXISTS " + n, NoTx: true}}, nil
}

// quoted is the index's name, schema-qualified when Schema is given.
func (o DropIndex) quoted() (string, error) {
	if err := o.index().Check(); err != nil {
		return "", fmt.Errorf("%w: index %q: %v", ErrInvalidOp, o.index().String(), err)
	}
	return o.index().Quoted(), nil
}

// Down implements [Op].
func (o DropIndex) Down(int) ([]Statement, error) { return nil, ErrIrreversible }

// AddForeignKey adds a foreign key NOT VALID, then validates it.
type AddForeignKey struct {
	Name, Table       string
	Columns           []string
	RefTable          string
	RefColumns        []string
	OnDeleteCascading bool
}

func (o AddForeignKey) String() string {
	return fmt.Sprintf("add foreign key %s on %s", o.Name, o.Table)
}

// Up implements [Op].
func (o AddForeignKey) Up(int) ([]Statement, error) {
	t, err := table(o.Table)
	if err != nil {
		return nil, err
	}
	rt, err := table(o.RefTable)
	if err != nil {
		return nil, err
	}
	n, err := named("constraint", o.Name)
	if err != nil {
		return nil, err
	}
	cs, err := cols(o.Columns)
	if err != nil {
		return nil, err
	}
	rcs, err := cols(o.RefColumns)
	if err != nil {
		return nil, err
	}
	onDelete := ""
	if o.OnDeleteCascading {
		onDelete = " ON DELETE CASCADE"
	}
	tt, _ := tableOf(o.Table)
	rtt, _ := tableOf(o.RefTable)
	return []Statement{
		{SQL: fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s)%s NOT VALID", t, n, cs, rt, rcs, onDelete),
			guard:   namedGuard(tt, o.Name),
			creates: &object{kind: kForeignKey, table: tt, name: o.Name, cols: o.Columns, ref: rtt, refCols: o.RefColumns, cascade: o.OnDeleteCascading}},
		{SQL: fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", t, n), guard: validatedGuard(tt, o.Name)},
	}, nil
}

// Down implements [Op]: it drops the constraint only when this
// migration's apply added it.
func (o AddForeignKey) Down(int) ([]Statement, error) {
	t, err := tableOf(o.Table)
	return dropping(dropConstraint(o.Table, o.Name))(&object{kind: kForeignKey, table: t, name: o.Name}, err)
}

func dropConstraint(tbl, name string) ([]Statement, error) {
	t, err := table(tbl)
	if err != nil {
		return nil, err
	}
	n, err := named("constraint", name)
	if err != nil {
		return nil, err
	}
	return []Statement{{SQL: fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", t, n)}}, nil
}

// AddCheck adds a check constraint NOT VALID, then validates it.
type AddCheck struct {
	Name, Table string
	// Expr is SQL: exactly one expression, as PostgreSQL's parser reads it
	// in CHECK ( … ) ("amount >= 0 AND currency IN ('EUR', 'USD')"), with
	// no subquery; anything else is refused with [ErrFragment]. The
	// functions it calls are the plan author's choice and are not checked:
	// VALIDATE runs them on every row.
	Expr string
}

func (o AddCheck) String() string { return fmt.Sprintf("add check %s on %s", o.Name, o.Table) }

// Up implements [Op].
func (o AddCheck) Up(int) ([]Statement, error) {
	t, err := table(o.Table)
	if err != nil {
		return nil, err
	}
	n, err := named("constraint", o.Name)
	if err != nil {
		return nil, err
	}
	e, err := fit("Expr", checkSlot, o.Expr)
	if err != nil {
		return nil, fmt.Errorf("ddl: %s: %w", o, err)
	}
	tt, _ := tableOf(o.Table)
	return []Statement{
		{SQL: fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s) NOT VALID", t, n, e), guard: namedGuard(tt, o.Name),
			creates: &object{kind: kCheck, table: tt, name: o.Name, expr: e}},
		{SQL: fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", t, n), guard: validatedGuard(tt, o.Name)},
	}, nil
}

// Down implements [Op]: it drops the constraint only when this
// migration's apply added it.
func (o AddCheck) Down(int) ([]Statement, error) {
	t, err := tableOf(o.Table)
	return dropping(dropConstraint(o.Table, o.Name))(&object{kind: kCheck, table: t, name: o.Name}, err)
}

// SetNotNull makes a column NOT NULL without a long lock: through a
// validated CHECK (then SET NOT NULL uses it and skips the scan), or on
// PostgreSQL 18+ a native NOT NULL constraint added NOT VALID.
type SetNotNull struct {
	Table, Column string
}

func (o SetNotNull) String() string { return fmt.Sprintf("set not null %s.%s", o.Table, o.Column) }

// constraint names the helper CHECK after the column, shortened on a
// character boundary with a hash when the column's name is long.
func (o SetNotNull) constraint() string { return ident.Derive(o.Column, "_not_null") }

// Up implements [Op]. A column NOT NULL already (declared so, a primary
// key, or from 18 any validated NOT NULL constraint, whatever its name) is
// left as it is.
func (o SetNotNull) Up(major int) ([]Statement, error) {
	tt, c, err := tableColumn(o.Table, o.Column)
	if err != nil {
		return nil, err
	}
	t := tt.Quoted()
	n, err := named("constraint", o.constraint())
	if err != nil {
		return nil, err
	}
	notNull := &object{kind: kNotNull, table: tt, name: o.Column}
	if major >= 18 {
		// The column's NOT NULL is a constraint of its own, whatever its
		// name (CREATE TABLE names it table_column_not_null), and a second
		// one is refused (55000): skip when the column has one.
		notNull.constraint = o.constraint()
		return []Statement{
			{SQL: fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s NOT NULL %s NOT VALID", t, n, c),
				guard:   &catalogGuard{guard: dialect.GuardNamedOrNotNull, table: tt, constraint: o.constraint(), column: o.Column},
				creates: notNull},
			{SQL: fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", t, n),
				guard: &catalogGuard{guard: dialect.GuardNoneInvalid, table: tt, constraint: o.constraint()}},
		}, nil
	}
	helper := o.helper(tt, c)
	return []Statement{
		{SQL: fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID", t, n, c),
			guard:   &catalogGuard{guard: dialect.GuardNamedOrNotNull, table: tt, constraint: o.constraint(), column: o.Column},
			creates: helper},
		{SQL: fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", t, n),
			guard: &catalogGuard{guard: dialect.GuardNoneInvalid, table: tt, constraint: o.constraint()}},
		{SQL: fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", t, c),
			guard:   &catalogGuard{guard: dialect.GuardNotNull, table: tt, column: o.Column},
			creates: notNull},
		// The helper goes once NOT NULL holds, when an apply (this
		// migration's or another's, cut off after adding it) made it: a
		// CHECK of that name made by hand stays.
		{SQL: fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", t, n), drops: helper},
	}, nil
}

// helper names the CHECK the operation adds before PostgreSQL 18.
func (o SetNotNull) helper(t ident.Table, c string) *object {
	return &object{kind: kCheck, table: t, name: o.constraint(), expr: c + " IS NOT NULL", anyMigration: true}
}

// Down implements [Op]: it drops the NOT NULL (and the helper CHECK of an
// apply cut off) only when this migration's apply made it.
func (o SetNotNull) Down(major int) ([]Statement, error) {
	tt, c, err := tableColumn(o.Table, o.Column)
	if err != nil {
		return nil, err
	}
	t := tt.Quoted()
	n, err := named("constraint", o.constraint())
	if err != nil {
		return nil, err
	}
	notNull := &object{kind: kNotNull, table: tt, name: o.Column}
	first := o.helper(tt, c)
	first.anyMigration = false
	if major >= 18 {
		first = notNull
	}
	return []Statement{
		{SQL: fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", t, n), drops: first},
		{SQL: fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", t, c), drops: notNull},
	}, nil
}

// AddUnique adds a unique constraint on a concurrently built index.
type AddUnique struct {
	Name, Table string
	Columns     []string
}

func (o AddUnique) String() string { return fmt.Sprintf("add unique %s on %s", o.Name, o.Table) }

// Up implements [Op]. The constraint takes over only the index this
// migration built: an index of that name found there that is not the
// constraint's already is refused with [ErrExists].
func (o AddUnique) Up(major int) ([]Statement, error) {
	idx, err := CreateIndex{Name: o.Name, Table: o.Table, Columns: o.Columns, Unique: true}.Up(major)
	if err != nil {
		return nil, err
	}
	tt, _ := tableOf(o.Table)
	t := tt.Quoted()
	n, _ := col(o.Name)
	return append(idx, Statement{SQL: fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s", t, n, n),
		guard:   namedGuard(tt, o.Name),
		creates: &object{kind: kUnique, table: tt, name: o.Name, cols: o.Columns}, needs: idx[0].creates}), nil
}

// Down implements [Op]: it drops the constraint (and its index) only when
// this migration's apply added it.
func (o AddUnique) Down(int) ([]Statement, error) {
	t, err := tableOf(o.Table)
	return dropping(dropConstraint(o.Table, o.Name))(&object{kind: kUnique, table: t, name: o.Name}, err)
}

// leftovers drops the index an apply cut off between its two steps
// built for the constraint it did not add: the constraint's drop, in
// Down, would not remove it.
func (o AddUnique) leftovers() ([]Statement, error) {
	t, err := tableOf(o.Table)
	if err != nil {
		return nil, err
	}
	return dropping(DropIndex{Schema: t.Schema, Name: o.Name}.Up(0))(CreateIndex{Name: o.Name, Table: o.Table, Columns: o.Columns, Unique: true}.made(t), nil)
}

// DropColumn drops a column: a contract operation.
type DropColumn struct{ Table, Column string }

func (o DropColumn) String() string { return fmt.Sprintf("drop column %s.%s", o.Table, o.Column) }

// Up implements [Op].
func (o DropColumn) Up(int) ([]Statement, error) {
	tt, c, err := tableColumn(o.Table, o.Column)
	if err != nil {
		return nil, err
	}
	t := tt.Quoted()
	return []Statement{{SQL: fmt.Sprintf("ALTER TABLE %s DROP COLUMN IF EXISTS %s", t, c)}}, nil
}

// Down implements [Op].
func (o DropColumn) Down(int) ([]Statement, error) { return nil, ErrIrreversible }

// DropTable drops a table: a contract operation.
type DropTable struct{ Table string }

func (o DropTable) String() string { return "drop table " + o.Table }

// Up implements [Op].
func (o DropTable) Up(int) ([]Statement, error) {
	t, err := table(o.Table)
	if err != nil {
		return nil, err
	}
	return []Statement{{SQL: "DROP TABLE IF EXISTS " + t}}, nil
}

// Down implements [Op].
func (o DropTable) Down(int) ([]Statement, error) { return nil, ErrIrreversible }

// RenameColumn renames a column the way a fleet can live with: the expand
// adds the new column, dual writes and a backfill bridge the two, and the
// contract drops the old one. It never issues a bare RENAME.
func RenameColumn(tbl, from, to, typ string) (expand, contract []Op) {
	return []Op{AddColumn{Table: tbl, Column: to, Type: typ}}, []Op{DropColumn{Table: tbl, Column: from}}
}

// ChangeType changes a column's type through a new column, like
// [RenameColumn]: the new column holds the new type.
func ChangeType(tbl, column, newColumn, newType string) (expand, contract []Op) {
	return RenameColumn(tbl, column, newColumn, newType)
}

// qualifier returns the table named name with the schema it was resolved
// to, once for its migration; a name with its schema is returned as it is.
type qualifier func(name string) (string, error)

// qualifiable is a built-in operation whose tables can be named with
// their schemas.
type qualifiable interface{ qualified(q qualifier) (Op, error) }

func (o AddColumn) qualified(q qualifier) (Op, error) {
	var err error
	o.Table, err = q(o.Table)
	return o, err
}

func (o AddTable) qualified(q qualifier) (Op, error) {
	var err error
	o.Table, err = q(o.Table)
	return o, err
}

func (o CreateIndex) qualified(q qualifier) (Op, error) {
	var err error
	o.Table, err = q(o.Table)
	return o, err
}

func (o AddForeignKey) qualified(q qualifier) (Op, error) {
	var err error
	if o.Table, err = q(o.Table); err != nil {
		return o, err
	}
	o.RefTable, err = q(o.RefTable)
	return o, err
}

func (o AddCheck) qualified(q qualifier) (Op, error) {
	var err error
	o.Table, err = q(o.Table)
	return o, err
}

func (o SetNotNull) qualified(q qualifier) (Op, error) {
	var err error
	o.Table, err = q(o.Table)
	return o, err
}

func (o AddUnique) qualified(q qualifier) (Op, error) {
	var err error
	o.Table, err = q(o.Table)
	return o, err
}

func (o DropColumn) qualified(q qualifier) (Op, error) {
	var err error
	o.Table, err = q(o.Table)
	return o, err
}

func (o DropTable) qualified(q qualifier) (Op, error) {
	var err error
	o.Table, err = q(o.Table)
	return o, err
}
