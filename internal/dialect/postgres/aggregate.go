package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/schemashift/schemashift/internal/dialect"
)

// ReadOnly implements [dialect.AggregateQueries]: under a savepoint,
// transaction_read_only and statement_timeout set locally, which rolling
// back to the savepoint undoes (a statement that failed in it, its
// timeout included, is undone with it, and the transaction goes on).
func (Dialect) ReadOnly(ctx context.Context, tx dialect.Conn, timeout time.Duration, f func(ctx context.Context) error) error {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT schemashift_aggregate`); err != nil {
		return err
	}
	err := func() error {
		if _, err := tx.ExecContext(ctx, `SELECT set_config('transaction_read_only', 'on', true), set_config('statement_timeout', $1, true)`,
			dialect.Millis(timeout)); err != nil {
			return err
		}
		return f(ctx)
	}()
	// Undone whatever f did, on a context that outlives ctx: the
	// transaction must not stay read-only, or aborted, for what follows.
	_, rerr := tx.ExecContext(context.WithoutCancel(ctx), `ROLLBACK TO SAVEPOINT schemashift_aggregate; RELEASE SAVEPOINT schemashift_aggregate`)
	return errors.Join(err, rerr)
}
