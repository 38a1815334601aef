// Package dialects picks the [dialect.Dialect] of a pool, a connection or
// a transaction, explicitly: from the Go type of its database/sql driver
// where it has one to show, from the name its driver was registered under
// where that is all it knows, and by a probe for a *sql.Tx. A driver of
// no registered dialect is refused with [ErrUnknownDriver], never taken
// for another database's.
//
// Adding a database is a package under internal/dialect, implementing
// [dialect.Dialect] and saying in a [dialect.Driver] how it is
// recognised, and one line in [registered].
package dialects

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/jmoiron/sqlx/reflectx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialect/postgres"
	"github.com/schemashift/schemashift/internal/dialect/sqlite"
)

// registered lists the supported databases. PostgreSQL comes first: a
// probe that fails aborts a PostgreSQL transaction, so its probe, which
// succeeds on it, runs before any other (see [For]).
func registered() []dialect.Driver {
	return []dialect.Driver{
		postgres.Driver(),
		sqlite.Driver(),
	}
}

// All returns every supported database's dialect, for what must hold on
// each (a DDL fragment goes into every database's DDL as written).
func All() []dialect.Dialect {
	var out []dialect.Dialect
	for _, d := range registered() {
		out = append(out, d.Dialect)
	}
	return out
}

// Reference is the dialect whose forms the DDL operations' own Up methods
// write (package ddl), and in which what is written for no database, a
// runbook of a plan alone, is written: PostgreSQL's.
func Reference() dialect.Dialect { return postgres.New() }

// ErrUnknownDriver is wrapped by the error for a database/sql driver of no
// supported database.
var ErrUnknownDriver = errors.New("no dialect for this database driver")

// Pool is a pool that shows its driver: *sql.DB and *sqlx.DB, both safe
// for concurrent use.
type Pool interface {
	Driver() driver.Driver
}

var (
	_ Pool = (*sql.DB)(nil)
	_ Pool = (*sqlx.DB)(nil)
)

// ForPool returns the dialect of db's driver, by the driver's Go type.
func ForPool(db Pool) (dialect.Dialect, error) {
	d, err := driverOf(db)
	if err != nil {
		return nil, err
	}
	return d.Dialect, nil
}

// Sqlx returns db as a *sqlx.DB, and its dialect: db itself when it is
// one, a *sql.DB wrapped under the driver name its dialect registers. The
// wrapper shares db's pool: closing it closes db.
func Sqlx(db Pool) (*sqlx.DB, dialect.Dialect, error) {
	d, err := driverOf(db)
	if err != nil {
		return nil, nil, err
	}
	switch db := db.(type) {
	case *sqlx.DB:
		return db, d.Dialect, nil
	case *sql.DB:
		return sqlx.NewDb(db, d.Names[0]), d.Dialect, nil
	}
	return nil, nil, fmt.Errorf("%w: %T is neither a *sql.DB nor a *sqlx.DB", ErrUnknownDriver, db)
}

func driverOf(db Pool) (dialect.Driver, error) {
	if db == nil || reflect.ValueOf(db).IsNil() {
		return dialect.Driver{}, fmt.Errorf("%w: the pool is nil", ErrUnknownDriver)
	}
	drv := db.Driver()
	if d, ok := byType(drv); ok {
		return d, nil
	}
	return dialect.Driver{}, fmt.Errorf("%w: driver %T", ErrUnknownDriver, drv)
}

// For returns the dialect of db, one of:
//   - a pool (*sql.DB, *sqlx.DB): by its driver's Go type;
//   - a *sql.Conn or *sqlx.Conn: by the Go type of its driver
//     connection, through Raw;
//   - a *sql.Tx or *sqlx.Tx, which tell nothing of their driver (a
//     *sqlx.Tx's DriverName is whatever word its pool was given to
//     sqlx.NewDb, never checked against the driver): by running each
//     registered dialect's probe in turn in the transaction, a SELECT
//     that succeeds on its database alone and changes nothing. PostgreSQL's
//     runs first, and succeeds there, so that no failed statement aborts
//     a PostgreSQL transaction; on SQLite a failed statement leaves the
//     transaction as it was.
//   - a [Bound] handle: its dialect, as it is, probing nothing.
func For(ctx context.Context, db any) (dialect.Dialect, error) {
	if b, ok := db.(*Bound); ok {
		if b == nil || b.dialect == nil || b.conn == nil || reflect.ValueOf(b.conn).Kind() == reflect.Pointer && reflect.ValueOf(b.conn).IsNil() {
			return nil, fmt.Errorf("%w: the handle is a *dialects.Bound of no handle or dialect", ErrUnknownDriver)
		}
		return b.dialect, nil
	}
	if v, ok := db.(Pool); ok {
		return ForPool(v) // a nil pool is refused there
	}
	if v := reflect.ValueOf(db); db == nil || v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("%w: the handle is a nil %T", ErrUnknownDriver, db)
	}
	if v, ok := db.(*sqlx.Tx); ok && v.Tx == nil {
		return nil, fmt.Errorf("%w: the handle is a *sqlx.Tx of no *sql.Tx", ErrUnknownDriver)
	}
	if v, ok := db.(*sqlx.Conn); ok && v.Conn == nil {
		return nil, fmt.Errorf("%w: the handle is a *sqlx.Conn of no *sql.Conn", ErrUnknownDriver)
	}
	switch v := db.(type) {
	case *sqlx.Conn:
		return forConn(v.Conn)
	case *sql.Conn:
		return forConn(v)
	case *sqlx.Tx:
		// Its name is the caller's (sqlx.NewDb takes any name, and a
		// transaction keeps its pool's): a pool judged by its driver's type
		// must not have its transactions judged by a word. The probe is the
		// one evidence of the database a transaction has.
		return probe(ctx, v.Tx)
	case *sql.Tx:
		return probe(ctx, v)
	}
	return nil, fmt.Errorf("%w: %T shows no driver", ErrUnknownDriver, db)
}

// probe runs each dialect's probe in tx, in the order of [registered].
func probe(ctx context.Context, v *sql.Tx) (dialect.Dialect, error) {
	for _, d := range registered() {
		var answer any
		err := v.QueryRowContext(ctx, d.Probe).Scan(&answer)
		if err == nil {
			return d.Dialect, nil
		}
		// A server that refuses every statement of an aborted transaction
		// (SQLSTATE 25P02) answered: the caller's error is that, not an
		// unknown database.
		var state interface{ SQLState() string }
		if errors.As(err, &state) && state.SQLState() == "25P02" {
			return nil, fmt.Errorf("probe the transaction's database: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("probe the transaction's database: %w", err)
		}
	}
	return nil, fmt.Errorf("%w: the transaction's database answers no dialect's probe", ErrUnknownDriver)
}

func forConn(c *sql.Conn) (dialect.Dialect, error) {
	var found dialect.Driver
	var typ reflect.Type
	err := c.Raw(func(dc any) error {
		// A connection wrapped by the library (the PostgreSQL dialect's
		// pinned one) is its driver's underneath.
		for {
			u, ok := dc.(interface{ Unwrap() driver.Conn })
			if !ok {
				break
			}
			dc = u.Unwrap()
		}
		typ = reflect.TypeOf(dc)
		found, _ = byType(dc)
		return nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("read the connection's driver: %w", err)
	case found.Dialect == nil:
		return nil, fmt.Errorf("%w: driver connection %v", ErrUnknownDriver, typ)
	}
	return found.Dialect, nil
}

// byType finds the dialect whose driver package declares v's type.
func byType(v any) (dialect.Driver, bool) {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return dialect.Driver{}, false
	}
	for _, d := range registered() {
		if t.PkgPath() == d.Package {
			return d, true
		}
	}
	return dialect.Driver{}, false
}

// Handle returns db, a pool, connection or transaction of database/sql or
// sqlx, as a handle that runs sqlx's queries, and its dialect: an sqlx
// value as it is, a database/sql one wrapped (sharing the pool,
// connection or transaction, and owning nothing of it), a [Bound] one
// as the handle it binds.
func Handle(ctx context.Context, db any) (dialect.Conn, dialect.Dialect, error) {
	d, err := For(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	switch v := db.(type) {
	case *Bound:
		return v.conn, d, nil
	case *sqlx.Tx:
		if v.Mapper == nil { // made by hand: sqlx's scans need one
			return &sqlx.Tx{Tx: v.Tx, Mapper: mapper()}, d, nil
		}
		return v, d, nil
	case *sqlx.DB, *sqlx.Conn:
		return v.(dialect.Conn), d, nil
	case *sql.DB:
		x, _, err := Sqlx(v)
		return x, d, err
	case *sql.Tx:
		return &sqlx.Tx{Tx: v, Mapper: mapper()}, d, nil
	case *sql.Conn:
		return &sqlx.Conn{Conn: v, Mapper: mapper()}, d, nil
	}
	return nil, nil, fmt.Errorf("%w: %T is none of database/sql's or sqlx's handles", ErrUnknownDriver, db)
}

// mapper maps struct fields to columns as sqlx's own handles do: by their
// db tag, else their name in lower case.
func mapper() *reflectx.Mapper { return reflectx.NewMapperFunc("db", strings.ToLower) }

// Bound is a handle whose dialect its maker knows already (a coordinator,
// of the transactions it begins on its pool): [For] and [Handle] take
// that dialect, and send no probe. It runs its statements on the handle
// it binds, and owns nothing of it: it is as safe for concurrent use as
// that handle, and the handle stays its maker's to end.
type Bound struct {
	conn    boundConn
	dialect dialect.Dialect
}

// boundConn is what a [Bound] handle runs on: *sqlx.Tx, *sqlx.DB and
// *sqlx.Conn.
type boundConn interface {
	dialect.Conn
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ boundConn = (*sqlx.Tx)(nil)
	_ boundConn = (*sqlx.DB)(nil)
	_ boundConn = (*sqlx.Conn)(nil)
)

// Bind returns h bound to d, the dialect of its database: the caller
// vouches for it.
func Bind(h boundConn, d dialect.Dialect) *Bound { return &Bound{conn: h, dialect: d} }

// Dialect is the dialect b was bound to.
func (b *Bound) Dialect() dialect.Dialect { return b.dialect }

// ExecContext runs query on the bound handle.
func (b *Bound) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return b.conn.ExecContext(ctx, query, args...)
}

// QueryContext runs query on the bound handle.
func (b *Bound) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return b.conn.QueryContext(ctx, query, args...)
}

// QueryRowContext runs query on the bound handle.
func (b *Bound) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return b.conn.QueryRowContext(ctx, query, args...)
}
