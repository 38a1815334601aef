package contract

import (
	"context"
	"database/sql"

	"github.com/jmoiron/sqlx"
)

// DB runs the catalog reads of [Verify]: a pool or a transaction, of
// database/sql or sqlx (*sql.DB, *sqlx.DB, *sql.Tx, *sqlx.Tx; their
// connections work too). Given a transaction, Verify sees the schema as
// that transaction does, its own uncommitted DDL included. Its dialect is
// chosen from its driver; one of no supported database is refused. The
// pools are safe for concurrent use; a transaction is not, and stays the
// caller's to end.
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
