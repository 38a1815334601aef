// Package sqlite opens SQLite databases (pure Go, modernc.org/sqlite, no
// cgo) the way schemashift needs them: the embedded default for examples
// and for fast unit tests of services that use schemashift.
//
// A migration on SQLite runs the same phases, dual writes, checkpointed
// backfills, verification, ledger, heartbeats and contract checks as on
// PostgreSQL. What SQLite cannot do is noted where it applies: its DDL
// takes the whole database's write lock (no CONCURRENTLY, no NOT VALID,
// no lock_timeout), and its writers are serialized, so a backfill chunk
// and a service's write never run at the same time.
package sqlite

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	sqlitedialect "github.com/schemashift/schemashift/internal/dialect/sqlite"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DriverName is the database/sql driver name of modernc.org/sqlite, by
// which schemashift tells a SQLite pool from a PostgreSQL one.
const DriverName = sqlitedialect.DriverName

// DSN is the data source name Open uses for the database file at path:
// write transactions take the write lock at BEGIN (so two writers never
// deadlock upgrading a read), a writer waits up to 10 s for the lock, the
// journal is a write-ahead log (readers do not block the writer), foreign
// keys are enforced, and time.Time parameters are written as SQLite's
// text timestamps.
func DSN(path string) string {
	q := url.Values{}
	q.Set("_txlock", "immediate")
	q.Set("_time_format", "sqlite")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(wal)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(normal)")
	// SQLite reads the path as a URI: '?' and '#' would end it, '%' escape.
	return "file:" + uriPath.Replace(path) + "?" + q.Encode()
}

// ErrPoolSetup is wrapped by the error schemashift returns (from
// backfill.New, ledger.Ensure and what calls it) for a SQLite pool
// opened without what Open sets: a busy_timeout and write transactions that
// take the lock at BEGIN. Such a pool would fail with "database is locked"
// under the first concurrent write.
var ErrPoolSetup = dialect.ErrPoolSetup

// Busy reports whether err is SQLite's busy (or locked) error: another
// connection held the database's write lock for longer than busy_timeout.
// A pool from [Open] takes that lock at BEGIN, so the transaction that
// failed this way wrote nothing and may be retried.
func Busy(err error) bool { return sqlitedialect.Busy(err) }

var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// ErrMemory: an in-memory database is one per connection, so a pool's
// connections would each see a different, empty database.
var ErrMemory = errors.New("an in-memory SQLite database is private to one connection; use a file (in tests, under t.TempDir())")

// Open opens (creating if needed) the SQLite database file at path and
// checks that it answers. The pool is safe for concurrent use; close it
// when done. Any pool size works, one connection included; more let
// readers run while a writer holds the lock.
func Open(ctx context.Context, path string) (*sqlx.DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file::memory:") {
		return nil, fmt.Errorf("open sqlite %q: %w", path, ErrMemory)
	}
	db, err := sqlx.Open(DriverName, DSN(path))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db, nil
}
