// Package dbtest runs a test against every database schemashift supports:
// a fresh PostgreSQL database from [pgtest] and a fresh SQLite file.
package dbtest

import (
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/sqlite"
)

// Each runs f as a subtest per database, named "postgres" and "sqlite",
// each with a fresh, empty database of its own. The package's TestMain
// must call [pgtest.Main].
func Each(t *testing.T, f func(t *testing.T, db *sqlx.DB)) {
	t.Helper()
	t.Run("postgres", func(t *testing.T) { f(t, pgtest.DB(t)) })
	t.Run("sqlite", func(t *testing.T) { f(t, SQLite(t)) })
}

// SQLite opens a fresh SQLite database in t's temporary directory, closed
// when t ends.
func SQLite(t testing.TB) *sqlx.DB {
	t.Helper()
	return SQLiteAt(t, filepath.Join(t.TempDir(), "test.db"))
}

// SQLiteAt opens a pool on the SQLite database file at path, creating it
// if needed, closed when t ends: called again with the same path, a second
// pool on the same database, as another process would have.
func SQLiteAt(t testing.TB, path string) *sqlx.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Dialect is db's dialect, as the library picks it; t fails when there is
// none.
func Dialect(t testing.TB, db any) dialect.Dialect {
	t.Helper()
	d, err := dialects.For(t.Context(), db)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return d
}

// IsSQLite reports whether db is a SQLite database: for tests whose
// expectations differ there.
func IsSQLite(t testing.TB, db any) bool {
	t.Helper()
	return Dialect(t, db).String() == "sqlite"
}
