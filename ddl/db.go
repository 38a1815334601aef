package ddl

import (
	"context"
	"database/sql"
	"database/sql/driver"

	"github.com/jmoiron/sqlx"
)

// Pool is a pool of connections, *sql.DB or *sqlx.DB: an [Executor]
// runs statements outside any transaction (a concurrent index build), on
// connections of its own, and in transactions of its own. Its dialect is
// chosen from its driver; one of no supported database is refused. Both
// are safe for concurrent use; the caller closes the pool.
type Pool interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	Driver() driver.Driver
}

var (
	_ Pool = (*sql.DB)(nil)
	_ Pool = (*sqlx.DB)(nil)
)
