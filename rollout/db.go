package rollout

import (
	"context"
	"database/sql"
	"database/sql/driver"

	"github.com/jmoiron/sqlx"
)

// Pool is a pool of connections, *sql.DB or *sqlx.DB, that a
// [Coordinator], [Open], [Register] and [Start] work on: a transition
// runs transactions of its own, holds a connection of the pool under the
// migration's lock (see the Coordinator's pool rule) and runs DDL outside
// any transaction; a service's heartbeat and stage source run on it for
// its whole life. Its dialect is chosen from its driver; one of no
// supported database is refused with [ErrInvalidArgument] (and the
// dialects' error of an unknown driver). Both are safe for concurrent
// use; the caller closes the pool, after what works on it.
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
