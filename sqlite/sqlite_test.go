package sqlite_test

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/sqlite"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	defer db.Close()
	var mode string
	require.NoError(t, db.GetContext(t.Context(), &mode, `PRAGMA journal_mode`))
	assert.Equal(t, "wal", mode)
	var busy, fk int
	require.NoError(t, db.GetContext(t.Context(), &busy, `PRAGMA busy_timeout`))
	assert.Equal(t, 10000, busy)
	require.NoError(t, db.GetContext(t.Context(), &fk, `PRAGMA foreign_keys`))
	assert.Equal(t, 1, fk)
	assert.Equal(t, sqlite.DriverName, db.DriverName())

	q, err := url.ParseQuery(strings.SplitN(sqlite.DSN(path), "?", 2)[1])
	require.NoError(t, err)
	assert.Equal(t, "immediate", q.Get("_txlock"), "write transactions take the lock at BEGIN")
}

func TestOpenReportsUnusablePath(t *testing.T) {
	t.Parallel()
	_, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "no", "such", "dir", "app.db"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "open sqlite")
}

// A writer that cannot have the write lock within busy_timeout gets an
// error Busy recognises, and nothing else is taken for one.
func TestBusy(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.db")
	holder, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	defer holder.Close()
	other, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	defer other.Close()

	tx, err := holder.BeginTx(t.Context(), nil) // takes the write lock at BEGIN
	require.NoError(t, err)
	defer tx.Rollback() //nolint:errcheck // the test's own lock
	conn, err := other.Conn(t.Context())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(t.Context(), `PRAGMA busy_timeout = 20`)
	require.NoError(t, err)
	_, err = conn.BeginTx(t.Context(), nil)
	require.Error(t, err)
	assert.True(t, sqlite.Busy(err), "%v", err)

	_, err = other.ExecContext(t.Context(), `SELECT * FROM no_such_table`)
	require.Error(t, err)
	assert.False(t, sqlite.Busy(err))
	assert.False(t, sqlite.Busy(nil))
}
