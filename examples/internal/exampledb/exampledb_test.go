package exampledb_test

import (
	"bytes"
	"flag"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/examples/internal/exampledb"
	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Each -db value opens the database it names, says which on out, and
// release leaves nothing behind: the PostgreSQL database is dropped, the
// SQLite directory removed.
func TestOpen(t *testing.T) {
	admin := pgtest.URL(t)
	t.Setenv("DATABASE_URL", admin)
	for _, c := range []struct {
		which, says string
		sqlite      bool
	}{
		{"auto", "Starting PostgreSQL (DATABASE_URL if set, else a throwaway cluster)…\n", false},
		{"postgres", "Starting PostgreSQL (DATABASE_URL if set, else a throwaway cluster)…\n", false},
		{"sqlite", "Using embedded SQLite at ", true},
	} {
		t.Run(c.which, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			db, release, err := exampledb.Open(t.Context(), &out, c.which, "demo")
			require.NoError(t, err)
			assert.Equal(t, c.sqlite, (db.DriverName() == "sqlite"))
			assert.Contains(t, out.String(), c.says)
			db.MustExecContext(t.Context(), `CREATE TABLE t (id bigint PRIMARY KEY)`)
			db.MustExecContext(t.Context(), `INSERT INTO t VALUES (1)`)

			if c.sqlite {
				m := regexp.MustCompile(`at (.*/demo\.db)\.\n`).FindStringSubmatch(out.String())
				require.NotNil(t, m, out.String())
				assert.FileExists(t, m[1])
				release()
				assert.NoDirExists(t, filepath.Dir(m[1]))
				return
			}
			var name string
			require.NoError(t, db.GetContext(t.Context(), &name, `SELECT current_database()`))
			assert.Regexp(t, `^demo_`, name)
			release()
			server, err := sqlx.Open("pgx", admin)
			require.NoError(t, err)
			defer server.Close()
			var left int
			require.NoError(t, server.GetContext(t.Context(), &left, `SELECT count(*) FROM pg_database WHERE datname = $1`, name))
			assert.Zero(t, left, "database %s dropped", name)
		})
	}
}

// A -db value that names no database is refused before anything starts.
func TestOpenUnknown(t *testing.T) {
	var out bytes.Buffer
	_, _, err := exampledb.Open(t.Context(), &out, "mysql", "demo")
	require.ErrorIs(t, err, exampledb.ErrUnknown)
	assert.EqualError(t, err, `-db "mysql": want auto, postgres or sqlite`)
	assert.Empty(t, out.String())
}

// Every example has the same -db flag.
func TestFlag(t *testing.T) {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	which := exampledb.Flag(fs)
	assert.Equal(t, "auto", *which)
	require.NoError(t, fs.Parse([]string{"-db", "sqlite"}))
	assert.Equal(t, "sqlite", *which)
	assert.Equal(t, exampledb.Usage, fs.Lookup("db").Usage)
}
