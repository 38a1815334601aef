package dialects_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// unknownDriver is a real database/sql driver of a database schemashift
// does not support: its connections begin transactions, and refuse every
// statement, as a server of another SQL would refuse the probes.
type unknownDriver struct{}

type unknownConn struct{}

type unknownTx struct{}

var errNoSQL = errors.New("unknown database: statement refused")

func (unknownDriver) Open(string) (driver.Conn, error)  { return unknownConn{}, nil }
func (unknownConn) Prepare(string) (driver.Stmt, error) { return nil, errNoSQL }
func (unknownConn) Close() error                        { return nil }
func (unknownConn) Begin() (driver.Tx, error)           { return unknownTx{}, nil }
func (unknownTx) Commit() error                         { return nil }
func (unknownTx) Rollback() error                       { return nil }
func (unknownConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return nil, errNoSQL
}

var _ driver.QueryerContext = unknownConn{}

// unknownName is registered once, by the test binary: database/sql's
// registry is process-wide.
const unknownName = "schemashift-unknown"

var register sync.Once

// Every way in to a database of no dialect is refused with
// ErrUnknownDriver, naming what was found: never taken for PostgreSQL.
func TestUnknownDriverIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	register.Do(func() { sql.Register(unknownName, unknownDriver{}) })
	db, err := sql.Open(unknownName, "")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	for name, c := range map[string]struct {
		db   any
		says string
	}{
		"sql.DB":                     {db, "dialects_test.unknownDriver"},
		"sqlx.DB":                    {sqlx.NewDb(db, unknownName), "dialects_test.unknownDriver"},
		"sqlx.DB under a known name": {sqlx.NewDb(db, "pgx"), "dialects_test.unknownDriver"},
		"sqlx.Tx":                    {&sqlx.Tx{Tx: tx}, "answers no dialect's probe"},
		"sql.Tx":                     {tx, "answers no dialect's probe"},
		"sql.Conn":                   {conn, "dialects_test.unknownConn"},
		"something else":             {struct{}{}, "struct {} shows no driver"},
		"nil pool":                   {(*sql.DB)(nil), "the pool is nil"},
	} {
		d, err := dialects.For(ctx, c.db)
		require.ErrorIs(t, err, dialects.ErrUnknownDriver, name)
		assert.ErrorContains(t, err, c.says, name)
		assert.Nil(t, d, name)
	}
	_, err = dialects.ForPool(db)
	require.ErrorIs(t, err, dialects.ErrUnknownDriver)
	_, _, err = dialects.Sqlx(db)
	require.ErrorIs(t, err, dialects.ErrUnknownDriver)
	// The transaction is as it was: the probes' failures did not end it.
	require.NoError(t, tx.Commit())
}

// Each supported database is recognised through every kind of handle, a
// transaction by a probe that leaves it usable: what it writes after the
// probe commits.
func TestForEveryHandle(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		want := t.Name()[len(t.Name())-len("sqlite"):]
		if want != "sqlite" {
			want = "postgres"
		}
		check := func(what string, h any) {
			t.Helper()
			d, err := dialects.For(ctx, h)
			require.NoError(t, err, what)
			assert.Equal(t, want, d.String(), what)
		}
		check("sqlx.DB", db)
		check("sql.DB", db.DB)
		d, err := dialects.ForPool(db.DB)
		require.NoError(t, err)
		assert.Equal(t, want, d.String())
		wrapped, d, err := dialects.Sqlx(db.DB)
		require.NoError(t, err)
		assert.Equal(t, want, d.String())
		assert.Same(t, db.DB, wrapped.DB, "the wrapper shares the pool")
		assert.Same(t, db, func() *sqlx.DB { x, _, _ := dialects.Sqlx(db); return x }(), "a *sqlx.DB is its own")

		conn, err := db.Connx(ctx)
		require.NoError(t, err)
		check("sqlx.Conn", conn)
		check("sql.Conn", conn.Conn)
		require.NoError(t, conn.Close())

		db.MustExecContext(ctx, `CREATE TABLE probed (v integer)`)
		tx, err := db.BeginTxx(ctx, nil)
		require.NoError(t, err)
		check("sqlx.Tx", tx)
		check("sql.Tx", tx.Tx)
		_, err = tx.ExecContext(ctx, `INSERT INTO probed (v) VALUES (1)`)
		require.NoError(t, err, "the transaction survives the probes")
		require.NoError(t, tx.Commit())
		var n int
		require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM probed`))
		assert.Equal(t, 1, n)
	})
	t.Run("pgx names", func(t *testing.T) {
		t.Parallel()
		db := pgtest.DB(t)
		for _, name := range []string{"pgx", "pgx/v5"} {
			tx, err := sqlx.NewDb(db.DB, name).BeginTxx(t.Context(), nil)
			require.NoError(t, err)
			d, err := dialects.For(t.Context(), tx)
			require.NoError(t, err, name)
			assert.Equal(t, "postgres", d.String(), name)
			require.NoError(t, tx.Rollback())
		}
	})
}
