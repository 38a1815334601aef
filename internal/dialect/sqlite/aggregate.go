package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/schemashift/schemashift/internal/dialect"
)

// ReadOnly implements [dialect.AggregateQueries]: under a savepoint, the
// connection's query_only on (SQLite then refuses every write) and f's
// context ended after timeout (the driver interrupts the statement
// running then: SQLite has no statement timeout); query_only is turned
// off again and the savepoint rolled back.
func (Dialect) ReadOnly(ctx context.Context, tx dialect.Conn, timeout time.Duration, f func(ctx context.Context) error) error {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT schemashift_aggregate`); err != nil {
		return err
	}
	err := func() error {
		if _, err := tx.ExecContext(ctx, `PRAGMA query_only = 1`); err != nil {
			return err
		}
		fctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return f(fctx)
	}()
	// query_only is the connection's, not the savepoint's: turned off on
	// a context that outlives ctx, before the transaction goes on.
	_, rerr := tx.ExecContext(context.WithoutCancel(ctx), `PRAGMA query_only = 0`)
	_, serr := tx.ExecContext(context.WithoutCancel(ctx), `ROLLBACK TO SAVEPOINT schemashift_aggregate; RELEASE SAVEPOINT schemashift_aggregate`)
	return errors.Join(err, rerr, serr)
}
