package dialect

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/ident"
)

// SetDDLTimeouts is [Dialect.SetTimeouts] for DDL: a zero timeout is set
// to none rather than left as it was, so that a long index build does not
// inherit a role's or database's statement_timeout and die half-way.
func (d *Dialect) SetDDLTimeouts(ctx context.Context, ex Execer, lock, statement time.Duration, local bool) error {
	if d.sqlite {
		return nil
	}
	_, err := ex.ExecContext(ctx, `SELECT set_config('lock_timeout', $1, $3), set_config('statement_timeout', $2, $3)`,
		millis(lock), millis(statement), local)
	return err
}

// ResetTimeouts returns a session's lock and statement timeouts, set by
// [Dialect.SetDDLTimeouts] with local false, to the server's defaults before
// the connection goes back to the pool. SQLite has no such settings.
func (d *Dialect) ResetTimeouts(ctx context.Context, ex Execer) error {
	if d.sqlite {
		return nil
	}
	_, err := ex.ExecContext(ctx, `RESET lock_timeout; RESET statement_timeout`)
	return err
}

// Conn runs statements and queries: *sqlx.DB, *sqlx.Tx, *sqlx.Conn.
type Conn interface {
	Execer
	sqlx.QueryerContext
}

// DropInvalidIndex drops the index name when a failed or cancelled
// concurrent build left it INVALID: CREATE INDEX … IF NOT EXISTS would
// otherwise keep it and report success. It must run outside a
// transaction block. SQLite builds an index inside the writing
// transaction, so a failed build rolls back and leaves no index behind.
func (d *Dialect) DropInvalidIndex(ctx context.Context, c Conn, name ident.Table) error {
	if d.sqlite {
		return nil
	}
	var invalid sql.NullBool
	if err := sqlx.GetContext(ctx, c, &invalid, `SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)`, name.Quoted()); err != nil &&
		!errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("check index %s: %w", name, err)
	}
	if invalid.Valid && invalid.Bool {
		if _, err := c.ExecContext(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+name.Quoted()); err != nil {
			return fmt.Errorf("drop invalid index %s: %w", name, err)
		}
	}
	return nil
}
