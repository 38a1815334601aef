package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
)

// DB runs the ledger's statements: a pool or a transaction, of
// database/sql or sqlx (*sql.DB, *sqlx.DB, *sql.Tx, *sqlx.Tx; their
// connections work too). Given a transaction, what a function writes
// commits or rolls back with it, and what it reads is what that
// transaction sees. Its dialect is chosen from its driver (a *sql.Tx's by
// a probe that changes nothing); one of no supported database is refused
// with an error, never taken for another's. The pools are safe for
// concurrent use; a transaction is not, and stays the caller's to end.
type DB interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ DB = (*sql.DB)(nil)
	_ DB = (*sqlx.DB)(nil)
	_ DB = (*sql.Tx)(nil)
	_ DB = (*sqlx.Tx)(nil)
)

// handle returns db as a handle sqlx's scans run on, and its dialect; a
// nil db is refused with [ErrInvalidArgument].
func handle(ctx context.Context, db DB) (dialect.Conn, dialect.Dialect, error) {
	if v := reflect.ValueOf(db); db == nil || v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, nil, fmt.Errorf("%w: db is nil", ErrInvalidArgument)
	}
	return dialects.Handle(ctx, db)
}

// inTx is handle for the functions that make sense only inside a
// transaction (a row lock, a compare-and-set with its event): a pool or a
// connection, which would run each statement on its own, locking nothing
// and committing the move without its event, is refused.
func inTx(ctx context.Context, db DB) (dialect.Conn, dialect.Dialect, error) {
	h, d, err := handle(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	if _, ok := h.(beginner); ok {
		return nil, nil, fmt.Errorf("%w: %T is not a transaction: begin one and pass it", ErrInvalidArgument, db)
	}
	return h, d, nil
}
