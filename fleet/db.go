package fleet

import (
	"context"
	"database/sql"
	"database/sql/driver"

	"github.com/jmoiron/sqlx"
)

// DB runs the reads of the fleet ([Read], [Sum], [Latencies],
// [InstancesPerService], [Samples]): a pool or a transaction, of database/sql or
// sqlx (*sql.DB, *sqlx.DB, *sql.Tx, *sqlx.Tx; their connections work
// too). Given a transaction, a read sees what that transaction sees, its
// own writes included. Its dialect is chosen from its driver; one of no
// supported database is refused. The pools are safe for concurrent use; a
// transaction is not, and stays the caller's to end.
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

// Pool is a pool of connections, *sql.DB or *sqlx.DB, for an [Instance],
// whose every heartbeat is a transaction of its own. Both are safe for
// concurrent use; the caller closes the pool, after the instance.
type Pool interface {
	DB
	Driver() driver.Driver
}

var (
	_ Pool = (*sql.DB)(nil)
	_ Pool = (*sqlx.DB)(nil)
)
