// Package rollouttest holds what the tests of rollout and of the packages
// over it (board, report) and under it (fleet, ledger, ledgerflag) set a
// rollout up with: the worked example's plan and table ([UsersPlan],
// [UsersDB]), a clock a test moves ([Clock]), an instance stamped by it
// ([InstanceAt]), heartbeats ([Beat]) and forced advances ([Forced]).
// It is for tests only; nothing in it is safe to share between tests
// but a [Clock], which is safe for concurrent use.
package rollouttest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

// Window is the fleet window of [UsersPlan].
const Window = 5 * time.Minute

// UsersPlan splits users.full_name, in SQL both databases accept except
// for the string functions of the backfill.
func UsersPlan(db *sqlx.DB) rollout.Plan {
	given, family := "split_part(full_name, ' ', 1)", "substr(full_name, length(split_part(full_name, ' ', 1)) + 2)"
	if db != nil && db.DriverName() == sqlite.DriverName {
		given, family = "substr(full_name, 1, instr(full_name, ' ') - 1)", "substr(full_name, instr(full_name, ' ') + 1)"
	}
	return rollout.Plan{
		Migration: "users_split_name",
		Expand: []rollout.Step{
			{SQL: `ALTER TABLE users ADD COLUMN given_name text; ALTER TABLE users ADD COLUMN family_name text`,
				Down: `ALTER TABLE users DROP COLUMN given_name; ALTER TABLE users DROP COLUMN family_name`},
		},
		Columns: []rollout.Column{{Table: "users", Column: "given_name"}, {Table: "users", Column: "family_name"}},
		Backfills: []backfill.Job{{Name: "users_split_name", Table: "users", Set: []backfill.Assign{
			{Column: "given_name", Expr: given},
			{Column: "family_name", Expr: family},
		}, Down: []backfill.Assign{{Column: "full_name", Expr: "given_name || ' ' || family_name"}}}},
		Contract:   []rollout.Step{{SQL: `ALTER TABLE users DROP COLUMN full_name`}},
		Thresholds: rollout.Thresholds{ShadowConsistency: 0.9, MinComparisons: 10, Window: Window},
	}
}

// LedgerPlan is users_split_name with no DDL and no backfill: its
// advances move only the ledger, and its gates count one comparison.
func LedgerPlan() rollout.Plan {
	return rollout.Plan{Migration: "users_split_name", Thresholds: rollout.Thresholds{Window: Window, MinComparisons: 1}}
}

// UsersDB creates users(id, full_name) with 500 rows in db. full_name is
// nullable from the start: SQLite cannot drop a NOT NULL in place.
func UsersDB(t *testing.T, db *sqlx.DB) *sqlx.DB {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, full_name text)`)
	db.MustExecContext(t.Context(), `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 500)
		INSERT INTO users SELECT i, 'Ada Lovelace' || i FROM s`)
	return db
}

// Clock is a test's clock for rollout.WithClock and fleet.WithClock: it
// stands still until the test moves it, so that a window passes or an
// instance ages out when the test says, not when a loaded machine gets
// round to it. It starts in 2031 ([T0]), years from the database's own
// clock, so that a decision the database's now() made instead of the
// clock shows. It is safe for concurrent use.
type Clock struct{ ns atomic.Int64 }

// T0 is a clock's start: the last microsecond of a year, so that moving
// it crosses a second, a day and a year at once.
var T0 = time.Date(2031, 12, 31, 23, 59, 59, 999999000, time.UTC)

// NewClock returns a clock at [T0].
func NewClock() *Clock {
	c := &Clock{}
	c.ns.Store(T0.UnixNano())
	return c
}

// Now reads the clock.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Add moves the clock on by d and returns its new time.
func (c *Clock) Add(d time.Duration) time.Time { return time.Unix(0, c.ns.Add(int64(d))).UTC() }

// Forced moves a migration n phases on by force, as a test's setup.
func Forced(t *testing.T, c *rollout.Coordinator, migration string, n int) {
	t.Helper()
	for range n {
		_, err := c.Advance(t.Context(), rollout.Request{Migration: migration, Actor: "t", Force: true, Reason: "setup"})
		require.NoError(t, err)
	}
}

// InstanceAt is an instance id of users-api v2 that knows migration, its
// heartbeats stamped by now.
func InstanceAt(t *testing.T, db *sqlx.DB, id, migration string, now func() time.Time) *fleet.Instance {
	t.Helper()
	in, err := fleet.NewInstance(db, "users-api", "v2", []string{migration}, fleet.WithID(id), fleet.WithClock(now))
	require.NoError(t, err)
	return in
}

// Beat records stages (and old-path calls, below complete) of
// users_split_name for an instance and sends a heartbeat.
func Beat(t *testing.T, in *fleet.Instance, stages ...flags.Stage) {
	t.Helper()
	for _, s := range stages {
		in.Record("users_split_name", s, s < flags.Complete)
	}
	require.NoError(t, in.Beat(t.Context()))
}

// Open opens a pool on url, closed when the test ends.
func Open(t *testing.T, url string) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("pgx", url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// UnknownPool returns a pool whose driver is of no database schemashift
// supports: its connections open, and refuse every statement. It is
// closed when the test ends.
func UnknownPool(t *testing.T) *sql.DB {
	t.Helper()
	db := sql.OpenDB(unknownConnector{})
	t.Cleanup(func() { db.Close() })
	return db
}

type (
	unknownConnector struct{}
	unknownDriver    struct{}
	unknownConn      struct{}
)

var errUnknownSQL = errors.New("rollouttest: unknown database: statement refused")

func (unknownConnector) Connect(context.Context) (driver.Conn, error) { return unknownConn{}, nil }
func (unknownConnector) Driver() driver.Driver                        { return unknownDriver{} }
func (unknownDriver) Open(string) (driver.Conn, error)                { return unknownConn{}, nil }
func (unknownConn) Prepare(string) (driver.Stmt, error)               { return nil, errUnknownSQL }
func (unknownConn) Close() error                                      { return nil }
func (unknownConn) Begin() (driver.Tx, error)                         { return nil, errUnknownSQL }

// Handle is one of the four kinds of handle a caller may pass to a
// function that only runs statements (*sql.DB, *sqlx.DB, *sql.Tx,
// *sqlx.Tx), opened on a test's pool, with what ends it: commit or roll
// back a transaction, nothing for a pool. The handle is a fleet.DB, the
// three context methods every package's DB interface takes.
type Handle struct {
	Name string
	Tx   bool
	Open func(t *testing.T, db *sqlx.DB) (h fleet.DB, end func(commit bool))
}

// Handles are the four kinds of [Handle].
func Handles() []Handle {
	return []Handle{
		{"sql.DB", false, func(_ *testing.T, db *sqlx.DB) (fleet.DB, func(bool)) { return db.DB, func(bool) {} }},
		{"sqlx.DB", false, func(_ *testing.T, db *sqlx.DB) (fleet.DB, func(bool)) { return db, func(bool) {} }},
		{"sql.Tx", true, func(t *testing.T, db *sqlx.DB) (fleet.DB, func(bool)) {
			tx, err := db.DB.BeginTx(t.Context(), nil)
			require.NoError(t, err)
			return tx, endTx(t, tx.Commit, tx.Rollback)
		}},
		{"sqlx.Tx", true, func(t *testing.T, db *sqlx.DB) (fleet.DB, func(bool)) {
			tx, err := db.BeginTxx(t.Context(), nil)
			require.NoError(t, err)
			return tx, endTx(t, tx.Commit, tx.Rollback)
		}},
	}
}

func endTx(t *testing.T, commit, rollback func() error) func(bool) {
	return func(c bool) {
		if c {
			require.NoError(t, commit())
		} else {
			require.NoError(t, rollback())
		}
	}
}
