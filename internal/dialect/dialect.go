// Package dialect declares what schemashift asks of a database whose SQL
// differs from another's, as the interface [Dialect], and holds what
// every dialect shares: the catalog's [Column] and [Index], time as a
// bind parameter ([Stamp], [Tick], [Time]), the fence of a held lock
// ([CheckHeld]) and the errors a dialect returns.
//
// Each database has a package of its own under internal/dialect that
// implements [Dialect] with its whole statements, catalog reads, locks and
// error classes; package internal/dialects picks one for a pool or a
// transaction. No other package spells a database's name: it asks its
// dialect what differs.
//
// A package's statements are its dialect's too, whole, through the
// queriers ([LedgerQueries], [FleetQueries], [RolloutQueries], [DDLQueries],
// [BackfillQueries]): package
// internal/dialect/common holds the ones every supported database
// accepts as they are ($n parameters, IS DISTINCT FROM, ON CONFLICT,
// RETURNING, aggregate FILTER, LIMIT … OFFSET, CAST(x AS text)), which a
// dialect embeds, writing out the others in its own SQL.
package dialect

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/ident"
)

// Dialect is one database's spelling and behaviour. Implementations are
// immutable values, safe for concurrent use.
type Dialect interface {
	// String is the database's name, for messages.
	String() string
	// Runbook is what an operator's runbook says of this database.
	Runbook() Runbook
	Rendering
	Capabilities
	Catalog
	Sessions
	LedgerQueries
	FleetQueries
	RolloutQueries
	DDLQueries
	BackfillQueries
	AggregateQueries
	ScheduleQueries
	Replication
}

// Rendering is how a dialect reads names and fragments that go into
// statements not its own (the DDL of package ddl). Like all of [Dialect],
// it is safe for concurrent use.
type Rendering interface {
	// FoldName is name as the database compares names: two names are one
	// object's when their folds are equal.
	FoldName(name string) string
	// MisreadIn says what, in s[start:end] (a token, as PostgreSQL's
	// lexer reads it, of a fragment: a DDL operation's, or a backfill's
	// expression; not a string or a quoted name), the database reads
	// otherwise, or "": a bind parameter, or a name that runs on past
	// the token. A fragment goes into the database's statements as
	// written.
	MisreadIn(s string, start, end int) string
	// TypeProblem says how a column declared got fails to hold what a
	// column of type want holds, or "" when it does.
	TypeProblem(want, got string) string
}

// PlainRenderer is a dialect of [Capabilities.PlainDDL], safe for
// concurrent use as all of [Dialect]: it spells the
// DDL operations of package ddl in its plain forms, and says what each
// gives up (a note) or why it cannot run. Its arguments are SQL already:
// names quoted and fragments checked, but for the raw names of ident
// values.
type PlainRenderer interface {
	// AddColumn adds column of type typ to table, with def as its default
	// unless volatile (then added without it, and the note says so).
	AddColumn(table, column, typ, def string, volatile bool) (sql, note string)
	// DropColumn drops column of table.
	DropColumn(table, column string) (sql, note string)
	// CreateIndex builds index (a raw name, in t's schema) on columns of
	// t, where (a checked predicate, or ""); constraint says it stands
	// for a unique constraint. strict is the same statement without IF
	// NOT EXISTS.
	CreateIndex(t ident.Table, index, columns string, unique bool, where string, constraint bool) (sql, strict, note string)
	// DropIndex drops index (a raw name) that a CreateIndex on t made.
	DropIndex(t ident.Table, index string) string
	// CannotAdd says why what cannot be added to an existing table.
	CannotAdd(what Addition) string
}

// Addition is what a DDL operation adds to an existing table that a
// [PlainRenderer] may refuse: a plain value.
type Addition int

// The additions.
const (
	AddsForeignKey Addition = iota
	AddsCheck
	AddsNotNull
)

// Constraints, safe for concurrent use as all of [Dialect], is a dialect
// that adds constraints to existing tables (one
// not of [Capabilities.PlainDDL]): its catalog reads of them, for the DDL
// executor's guards and its check that a constraint found there is the
// one an operation makes.
type Constraints interface {
	// Guard reports whether g holds for constraint and column of t: the
	// effect of a statement is there already, and it is skipped.
	Guard(ctx context.Context, q sqlx.QueryerContext, g Guard, t ident.Table, constraint, column string) (bool, error)
	// ConstraintShape reads constraint name of t, compared with a
	// constraint on cols (of a check, none), referencing refCols of ref
	// (of a foreign key) with ON DELETE CASCADE or not.
	ConstraintShape(ctx context.Context, q sqlx.QueryerContext, t ident.Table, name string, cols []string,
		ref ident.Table, refCols []string, cascade bool) (ConstraintShape, error)
	// NotNullConflicts lists, as "name definition", the constraints of t
	// that stand against making column NOT NULL through a constraint
	// named constraint: one of that name that is not the column's NOT
	// NULL, and an unvalidated NOT NULL of the column of another name.
	NotNullConflicts(ctx context.Context, q sqlx.QueryerContext, t ident.Table, column, constraint string) ([]string, error)
}

// Guard is a condition of the catalog under which a constraint statement
// is skipped ([Constraints.Guard]): a plain value.
type Guard int

// The guards.
const (
	GuardNamed          Guard = iota + 1 // a constraint of the name exists
	GuardValidated                       // it exists and is validated
	GuardNoneInvalid                     // no unvalidated constraint of the name exists
	GuardNotNull                         // the column is NOT NULL
	GuardNamedOrNotNull                  // a constraint of the name exists, or the column is NOT NULL
)

// ConstraintShape is a constraint as [Constraints.ConstraintShape] reads
// it: its kind, its definition, whether its columns, reference and
// options are the ones asked about, and its index's definition (of a
// unique constraint). A plain value.
type ConstraintShape struct {
	Kind  ConstraintKind `db:"contype"`
	Def   string         `db:"def"`
	Same  bool           `db:"same"`
	Index string         `db:"index"`
}

// ConstraintKind is a constraint's kind, as the catalog spells it: a
// plain value.
type ConstraintKind string

// The kinds of constraint.
const (
	CheckConstraint      ConstraintKind = "c"
	ForeignKeyConstraint ConstraintKind = "f"
	UniqueConstraint     ConstraintKind = "u"
)

// Capabilities say what a database does that another does not, for the
// callers whose behaviour, or whose words, depend on it. Safe for
// concurrent use, as all of [Dialect].
type Capabilities interface {
	// SearchPath reports whether an unqualified name resolves through a
	// search path of schemas, so that a name's schema must be resolved,
	// and recorded, once.
	SearchPath() bool
	// ConcurrentIndexes reports whether an index is built concurrently,
	// outside a transaction, so that a cut-off build can leave an
	// invalid index behind.
	ConcurrentIndexes() bool
	// PlainDDL reports whether DDL runs in its plain forms: each
	// statement under the whole database's write lock, waiting for it as
	// any writer does (no lock_timeout), with no concurrent index build,
	// no NOT VALID, and no constraint added to an existing table.
	PlainDDL() bool
}

// Runbook is the text of an operator's runbook that depends on the
// database, in Markdown: a plain value.
type Runbook struct {
	// DDL says how each statement of the expand or the contract runs,
	// following "Runs the expand" in a sentence that goes on to the DDL.
	DDL string
	// LockWait says what it means when a DDL statement gave up waiting
	// for a lock, and what to do.
	LockWait string
	// Unsupported says what to do with an operation the database cannot
	// run; "" where it runs them all.
	Unsupported string
}

// Catalog reads what the database knows of its tables. Safe for
// concurrent use, as all of [Dialect]; each read runs on the handle given.
type Catalog interface {
	// TableExists reports whether t exists.
	TableExists(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (bool, error)
	// Columns lists t's columns in order; none when t does not exist.
	Columns(ctx context.Context, q sqlx.QueryerContext, t ident.Table) ([]Column, error)
	// Indexes lists t's indexes, the one its primary key is kept in
	// included.
	Indexes(ctx context.Context, q sqlx.QueryerContext, t ident.Table) ([]Index, error)
	// EstimateRows is the planner's estimate of t's row count: -1 when
	// there is none, and a caller that needs a figure counts, once.
	EstimateRows(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (int64, error)
	// ServerMajor is the server's major version, which some DDL depends
	// on; 0 where no form depends on it.
	ServerMajor(ctx context.Context, q sqlx.QueryerContext) (int, error)
	// KeyHistogram reads the planner's histogram of column col (of type
	// typ) of t: bucket bounds as text in key order, and the estimated
	// row count. No bounds when there is none: split by walking the key.
	KeyHistogram(ctx context.Context, q sqlx.QueryerContext, t ident.Table, col, typ string) (bounds []string, rows float64, err error)
	// CheckReplication says whether [Catalog.ReplicationLag] can be read:
	// an error wrapping errors.ErrUnsupported where it cannot.
	CheckReplication() error
	// ReplicationLag is the largest replay lag of the primary's replicas,
	// as the primary sees it (zero without replicas).
	ReplicationLag(ctx context.Context, q sqlx.QueryerContext) (time.Duration, error)
	// Explain reads the plan the database would run query with args by,
	// without running it: its nodes, outermost first, each in the
	// database's words ("Index Scan on users using users_pkey"). The
	// words are stored, and compared with later plans', so they do not
	// change.
	Explain(ctx context.Context, q sqlx.QueryerContext, query string, args ...any) ([]string, error)
	// CurrentTime reads the database's clock. schemashift decides on no
	// time of it (see [Stamp]); tests use it to show so.
	CurrentTime(ctx context.Context, q sqlx.QueryerContext) (time.Time, error)
	// Objects is what the DDL executor reads of the objects it makes.
	Objects
}

// Objects reads the catalog the way the DDL executor needs it to judge
// what it made: whether an object of a name is there, and its shape.
// Safe for concurrent use, as all of [Dialect].
type Objects interface {
	// RelationExists reports whether a table, view, index or other
	// relation named name is in t's schema (t names the table an index
	// is on; for a table, name is t.Name), compared as the database
	// compares names.
	RelationExists(ctx context.Context, q sqlx.QueryerContext, t ident.Table, name string) (bool, error)
	// ColumnShape reads column name of t: its type as the catalog
	// names it, whether it has a default, is NOT NULL, and its collation
	// when not its type's. No rows when it is not there.
	ColumnShape(ctx context.Context, q sqlx.QueryerContext, t ident.Table, name string) ([]ColumnShape, error)
	// IsTable reports what kind of relation t is when it is not a plain
	// table ("" when it is one).
	IsTable(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (notTable string, err error)
	// IndexDef reads the definition of index (in its schema) and whether
	// it is on table t. No rows when it is not there.
	IndexDef(ctx context.Context, q sqlx.QueryerContext, index, t ident.Table) ([]IndexDef, error)
	// IndexState reads whether index (in its schema) is there, an index
	// of table t, and valid.
	IndexState(ctx context.Context, q sqlx.QueryerContext, index, t ident.Table) (IndexState, error)
	// ResolveSchema is the schema t is in, or the one CREATE TABLE would
	// put it in; not valid when there is none to put it in. Only for a
	// dialect with a [Capabilities.SearchPath].
	ResolveSchema(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (sql.NullString, error)
}

// IndexState is what [Objects.IndexState] finds under an index's name: a
// plain value.
type IndexState int

// The states of an index.
const (
	IndexAbsent  IndexState = iota // nothing of its name
	IndexOther                     // a relation that is not an index of that table
	IndexValid                     // an index of the table, valid
	IndexInvalid                   // an index of the table a failed concurrent build left
)

// ColumnShape is a column's shape as [Objects.ColumnShape] reads it: a
// plain value.
type ColumnShape struct {
	Type       string         `db:"type"`
	HasDefault bool           `db:"has_default"`
	NotNull    bool           `db:"not_null"`
	Collation  sql.NullString `db:"collation"` // when not its type's
}

// IndexDef is an index's definition as [Objects.IndexDef] reads it: a
// plain value.
type IndexDef struct {
	Def     string `db:"def"`
	OnTable bool   `db:"on_table"`
}

// Sessions are the locks, timeouts and pool checks of a database. Safe
// for concurrent use, as all of [Dialect]; what a lock holds is released
// by its unlock, or when Hold or Locked returns.
type Sessions interface {
	// LockTx takes a transaction-scoped advisory lock on key, released at
	// COMMIT or ROLLBACK (nothing where the write transaction already
	// excludes every other writer).
	LockTx(ctx context.Context, tx Execer, key int64) error
	// SetTimeouts bounds how long the statements of a transaction (local)
	// or of a session wait for a lock and run. Zero leaves a timeout
	// unset.
	SetTimeouts(ctx context.Context, ex Execer, lock, statement time.Duration, local bool) error
	// SetDDLTimeouts is SetTimeouts for DDL: a zero timeout is set to
	// none rather than left as it was, so that a long index build does
	// not inherit a role's or database's statement_timeout.
	SetDDLTimeouts(ctx context.Context, ex Execer, lock, statement time.Duration, local bool) error
	// ResetTimeouts returns a session's timeouts, set by SetDDLTimeouts
	// with local false, to the server's defaults.
	ResetTimeouts(ctx context.Context, ex Execer) error
	// DropInvalidIndex drops the index name when a failed or cancelled
	// concurrent build left it invalid. It runs outside a transaction.
	DropInvalidIndex(ctx context.Context, c Conn, name ident.Table) error
	// Lock takes the lock named name, across processes, waiting for it
	// until ctx ends; unlock releases it. now is ignored (a lock's lease,
	// where it has one, is judged in real time). Use Hold where the work
	// under the lock can be told that the lock was lost.
	Lock(ctx context.Context, db *sqlx.DB, name string, now func() time.Time) (unlock func(), err error)
	// Hold takes the lock named name, across processes, waiting for it
	// until ctx ends, and runs f under it with one, a pool that f uses
	// for all its work; it releases the lock when f returns. f's context
	// ends with cause [ErrLockLost] when the lock is lost, and Hold then
	// returns ErrLockLost (wrapped) with f's error; f fences each write
	// it must make only under the lock with [CheckHeld].
	Hold(ctx context.Context, db *sqlx.DB, name string, f func(ctx context.Context, one *sqlx.DB) error) error
	// Locked is Hold for an f that takes no context.
	Locked(ctx context.Context, db *sqlx.DB, name string, now func() time.Time, f func(one *sqlx.DB) error) error
	// CheckPool checks that a pool is set up as schemashift's
	// transactions need it, wrapping [ErrPoolSetup] when it is not.
	CheckPool(ctx context.Context, db *sqlx.DB) error
}

// Driver says how a dialect is recognised, for package internal/dialects:
// by the Go package its driver's and its connections' types are declared
// in, and, for a transaction, which tells nothing of its driver, by Probe,
// a SELECT that succeeds on this database and fails on the others
// registered after it without harming the transaction (its functions
// schema-qualified, so that no function a user put on the search_path
// answers it). Names are the names its database/sql driver registers,
// the first of which a *sql.DB is wrapped under for sqlx; never evidence
// of the database (sqlx.NewDb takes any name). A value, read by
// internal/dialects and never changed: safe for concurrent use.
type Driver struct {
	Dialect Dialect
	Names   []string
	Package string
	Probe   string
}

// Execer runs a statement: *sqlx.DB, *sqlx.Tx, *sqlx.Conn and their
// database/sql counterparts.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

var (
	_ Execer = (*sqlx.DB)(nil)
	_ Execer = (*sqlx.Tx)(nil)
	_ Execer = (*sqlx.Conn)(nil)
)

// Conn runs statements and queries: *sqlx.DB, *sqlx.Tx, *sqlx.Conn.
type Conn interface {
	Execer
	sqlx.QueryerContext
}

// ErrLockLost is the cause of the end of a [Sessions.Hold] context, and is
// wrapped by Hold, Locked and [CheckHeld], when a lock's lease could not
// be renewed (the renewal failed, or matched no row: another process took
// the lock, its lease having run out) while its holder worked under it.
var ErrLockLost = errors.New("the migration lock was lost")

// ErrPinLost is wrapped when the connection of a [Sessions.Locked] call
// broke under it: what ran is as far as it got, and the lock went with
// the connection.
var ErrPinLost = errors.New("the locked connection was lost")

// ErrPoolSetup: a pool that does not wait for the database's write lock,
// or does not take it at BEGIN. schemashift's transactions read, then
// write: begun without the lock, they fail with "database is locked"
// under any concurrent writer.
var ErrPoolSetup = errors.New("SQLite pool not opened for concurrent writers: open it with sqlite.Open " +
	"(or add _txlock=immediate and _pragma=busy_timeout(10000) to its data source name)")

// Fence is a lock held under a lease, as a dialect's [Sessions.Hold]
// puts it in its context: Check fences a write made under it. It is safe
// for concurrent use while the hold lasts.
type Fence interface {
	// Check returns [ErrLockLost] (wrapped) unless the lock is still
	// held, read in q, a transaction that excludes every other writer.
	Check(ctx context.Context, q sqlx.QueryerContext) error
}

type fenceKey struct{}

// WithFence returns ctx carrying f, for [CheckHeld].
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// CheckHeld fences a write made under a lock of [Sessions.Hold]: given
// Hold's context and q, a transaction that excludes every other writer,
// it returns [ErrLockLost] (wrapped) unless the lock is still held, so
// that what the transaction then writes is written under it. Run it in the
// transaction, before its compare-and-set. With a context of no leased
// lock (a lock held by the transaction's own session), it returns nil.
func CheckHeld(ctx context.Context, q sqlx.QueryerContext) error {
	f, _ := ctx.Value(fenceKey{}).(Fence)
	if f == nil {
		return nil
	}
	return f.Check(ctx, q)
}

// Discard closes a connection rather than return it to its pool: one
// that may be left in a transaction, holding a lock, or with a setting
// changed.
func Discard(c *sqlx.Conn) {
	_ = c.Raw(func(any) error { return driver.ErrBadConn }) // the error is the point: it drops the connection
	_ = c.Close()
}

// Column is a column as the catalog describes it.
type Column struct {
	Name string `db:"name"`
	Type string `db:"type"` // as the database's catalog names it
	// NotNull: the column never holds NULL. That includes a row-id key,
	// which a catalog may call nullable: it is the row's id, and a NULL
	// written to it becomes the next id.
	NotNull bool `db:"not_null"`
	Key     int  `db:"key"` // position in the primary key from 1; 0 when not in it
}

// Index is an index as the catalog describes it.
type Index struct {
	// Name is empty for a row-id key (see [Column].NotNull): the table
	// itself, no index, but unique on its column as one would be.
	Name    string
	Columns []string
	Unique  bool
	// Valid is false for an index a failed concurrent build left behind.
	Valid bool
}

// IndexRow is one index as a catalog query reads it, its columns joined
// by commas, for [IndexesOf]: a plain value.
type IndexRow struct {
	Name    string `db:"name"`
	Columns string `db:"columns"`
	Unique  bool   `db:"is_unique"`
	Valid   bool   `db:"is_valid"`
}

// IndexesOf turns the rows of a catalog query into indexes.
func IndexesOf(rows []IndexRow) []Index {
	out := make([]Index, len(rows))
	for i, r := range rows {
		out[i] = Index{Name: r.Name, Unique: r.Unique, Valid: r.Valid}
		if r.Columns != "" {
			out[i].Columns = strings.Split(r.Columns, ",")
		}
	}
	return out
}

// NormalizeType maps common spellings of a type to the canonical names
// of the catalog's format_type, the spelling a contract's types are read
// in on every database.
func NormalizeType(t string) string {
	t = strings.ToLower(strings.Join(strings.Fields(t), " "))
	t = strings.ReplaceAll(t, ", ", ",")
	aliases := map[string]string{
		"int": "integer", "int4": "integer", "int8": "bigint", "int2": "smallint", "serial": "integer", "bigserial": "bigint",
		"bool": "boolean", "float8": "double precision", "float4": "real", "timestamptz": "timestamp with time zone",
		"timestamp": "timestamp without time zone", "timetz": "time with time zone", "time": "time without time zone",
		"varchar": "character varying", "char": "character", "decimal": "numeric",
	}
	base, args, _ := strings.Cut(t, "(")
	if a, ok := aliases[strings.TrimSpace(base)]; ok {
		base = a
	}
	if strings.HasPrefix(base, "varchar") {
		base = "character varying"
	}
	if args != "" {
		return strings.TrimSpace(base) + "(" + args
	}
	return strings.TrimSpace(base)
}

// PrimaryKey lists t's primary key columns in key order; none when t has
// no primary key (or does not exist).
func PrimaryKey(ctx context.Context, d Dialect, q sqlx.QueryerContext, t ident.Table) ([]string, error) {
	cols, err := d.Columns(ctx, q, t)
	if err != nil {
		return nil, err
	}
	return PrimaryKeyOf(cols), nil
}

// PrimaryKeyOf lists the primary key columns among cols, as
// [Catalog.Columns] read them, in key order; none when there is no
// primary key.
func PrimaryKeyOf(cols []Column) []string {
	var keys []string
	for pos := 1; ; pos++ {
		i := slices.IndexFunc(cols, func(c Column) bool { return c.Key == pos })
		if i < 0 {
			return keys
		}
		keys = append(keys, cols[i].Name)
	}
}

// NameChar reports whether c may be part of an unquoted name: a letter, a
// digit, '_', '$', or a byte of a multi-byte character.
func NameChar(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// Millis is d as a timeout setting's text, in milliseconds: "0" (none)
// for d ≤ 0, at least 1 ms otherwise.
func Millis(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return fmt.Sprintf("%dms", max(d.Milliseconds(), 1))
}
