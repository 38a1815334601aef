package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/jmoiron/sqlx"
	"go.uber.org/goleak"
)

// SharedURLEnv names the environment variable that, when set, points the test
// helpers ([DB], [URL]) at an existing server instead of a private cluster.
// It and [BinDirEnv] exclude each other there: with both set, the helpers fail.
const SharedURLEnv = "SCHEMASHIFT_TEST_DATABASE_URL"

// cleanupTimeout bounds dropping a test's database: the test's own context is
// already cancelled when cleanups run.
const cleanupTimeout = 30 * time.Second

// shared is the server of this test binary, started by the first test that
// needs one and closed by Main. A test harness is the one place where this
// package-level state is worth it: every test of a package shares a cluster.
var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

func sharedServer(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() {
		if os.Getenv(SharedURLEnv) != "" && os.Getenv(BinDirEnv) != "" {
			// Either would be tested and the other silently not.
			shared.err = fmt.Errorf("both $%s and $%s are set: unset one", SharedURLEnv, BinDirEnv)
			return
		}
		shared.srv, shared.err = Start(t.Context(), Options{URLEnv: SharedURLEnv})
	})
	if shared.err != nil {
		t.Fatalf("pgtest: %v", shared.err)
	}
	return shared.srv
}

// Main runs the tests of a package that uses [DB] or [URL]; call it from
// TestMain. After the tests it closes the shared server, then, if they
// passed, fails the run on leaked goroutines (see goleak.Find for leakOpts).
// It does not return: it exits with the tests' status.
func Main(m *testing.M, leakOpts ...goleak.Option) {
	code := m.Run()
	shared.once.Do(func() {}) // no server can start after this
	if shared.srv != nil {
		if err := shared.srv.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			code = max(code, 1)
		}
	}
	if code == 0 {
		if err := goleak.Find(leakOpts...); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: leaked goroutines: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// DB returns a connection pool (sqlx over pgx's database/sql driver, "pgx")
// to a fresh, empty database for t alone. The pool is closed and the
// database dropped when t ends. If no server can be had, t fails: a missing
// PostgreSQL is never a skip. The package's TestMain must call [Main].
func DB(t testing.TB) *sqlx.DB {
	t.Helper()
	dbURL := URL(t)
	db, err := sqlx.Open("pgx", dbURL)
	if err != nil {
		t.Fatalf("pgtest: open database: %v", err)
	}
	t.Cleanup(func() { db.Close() }) // runs before URL's cleanup drops the database
	if err := db.PingContext(t.Context()); err != nil {
		t.Fatalf("pgtest: connect database: %v", err)
	}
	return db
}

// URL returns the URL of a fresh, empty database for t alone, for tests that
// open their own connections or hand the URL to another process. The
// database is dropped when t ends, terminating connections still open. The
// package's TestMain must call [Main].
func URL(t testing.TB) string {
	t.Helper()
	srv := sharedServer(t)
	name, dbURL, err := srv.createDatabase(t.Context(), t.Name())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := srv.DropDatabase(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return dbURL
}

// AdminURL returns the admin URL of the shared server, for tests that
// administer it (ALTER DATABASE, pg_terminate_backend). The package's
// TestMain must call [Main].
func AdminURL(t testing.TB) string {
	t.Helper()
	return sharedServer(t).URL()
}
