package backfill_test

import (
	"os"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) {
	switch os.Getenv(workerEnv) {
	case "":
	case "rss":
		os.Exit(rssMain()) // a subprocess of BenchmarkBackfillMemory
	default:
		os.Exit(workerMain()) // a subprocess of TestKilledAndResumed
	}
	pgtest.Main(m)
}

// usersTable creates users(id, email, email_lower) with n rows and gaps in
// the ids (only every third id exists).
func usersTable(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)`)
	db.MustExecContext(t.Context(), `INSERT INTO users (id, email) SELECT i * 3, 'User' || i || '@Example.COM' FROM generate_series(1, $1) i`, n)
}

func emailJob(name string) backfill.Job {
	return backfill.Job{Name: name, Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email)"}}}
}

func divergent(t *testing.T, db *sqlx.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.GetContext(t.Context(), &n, `SELECT count(*) FROM users WHERE email_lower IS DISTINCT FROM lower(email)`))
	return n
}

func quick() []backfill.Option {
	return []backfill.Option{backfill.WithPollInterval(20 * 1e6), backfill.WithRetries(20, 5*1e6)}
}

func mustNew(t *testing.T, db *sqlx.DB, job backfill.Job, opts ...backfill.Option) *backfill.Backfill {
	t.Helper()
	b, err := backfill.New(t.Context(), db, job, append(quick(), opts...)...)
	require.NoError(t, err)
	return b
}

// open opens a pool on url, closed when t ends.
func open(t *testing.T, url string) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("pgx", url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}
