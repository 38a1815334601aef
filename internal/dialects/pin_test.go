package dialects_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialect/postgres"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// Locked runs its work on a pool of one connection, the one that holds
// the lock: on a pool of one connection, statements, transactions and a
// concurrent index build (outside any transaction) all run, on the lock's
// session, and the lock is released after.
func TestLockedOnOneConnection(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		d := dbtest.Dialect(t, db)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		db.MustExecContext(ctx, `CREATE TABLE t (id bigint PRIMARY KEY, v text)`)
		db.SetMaxOpenConns(1)
		index := `CREATE INDEX CONCURRENTLY t_v ON t (v)`
		if dbtest.IsSQLite(t, db) {
			index = `CREATE INDEX t_v ON t (v)`
		}
		err := d.Locked(ctx, db, "m", nil, func(one *sqlx.DB) error {
			tx, err := one.BeginTxx(ctx, nil)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (1, 'a')`); err != nil {
				return errors.Join(err, tx.Rollback())
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			if _, err := one.ExecContext(ctx, index); err != nil {
				return err
			}
			if dbtest.IsSQLite(t, db) {
				return nil
			}
			var holds bool
			err = one.GetContext(ctx, &holds, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid())`)
			if err == nil && !holds {
				err = errors.New("the work runs on another session than the lock's")
			}
			return err
		})
		require.NoError(t, err)
		var n int
		require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM t`))
		assert.Equal(t, 1, n)
		again, err := d.Lock(ctx, db, "m", nil)
		require.NoError(t, err, "released")
		again()
	})
}

// A second Locked waits while the first holds the lock and gives up at
// its deadline, leaving nothing held; the work's error is returned.
func TestLockedWaitsAndReturnsTheWorksError(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		d := dbtest.Dialect(t, db)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		held := make(chan struct{})
		release := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- d.Locked(ctx, db, "m", nil, func(*sqlx.DB) error {
				close(held)
				<-release
				return nil
			})
		}()
		<-held
		short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
		err := d.Locked(short, db, "m", nil, func(*sqlx.DB) error { return errors.New("must not run") })
		stop()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		close(release)
		require.NoError(t, <-done)

		boom := errors.New("boom")
		require.ErrorIs(t, d.Locked(ctx, db, "m", nil, func(*sqlx.DB) error { return boom }), boom)
		again, err := d.Lock(ctx, db, "m", nil)
		require.NoError(t, err, "released after a failed work and a waiter cut off")
		again()
	})
}

// A pool whose owner resets sessions when connections come back (DISCARD
// ALL releases advisory locks) keeps the lock for the whole work: the one
// connection is not reset between its uses.
func TestLockedKeepsTheLockAcrossUses(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig(pgtest.URL(t))
	require.NoError(t, err)
	db := sqlx.NewDb(stdlib.OpenDB(*cfg, stdlib.OptionResetSession(func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "DISCARD ALL")
		return err
	})), "pgx")
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err = postgres.Dialect{}.Locked(ctx, db, "m", nil, func(one *sqlx.DB) error {
		for range 3 {
			var holds bool
			if err := one.GetContext(ctx, &holds, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid())`); err != nil {
				return err
			}
			if !holds {
				return errors.New("lock lost between two uses")
			}
		}
		return nil
	})
	require.NoError(t, err)
}
