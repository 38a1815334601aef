package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/ledger"
)

// A caller's transaction that ran Ensure on a ledger already at this
// build's version holds nothing of the ledger: another process's Ensure
// (every instance's Start) does not wait for the caller to commit.
func TestEnsureOfACurrentLedgerInATransactionHoldsNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		tx, err := db.BeginTxx(ctx, nil)
		require.NoError(t, err)
		defer tx.Rollback() //nolint:errcheck // the end of the test
		require.NoError(t, ledger.Ensure(ctx, tx))
		if dbtest.IsSQLite(t, db) {
			return // the caller's write transaction excludes every other writer: SQLite's own rule, not the ledger's
		}
		other, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		assert.NoError(t, ledger.Ensure(other, db.DB), "another Ensure waited for the caller's transaction")
	})
}

// An Ensure that fails half way in a caller's transaction undoes its own
// part and nothing of the caller's: on SQLite, where a failed statement
// leaves the transaction going, a caller that commits its own work
// commits no half-upgraded ledger, and the ledger is made once the
// obstacle is gone.
func TestFailedEnsureInATransactionUndoesItsOwnPart(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		// In the way of version 4: a leftover of another install, say.
		db.MustExecContext(ctx, `CREATE TABLE schemashift_query_plans (x int)`)
		tx, err := db.BeginTxx(ctx, nil)
		require.NoError(t, err)
		defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
		_, err = tx.ExecContext(ctx, `CREATE TABLE app (x int)`)
		require.NoError(t, err)
		require.Error(t, ledger.Ensure(ctx, tx))
		_, err = tx.ExecContext(ctx, `INSERT INTO app VALUES (1)`)
		require.NoError(t, err, "the caller's transaction goes on")
		require.NoError(t, tx.Commit())
		assert.True(t, tableExists(t, db, "app"), "the caller's work is kept")
		assert.False(t, tableExists(t, db, "schemashift_migrations"), "no half ledger")
		db.MustExecContext(ctx, `DROP TABLE schemashift_query_plans`)
		require.NoError(t, ledger.Ensure(ctx, db))
		assert.True(t, tableExists(t, db, "schemashift_migrations"))
	})
}

// In a PostgreSQL transaction an earlier error aborted, a ledger read
// fails with the server's error (25P02), not as an unknown database.
func TestAbortedTransactionIsNotAnUnknownDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.DB(t)
	require.NoError(t, ledger.Ensure(ctx, db))
	tx, err := db.BeginTxx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback() //nolint:errcheck // the end of the test
	_, err = tx.ExecContext(ctx, `SELECT 1/0`)
	require.Error(t, err)
	for name, q := range map[string]ledger.DB{"*sqlx.Tx": tx, "*sql.Tx": tx.Tx} {
		_, err = ledger.Get(ctx, q, "m")
		require.Error(t, err, name)
		assert.False(t, errors.Is(err, dialects.ErrUnknownDriver), "%s: %v", name, err)
		assert.ErrorContains(t, err, "25P02", name)
	}
}
