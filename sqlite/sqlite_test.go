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
