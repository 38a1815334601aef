package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
)

// unlockSQL releases the session advisory lock named $1.
const unlockSQL = `SELECT pg_advisory_unlock(hashtextextended($1, 0))`

// LockTx implements [dialect.Sessions] with pg_advisory_xact_lock.
func (Dialect) LockTx(ctx context.Context, tx dialect.Execer, key int64) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
	return err
}

// SetTimeouts implements [dialect.Sessions] with lock_timeout and
// statement_timeout.
func (Dialect) SetTimeouts(ctx context.Context, ex dialect.Execer, lock, statement time.Duration, local bool) error {
	var sets []string
	var args []any
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"lock_timeout", lock}, {"statement_timeout", statement}} {
		if t.d > 0 {
			args = append(args, dialect.Millis(t.d))
			sets = append(sets, fmt.Sprintf("set_config('%s', $%d, %t)", t.name, len(args), local))
		}
	}
	if len(sets) == 0 {
		return nil
	}
	_, err := ex.ExecContext(ctx, `SELECT `+strings.Join(sets, ", "), args...)
	return err
}

// SetDDLTimeouts implements [dialect.Sessions].
func (Dialect) SetDDLTimeouts(ctx context.Context, ex dialect.Execer, lock, statement time.Duration, local bool) error {
	_, err := ex.ExecContext(ctx, `SELECT set_config('lock_timeout', $1, $3), set_config('statement_timeout', $2, $3)`,
		dialect.Millis(lock), dialect.Millis(statement), local)
	return err
}

// ResetTimeouts implements [dialect.Sessions].
func (Dialect) ResetTimeouts(ctx context.Context, ex dialect.Execer) error {
	_, err := ex.ExecContext(ctx, `RESET lock_timeout; RESET statement_timeout`)
	return err
}

// Lock implements [dialect.Sessions]: a session advisory lock on a
// connection of its own.
func (Dialect) Lock(ctx context.Context, db *sqlx.DB, name string, _ func() time.Time) (unlock func(), err error) {
	conn, err := db.Connx(ctx)
	if err != nil {
		return nil, err
	}
	if err := advisoryLock(ctx, conn, name); err != nil {
		dialect.Discard(conn) // it may hold the lock, granted as ctx ended
		return nil, err
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), unlockSQL, name) // the connection goes back with it released, or not at all: Close drops a broken one
		conn.Close()
	}, nil
}

// CheckPool implements [dialect.Sessions]: a PostgreSQL pool needs
// nothing.
func (Dialect) CheckPool(context.Context, *sqlx.DB) error { return nil }
