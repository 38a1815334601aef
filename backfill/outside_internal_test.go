package backfill

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgerr"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// Outside is a session on the cluster's postgres database, from which a
// test database's statistics and sessions are read without adding a
// transaction to them.
type Outside struct {
	t      *testing.T
	db     *sqlx.DB
	dbname string
}

// NewOutside opens one beside the database at u (admin is a pool on it).
func NewOutside(t *testing.T, u string, admin *sqlx.DB) *Outside {
	t.Helper()
	var dbname string
	require.NoError(t, admin.GetContext(t.Context(), &dbname, `SELECT current_database()`))
	pu, err := url.Parse(u)
	require.NoError(t, err)
	pu.Path = "/postgres"
	db := boardPool(t, pu.String())
	db.SetMaxOpenConns(1)
	return &Outside{t: t, db: db, dbname: dbname}
}

// DB is its pool, for statements about the database (its roles, its
// sessions).
func (o *Outside) DB() *sqlx.DB { return o.db }

// Xacts is the database's transactions, as its statistics show them.
func (o *Outside) Xacts() int64 {
	return int64(o.stat(`xact_commit + xact_rollback`))
}

// Active is the database's active time, every session's.
func (o *Outside) Active() time.Duration {
	return time.Duration(o.stat(`active_time`) * float64(time.Millisecond))
}

// stat reads expr from the database's row of pg_stat_database, in
// statistics no older than the read. Through PostgreSQL 14 the
// statistics collector writes what sessions reported to a file that a
// reader takes while it is less than half a second old: read at once,
// the counts of sessions that just left (see Gone) may be missing (CI's
// PostgreSQL 14 once read 924.8ms of active time where its sessions had
// reported more). So the read is made again until its snapshot was taken
// after the read began (pg_stat_get_snapshot_timestamp, NULL from 15 on,
// where sessions report to shared memory as they leave).
func (o *Outside) stat(expr string) float64 {
	var from time.Time
	require.NoError(o.t, o.db.GetContext(context.Background(), &from, `SELECT clock_timestamp()`))
	for {
		var row struct {
			V     float64 `db:"v"`
			Fresh bool    `db:"fresh"`
		}
		require.NoError(o.t, o.db.GetContext(context.Background(), &row,
			`SELECT (`+expr+`)::float8 AS v, coalesce(pg_stat_get_snapshot_timestamp() >= $2, true) AS fresh
			FROM pg_stat_database WHERE datname = $1`, o.dbname, from))
		if row.Fresh {
			return row.V
		}
	}
}

// Gone closes pool's idle sessions (nil: none) and waits until no session
// of application app is left: each reports its statistics as it leaves.
func (o *Outside) Gone(pool *sqlx.DB, app string) {
	if pool != nil {
		pool.SetMaxIdleConns(0)
		defer pool.SetMaxIdleConns(2)
	}
	for {
		var n int
		require.NoError(o.t, o.db.GetContext(context.Background(), &n,
			`SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2`, o.dbname, app))
		if n == 0 {
			return
		}
	}
}

// A claim's idle check that the database refuses with an error a retry
// may fix (here a statement timeout, 57014, set for the role's sessions,
// while a DDL holds the chunks table) is one transaction the database
// rolled back, and must count as one. Before, the claim counted it and
// its retry counted it again: 181 counted for 130 the database counted.
func TestAFailedIdleCheckIsCountedOnce(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	admin := boardPool(t, u)
	admin.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)`)
	admin.MustExecContext(t.Context(), `INSERT INTO users SELECT i, 'U' || i || '@X.COM' FROM generate_series(1, 1000) i`)
	out := NewOutside(t, u, admin)
	const app = "idle-once"
	pu, err := url.Parse(u)
	require.NoError(t, err)
	q := pu.Query()
	q.Set("application_name", app)
	q.Set("statement_timeout", "50") // the role's, or the database's, setting
	pu.RawQuery = q.Encode()
	pool := boardPool(t, pu.String())
	b, err := New(t.Context(), pool, Job{Name: "idle-once", Table: "users",
		Set: []Assign{{Column: "email_lower", Expr: "lower(email)"}}, Derived: true},
		WithRetries(60, 100*time.Microsecond))
	require.NoError(t, err)

	lock, err := admin.BeginTxx(t.Context(), nil)
	require.NoError(t, err)
	_, err = lock.ExecContext(t.Context(), `LOCK TABLE schemashift_backfill_chunks IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	out.Gone(pool, app)
	o0, x0 := b.ownTx.Load(), out.Xacts()
	ctx := t.Context()
	err = b.retry(ctx, "claim", func() error {
		_, _, err := b.claim(ctx, "w", b.size(), nil, nil, false) // as a worker's loop calls it after an idle turn
		return err
	})
	require.Error(t, err)
	assert.Equal(t, pgerr.StatementTimeout, pgerr.Classify(err), "%v", err)
	require.NoError(t, lock.Rollback()) // one transaction more, which the database counts
	out.Gone(pool, app)
	o1 := b.ownTx.Load()
	for out.Xacts() < x0+1 { // the lock's rollback, reported as admin's session goes idle
	}
	x1 := out.Xacts()
	t.Logf("the Backfill counted %d transactions of its own; the database counted %d (every session's, the lock's included)", o1-o0, x1-x0)
	assert.Positive(t, o1-o0, "the failed attempts counted")
	assert.LessOrEqual(t, o1-o0, x1-x0, "counted more than the database counted")
}
