package backfill_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// dualWrites starts three writers updating random rows of usersTable(n)
// as the dualwrite stage does (both columns in one statement), resting
// pause between writes. stop ends them between writes (never mid-write,
// so a counted write is a committed one) and returns how many committed.
func dualWrites(t *testing.T, db *sqlx.DB, n int, pause time.Duration) (stop func() int64) {
	quit := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				email := fmt.Sprintf("Writer%d.%d@Example.COM", w, i)
				if _, err := db.ExecContext(context.WithoutCancel(t.Context()), `UPDATE users SET email = $1, email_lower = lower($1) WHERE id = $2`,
					email, 3*(1+rand.IntN(n))); err != nil {
					t.Errorf("dual write: %v", err)
					return
				}
				writes.Add(1)
				// Pacing of the load, not synchronisation: no assertion
				// depends on how many writes land, only that some do.
				time.Sleep(pause)
			}
		})
	}
	return sync.OnceValue(func() int64 {
		close(quit)
		wg.Wait()
		return writes.Load()
	})
}

// fill runs insert, an INSERT … SELECT … FROM s, where s(i) counts from 1
// to n, in SQL both databases run.
func fill(t testing.TB, db *sqlx.DB, n int, insert string) {
	t.Helper()
	db.MustExecContext(t.Context(), `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1) `+insert, n)
}

// usersTable creates users(id, email, email_lower) with n rows and gaps in
// the ids (only every third id exists).
func usersTable(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)`)
	fill(t, db, n, `INSERT INTO users (id, email) SELECT i * 3, 'User' || i || '@Example.COM' FROM s`)
}

// ordersTables creates orders(id, amount_cents) with n rows, id = i * step
// and amount_cents = i * per, and an empty order_totals to move them to.
func ordersTables(t *testing.T, db *sqlx.DB, n, step, per int) {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE orders (id bigint PRIMARY KEY, amount_cents int NOT NULL)`)
	db.MustExecContext(t.Context(), `CREATE TABLE order_totals (order_id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, currency text NOT NULL)`)
	fill(t, db, n, fmt.Sprintf(`INSERT INTO orders (id, amount_cents) SELECT i * %d, i * %d FROM s`, step, per))
}

func isSQLite(db *sqlx.DB) bool { return db.DriverName() == "sqlite" }

func emailJob(name string) backfill.Job {
	return backfill.Job{Name: name, Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email)"}}, Derived: true}
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
