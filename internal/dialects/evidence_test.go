package dialects_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sqlite "modernc.org/sqlite"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// A transaction is judged by its database, never by the word its pool was
// given to sqlx.NewDb: a pool of an unknown driver called "pgx" is
// refused, and so are its transactions; a PostgreSQL pool called "sqlite"
// and a SQLite one called "pgx" have transactions of their own database.
func TestTransactionsAreJudgedByTheirDatabaseNotTheirName(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	register.Do(func() { sql.Register(unknownName, unknownDriver{}) })
	unknown, err := sql.Open(unknownName, "")
	require.NoError(t, err)
	t.Cleanup(func() { unknown.Close() })
	pg := pgtest.DB(t)
	lite := dbtest.SQLite(t)
	for name, c := range map[string]struct {
		pool *sqlx.DB
		want string // "" when refused
	}{
		"unknown driver named pgx": {sqlx.NewDb(unknown, "pgx"), ""},
		"pgx named sqlite":         {sqlx.NewDb(pg.DB, "sqlite"), "postgres"},
		"modernc named pgx":        {sqlx.NewDb(lite.DB, "pgx"), "sqlite"},
	} {
		poolD, poolErr := dialects.For(ctx, c.pool)
		tx, err := c.pool.BeginTxx(ctx, nil)
		require.NoError(t, err, name)
		txD, txErr := dialects.For(ctx, tx)
		require.NoError(t, tx.Rollback(), name)
		if c.want == "" {
			require.ErrorIs(t, poolErr, dialects.ErrUnknownDriver, name)
			require.ErrorIs(t, txErr, dialects.ErrUnknownDriver, "%s: the pool is refused, its transaction taken for %v", name, txD)
			continue
		}
		require.NoError(t, poolErr, name)
		require.NoError(t, txErr, name)
		assert.Equal(t, c.want, poolD.String(), name)
		assert.Equal(t, c.want, txD.String(), "%s: the transaction's dialect", name)
	}
}

// PostgreSQL's probe names pg_catalog's function: one of the same name a
// user put first on the search_path neither answers it nor, by failing,
// aborts the caller's transaction.
func TestProbeIsNotAnsweredByAUsersFunction(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.DB(t)
	db.MustExecContext(ctx, `CREATE TABLE probed (v integer)`)
	db.MustExecContext(ctx, `CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE plpgsql
		AS $$ BEGIN RAISE EXCEPTION 'not this one'; END $$`)
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })
	_, err = tx.ExecContext(ctx, `SET LOCAL search_path = public, pg_catalog`)
	require.NoError(t, err)
	d, forErr := dialects.For(ctx, tx)
	_, err = tx.ExecContext(ctx, `INSERT INTO probed (v) VALUES (1)`)
	require.NoError(t, err, "the caller's transaction survives the probe")
	require.NoError(t, forErr)
	assert.Equal(t, "postgres", d.String())
}

var shim sync.Once

// A SQLite program that registered a function called current_setting (a
// PostgreSQL shim for its own tests, say) still has SQLite transactions.
// The registration is process-wide; it changes nothing else here, where
// no SQLite statement calls current_setting.
func TestProbeIsNotAnsweredByASQLiteShim(t *testing.T) {
	t.Parallel()
	shim.Do(func() {
		sqlite.MustRegisterDeterministicScalarFunction("current_setting", 1,
			func(*sqlite.FunctionContext, []driver.Value) (driver.Value, error) { return "160000", nil })
	})
	db := dbtest.SQLite(t)
	tx, err := db.BeginTx(t.Context(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })
	var v string
	require.NoError(t, tx.QueryRowContext(t.Context(), `SELECT current_setting('x')`).Scan(&v), "the shim answers")
	d, err := dialects.For(t.Context(), tx)
	require.NoError(t, err)
	assert.Equal(t, "sqlite", d.String())
}

// A connection of the one-connection pool a PostgreSQL Hold gives f is
// PostgreSQL's: the library's wrapper of it is seen through.
func TestConnectionOfThePinnedPoolIsPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.DB(t)
	d, err := dialects.ForPool(db)
	require.NoError(t, err)
	require.NoError(t, d.Hold(ctx, db, "m", func(ctx context.Context, one *sqlx.DB) error {
		conn, err := one.Connx(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		got, err := dialects.For(ctx, conn)
		if err != nil {
			return err
		}
		assert.Equal(t, "postgres", got.String())
		return nil
	}))
}
