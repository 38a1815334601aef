package sqlite_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/sqlite"
)

// A path holding '?', '#' or '%' opens that file, not another: SQLite
// reads the path as a URI.
func TestOpenPathWithURIChars(t *testing.T) {
	t.Parallel()
	for i, name := range []string{"a?b.db", "c#d.db", "e%41f.db"} {
		t.Run(strconv.Itoa(i), func(t *testing.T) { // plain names: TempDir keeps '#' and '%'
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			db, err := sqlite.Open(t.Context(), path)
			require.NoError(t, err, name)
			db.MustExecContext(t.Context(), `CREATE TABLE t (x int)`)
			db.Close()
			entries, _ := os.ReadDir(dir)
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			_, err = os.Stat(path)
			assert.NoError(t, err, "the database file %q exists; the directory holds %v", name, got)
		})
	}
}

// An in-memory database would be one per pooled connection: refused.
func TestOpenRefusesMemory(t *testing.T) {
	t.Parallel()
	for _, path := range []string{":memory:", "", "file::memory:?cache=shared"} {
		_, err := sqlite.Open(t.Context(), path)
		require.ErrorIs(t, err, sqlite.ErrMemory, path)
	}
}
