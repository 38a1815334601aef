package backfill_test

import (
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/sqlite"
)

// A SQLite pool opened the plain way (deferred BEGIN, no busy_timeout)
// would fail with "database is locked" under the first concurrent write:
// New refuses it up front and says how to open it.
func TestPlainSQLitePoolIsRefused(t *testing.T) {
	t.Parallel()
	db, err := sqlx.Open(sqlite.DriverName, filepath.Join(t.TempDir(), "plain.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	usersTable(t, db, 10)
	_, err = backfill.New(t.Context(), db, emailJob("plain"))
	require.ErrorIs(t, err, sqlite.ErrPoolSetup)
	require.ErrorContains(t, err, "open it with sqlite.Open")
}
