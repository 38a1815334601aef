// Package dialect holds everything that differs between the databases
// schemashift runs on, PostgreSQL and SQLite, so that no other package
// spells a database's name: the SQL fragments that have no common form
// (the current time, row locks, typed parameters, JSON), the catalog
// queries (tables, keys, columns, indexes), advisory locks and session
// timeouts. Errors, the one other difference, are told apart in package
// pgerr.
//
// Everything else schemashift writes is the SQL both accept: $n
// parameters, row values, IS DISTINCT FROM, ON CONFLICT, RETURNING,
// aggregate FILTER, LIMIT … OFFSET, CAST(x AS text).
//
// SQLite serializes writers: a write transaction holds the database's
// write lock from BEGIN (the driver's _txlock=immediate) to COMMIT, so the
// row locks and advisory locks PostgreSQL needs are no-ops there. The
// sqlite package opens connections that way.
package dialect

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/internal/pgerr"
)

// Dialect is one database's spelling. The two values, [Postgres] and
// [SQLite], are immutable and safe for concurrent use.
type Dialect struct {
	name   string
	sqlite bool
}

// The dialects.
var (
	Postgres = &Dialect{name: "postgres"}
	SQLite   = &Dialect{name: "sqlite", sqlite: true}
)

// SQLiteDriver is the database/sql driver name of modernc.org/sqlite, the
// one SQLite driver schemashift supports.
const SQLiteDriver = "sqlite"

// Of returns the dialect of a pool or transaction from its driver's name
// (sqlx's DriverName): [SQLiteDriver] is SQLite, anything else PostgreSQL,
// through pgx or a compatible driver.
func Of(db any) *Dialect {
	if n, ok := db.(interface{ DriverName() string }); ok && n.DriverName() == SQLiteDriver {
		return SQLite
	}
	return Postgres
}

func (d *Dialect) String() string { return d.name }

// IsSQLite reports whether d is SQLite: for the few callers that must say
// something different there (a note that a safety step is skipped).
func (d *Dialect) IsSQLite() bool { return d.sqlite }

// timeFormat is how SQLite's strftime spells a time (column defaults,
// rows of earlier releases): UTC, fixed width, to the millisecond.
const (
	timeFormat   = "2006-01-02 15:04:05.000+00:00"
	sqliteFormat = "'%Y-%m-%d %H:%M:%f+00:00'"
)

// stampFormat is how a time of a caller's clock is passed to the database
// ([Stamp]): UTC, fixed width, to the microsecond (PostgreSQL's
// resolution), which both databases read as a timestamp. SQLite keeps it
// as the text it is and compares it as text: in this form text sorts as
// time does, so that until < $n compares times there too. It sorts as time
// does against the millisecond text of strftime (timeFormat) as well, but
// for the one instant both spell (12.345 and 12.345000), which sorts
// before itself in the longer form.
const stampFormat = "2006-01-02 15:04:05.000000+00:00"

// Stamp is t as a bind parameter: a time of the caller's clock, stored in
// a timestamp column or compared with one, on either database, in place
// of the database's now(). Decisions on time are made by one clock this
// way, and a test moves it instead of waiting. In a position where
// PostgreSQL cannot infer the parameter's type from a column (a CASE, a
// select list), wrap it in [Dialect.Timestamp].
func Stamp(t time.Time) string { return Tick(t).Format(stampFormat) }

// Tick is t in UTC at the microsecond the database keeps of it, so that
// what is decided on a time in Go agrees with what the database decides
// on its [Stamp].
func Tick(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Timestamp is a [Stamp] parameter typed as a timestamp, for positions
// where PostgreSQL cannot infer its type. SQLite needs no cast.
func (d *Dialect) Timestamp(param string) string { return d.Typed(param, "timestamptz") }

// Typed is a parameter typed as a column of type typ (as the catalog names
// it), for comparisons with a key column. SQLite compares by the column's
// affinity and needs no cast.
func (d *Dialect) Typed(param, typ string) string {
	if d.sqlite {
		return param
	}
	return param + "::" + typ
}

// JSON is a parameter holding a JSON document, for a json column.
func (d *Dialect) JSON(param string) string {
	if d.sqlite {
		return "json(" + param + ")"
	}
	return param + "::jsonb"
}

// JSONMerge is JSON object a with b's keys set over it.
func (d *Dialect) JSONMerge(a, b string) string {
	if d.sqlite {
		return "json_patch(" + a + ", " + b + ")"
	}
	return a + " || " + b
}

// Row is a row value of exprs.
func (d *Dialect) Row(exprs ...string) string {
	if d.sqlite {
		return "(" + strings.Join(exprs, ", ") + ")"
	}
	return "ROW(" + strings.Join(exprs, ", ") + ")"
}

// ForUpdate locks the rows a SELECT reads until the transaction ends.
func (d *Dialect) ForUpdate() string {
	if d.sqlite {
		return ""
	}
	return " FOR UPDATE"
}

// ForUpdateSkipLocked locks the rows a SELECT reads, passing over rows
// another transaction holds.
func (d *Dialect) ForUpdateSkipLocked() string {
	if d.sqlite {
		return ""
	}
	return " FOR UPDATE SKIP LOCKED"
}

var schemaSpellings = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?i)\bbigserial\s+PRIMARY\s+KEY\b`), "integer PRIMARY KEY AUTOINCREMENT"},
	{regexp.MustCompile(`(?i)\btimestamptz\b`), "timestamp"},
	{regexp.MustCompile(`(?i)\bjsonb\b`), "text"},
	{regexp.MustCompile(`(?i)\bDEFAULT (now|clock_timestamp)\(\)`), "DEFAULT (strftime(" + sqliteFormat + ", 'now'))"},
}

// Schema renders DDL for schemashift's own tables, written in PostgreSQL's
// spelling, for d: on SQLite, bigserial keys, timestamptz, jsonb and
// now() defaults become their SQLite forms.
func (d *Dialect) Schema(ddl string) string {
	if !d.sqlite {
		return ddl
	}
	for _, s := range schemaSpellings {
		ddl = s.re.ReplaceAllString(ddl, s.with)
	}
	return ddl
}

// CurrentTime reads the database's clock. schemashift decides on no time
// of it (see [Stamp]); tests use it to show that the database's clock
// played no part.
func (d *Dialect) CurrentTime(ctx context.Context, q sqlx.QueryerContext) (time.Time, error) {
	if !d.sqlite {
		var t time.Time
		err := sqlx.GetContext(ctx, q, &t, `SELECT now()`)
		return t, err
	}
	var s string
	if err := sqlx.GetContext(ctx, q, &s, `SELECT strftime(`+sqliteFormat+`, 'now')`); err != nil {
		return time.Time{}, err
	}
	return parseTime(s)
}

// parseTime reads a timestamp SQLite returned as text (from an expression,
// which carries no declared type for the driver to go by).
func parseTime(s string) (time.Time, error) {
	for _, f := range []string{timeFormat, "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999", time.RFC3339Nano} {
		if t, err := time.Parse(f, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("parse time %q: not a timestamp", s)
}

// Time scans a timestamp from either database, including SQLite
// expressions that come back as text. The zero value is NULL.
type Time struct{ time.Time }

// Scan implements sql.Scanner.
func (t *Time) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		t.Time = time.Time{}
	case time.Time:
		t.Time = v
	case string:
		p, err := parseTime(v)
		t.Time = p
		return err
	case []byte:
		p, err := parseTime(string(v))
		t.Time = p
		return err
	default:
		return fmt.Errorf("scan time: unsupported %T", v)
	}
	return nil
}

// Execer runs a statement: *sqlx.DB, *sqlx.Tx, *sqlx.Conn and their
// database/sql counterparts.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

var (
	_ Execer = (*sqlx.DB)(nil)
	_ Execer = (*sqlx.Tx)(nil)
	_ Execer = (*sqlx.Conn)(nil)
)

// LockTx takes a transaction-scoped advisory lock on key, released at
// COMMIT or ROLLBACK. On SQLite the write transaction already excludes
// every other writer.
func (d *Dialect) LockTx(ctx context.Context, tx Execer, key int64) error {
	if d.sqlite {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
	return err
}

// SetTimeouts bounds how long the statements of a transaction (local) or
// of a session wait for a lock and run. Zero leaves a timeout unset.
// SQLite has neither: a writer waits for the write lock up to the
// connection's busy_timeout, and statements are not timed.
func (d *Dialect) SetTimeouts(ctx context.Context, ex Execer, lock, statement time.Duration, local bool) error {
	if d.sqlite {
		return nil
	}
	var sets []string
	var args []any
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"lock_timeout", lock}, {"statement_timeout", statement}} {
		if t.d > 0 {
			args = append(args, millis(t.d))
			sets = append(sets, fmt.Sprintf("set_config('%s', $%d, %t)", t.name, len(args), local))
		}
	}
	if len(sets) == 0 {
		return nil
	}
	_, err := ex.ExecContext(ctx, `SELECT `+strings.Join(sets, ", "), args...)
	return err
}

// lockLease is how long a SQLite lock stays held without its holder
// renewing it: a holder that died frees it after this long, in real time.
const lockLease = 30 * time.Second

// renewEvery is how often, in nanoseconds, a SQLite lock's holder renews
// its lease: a third of the lease (tests shorten it).
var renewEvery atomic.Int64

func init() { renewEvery.Store(int64(lockLease / 3)) }

// ErrLockLost is the cause of the end of a [Dialect.Hold] context, and is
// wrapped by [Dialect.Locked], [Dialect.Hold] and [CheckHeld], when a
// SQLite lock's lease could not be renewed (the renewal failed, or matched
// no row: another process took the lock, its lease having run out) while
// its holder worked under it.
var ErrLockLost = errors.New("the migration lock was lost")

// Lock takes the lock named name, across processes, waiting for it until
// ctx ends; unlock releases it. On PostgreSQL it is a session advisory
// lock on a connection of its own. SQLite has no such lock: there it is a
// leased row in schemashift_locks, renewed while held, so that it takes
// no connection for long (a one-connection pool must still work).
//
// A lease's times are real time (time.Now), never a caller's injected
// clock: the lease is about processes (a holder that died frees the lock
// after lockLease), not about a migration's timeline, and a coordinator
// whose injected clock runs ahead must not see a held lease as run out.
// The now argument is ignored (it is kept for callers). Renewals come
// every third of the lease; a renewal that fails or matches no row ends
// the hold (see [Dialect.Hold]); Lock's caller has no context to be told
// by, and should use Hold.
func (d *Dialect) Lock(ctx context.Context, db *sqlx.DB, name string, now func() time.Time) (unlock func(), err error) {
	if d.sqlite {
		h, err := lockRow(ctx, db, name)
		if err != nil {
			return nil, err
		}
		return func() { _ = h.release() }, nil
	}
	conn, err := db.Connx(ctx)
	if err != nil {
		return nil, err
	}
	if err := advisoryLock(ctx, conn, name); err != nil {
		discard(conn) // it may hold the lock, granted as ctx ended
		return nil, err
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, name)
		conn.Close()
	}, nil
}

// heldRow is a SQLite lock held: its row's name and holder, and the
// context its holder works under, ended (cause [ErrLockLost]) when a
// renewal fails or matches no row.
type heldRow struct {
	db           *sqlx.DB
	name, holder string
	ctx          context.Context
	lose         context.CancelCauseFunc
	stop         context.CancelFunc
	done         chan struct{}
}

type heldKey struct{}

// release stops the renewals and deletes the row if it is still ours; it
// returns [ErrLockLost] (wrapped) if the lock was lost while held.
func (h *heldRow) release() error {
	h.stop()
	<-h.done
	_, _ = h.db.ExecContext(context.WithoutCancel(h.ctx), `DELETE FROM schemashift_locks WHERE name = $1 AND holder = $2`, h.name, h.holder)
	if cause := context.Cause(h.ctx); errors.Is(cause, ErrLockLost) {
		return cause
	}
	h.lose(nil)
	return nil
}

func lockRow(ctx context.Context, db *sqlx.DB, name string) (*heldRow, error) {
	var id [12]byte
	_, _ = rand.Read(id[:])
	holder := hex.EncodeToString(id[:])
	created := false
	for {
		at := time.Now()
		res, err := db.ExecContext(ctx, `INSERT INTO schemashift_locks (name, holder, until) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
			WHERE schemashift_locks.until < $4`, name, holder, Stamp(at.Add(lockLease)), Stamp(at))
		if !created && pgerr.UndefinedTable(err) {
			// The first lock taken in this database: the table is created
			// then, so that taking a lock otherwise runs no DDL.
			if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schemashift_locks (
				name text PRIMARY KEY, holder text NOT NULL, until timestamp NOT NULL)`); err != nil {
				return nil, fmt.Errorf("create lock table: %w", err)
			}
			created = true
			continue
		}
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	h := &heldRow{db: db, name: name, holder: holder, done: make(chan struct{})}
	h.ctx, h.lose = context.WithCancelCause(ctx)
	h.ctx = context.WithValue(h.ctx, heldKey{}, h)
	renewCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.stop = stop
	go func() {
		defer close(h.done)
		t := time.NewTicker(time.Duration(renewEvery.Load()))
		defer t.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-t.C:
				res, err := db.ExecContext(renewCtx, `UPDATE schemashift_locks SET until = $3
					WHERE name = $1 AND holder = $2`, name, holder, Stamp(time.Now().Add(lockLease)))
				if renewCtx.Err() != nil {
					return // released meanwhile
				}
				var n int64
				if err == nil {
					n, err = res.RowsAffected()
				}
				switch {
				case err != nil:
					h.lose(fmt.Errorf("lock %s: renew the lease: %w: %w", name, ErrLockLost, err))
					return
				case n != 1:
					h.lose(fmt.Errorf("lock %s: renew the lease: %w: another holder has it", name, ErrLockLost))
					return
				}
			}
		}
	}()
	return h, nil
}

// CheckHeld fences a write made under a lock of [Dialect.Hold]: given
// Hold's context and q, a transaction that holds SQLite's write lock (as
// every transaction of a pool set up as [CheckPool] requires does, from
// BEGIN), it reads the lock's row and returns [ErrLockLost] (wrapped)
// unless the holder is still this one and its lease has not run out in
// real time; while the transaction lasts no other process can take the
// lock, so what the transaction then writes is written under it. Run it
// in the transaction, before its compare-and-set. On PostgreSQL (the
// advisory lock is held by the session the transaction runs on), and
// with a context of no SQLite hold, it returns nil.
func CheckHeld(ctx context.Context, q sqlx.QueryerContext) error {
	h, _ := ctx.Value(heldKey{}).(*heldRow)
	if h == nil {
		return nil
	}
	if cause := context.Cause(h.ctx); errors.Is(cause, ErrLockLost) {
		return cause
	}
	var row struct {
		Holder string `db:"holder"`
		Live   bool   `db:"live"`
	}
	// Live as the claim judges it: a lease runs out when until < now.
	err := sqlx.GetContext(ctx, q, &row, `SELECT holder, CASE WHEN until < $2 THEN 0 ELSE 1 END AS live
		FROM schemashift_locks WHERE name = $1`, h.name, Stamp(time.Now()))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("lock %s: %w: its row is gone", h.name, ErrLockLost)
	case err != nil:
		return fmt.Errorf("lock %s: check it is held: %w", h.name, err)
	case row.Holder != h.holder:
		return fmt.Errorf("lock %s: %w: another holder has it", h.name, ErrLockLost)
	case !row.Live:
		return fmt.Errorf("lock %s: %w: its lease ran out", h.name, ErrLockLost)
	}
	return nil
}

func millis(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return fmt.Sprintf("%dms", max(d.Milliseconds(), 1))
}

// ErrPoolSetup: a SQLite pool that does not wait for the write lock, or
// does not take it at BEGIN. schemashift's transactions read, then write:
// begun without the lock, they fail with "database is locked" under any
// concurrent writer.
var ErrPoolSetup = errors.New("SQLite pool not opened for concurrent writers: open it with sqlite.Open " +
	"(or add _txlock=immediate and _pragma=busy_timeout(10000) to its data source name)")

// CheckPool checks that a SQLite pool waits for the write lock
// (busy_timeout) and takes it at BEGIN (_txlock=immediate), as sqlite.Open
// sets up. PostgreSQL pools need nothing.
//
// The second is probed with two of the pool's connections, when it has two
// to give: one takes the write lock, waiting for it like any writer, then
// the other begins a transaction the pool's way without waiting. BEGIN
// IMMEDIATE fails then; a deferred BEGIN takes no lock and succeeds. While
// the first holds the lock no other writer can write, so a writer
// elsewhere cannot sway the answer; one that keeps the lock past
// busy_timeout makes the check fail, saying so, rather than pass
// untested.
func (d *Dialect) CheckPool(ctx context.Context, db *sqlx.DB) error {
	if !d.sqlite {
		return nil
	}
	var busy int
	if err := db.GetContext(ctx, &busy, `PRAGMA busy_timeout`); err != nil {
		return fmt.Errorf("check SQLite pool: %w", err)
	}
	if busy <= 0 {
		return fmt.Errorf("check SQLite pool: busy_timeout is 0: %w", ErrPoolSetup)
	}
	if db.Stats().MaxOpenConnections == 1 {
		return nil
	}
	holder, err := db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("check SQLite pool: %w", err)
	}
	// The probe's connections are dropped, not pooled: they may be left in
	// a transaction, or with the busy_timeout zeroed.
	defer discard(holder)
	if _, err := holder.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		if pgerr.Classify(err) == pgerr.LockTimeout {
			return fmt.Errorf("check SQLite pool: cannot tell whether BEGIN takes the write lock: "+
				"another writer held it longer than busy_timeout (%d ms): %w", busy, err)
		}
		return fmt.Errorf("check SQLite pool: %w", err)
	}
	probe, err := db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("check SQLite pool: %w", err)
	}
	defer discard(probe)
	if _, err := probe.ExecContext(ctx, `PRAGMA busy_timeout = 0`); err != nil {
		return fmt.Errorf("check SQLite pool: %w", err)
	}
	tx, err := probe.BeginTxx(ctx, nil)
	if pgerr.Classify(err) == pgerr.LockTimeout {
		return nil // BEGIN wanted the write lock the holder has
	}
	if err != nil {
		return fmt.Errorf("check SQLite pool: %w", err)
	}
	_ = tx.Rollback()
	return fmt.Errorf("check SQLite pool: BEGIN does not take the write lock: %w", ErrPoolSetup)
}

// discard closes a connection rather than return it to its pool.
func discard(c *sqlx.Conn) {
	_ = c.Raw(func(any) error { return driver.ErrBadConn })
	_ = c.Close()
}

// TableExists reports whether t exists.
func (d *Dialect) TableExists(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (bool, error) {
	var exists bool
	var err error
	if d.sqlite {
		err = sqlx.GetContext(ctx, q, &exists, `SELECT EXISTS (SELECT 1 FROM `+sqliteSchema(t)+`.sqlite_schema
			WHERE type = 'table' AND name = $1)`, t.Name)
	} else {
		err = sqlx.GetContext(ctx, q, &exists, `SELECT to_regclass($1) IS NOT NULL`, t.Quoted())
	}
	return exists, err
}

func sqliteSchema(t ident.Table) string {
	if t.Schema == "" {
		return `"main"`
	}
	q, _ := ident.Quote(t.Schema) // checked by ParseTable
	return q
}

func schemaName(t ident.Table) string {
	if t.Schema == "" {
		return "main"
	}
	return t.Schema
}

// Column is a column as the catalog describes it.
type Column struct {
	Name string `db:"name"`
	Type string `db:"type"` // PostgreSQL's format_type; SQLite's declared type
	// NotNull: the column never holds NULL. That includes SQLite's rowid
	// key, an INTEGER PRIMARY KEY, which its catalog calls nullable: it
	// is the row's id, and a NULL written to it becomes the next id.
	NotNull bool `db:"not_null"`
	Key     int  `db:"key"` // position in the primary key from 1; 0 when not in it
}

// sqliteRowidKey is true, in a query over pragma_table_info($1, $2), when
// the table's primary key is its rowid: SQLite gives every other primary
// key an index (origin 'pk'), a rowid table's and a WITHOUT ROWID table's
// alike, and none to the rowid, which is the table itself. (So an INTEGER
// PRIMARY KEY DESC column, which is not the rowid and does hold NULL, is
// told apart too.)
const sqliteRowidKey = `NOT EXISTS (SELECT 1 FROM pragma_index_list($1, $2) WHERE origin = 'pk')`

// Columns lists t's columns in order; none when t does not exist, so one
// read tells both (PostgreSQL's zero-column tables aside: no use to
// anything that reads columns).
func (d *Dialect) Columns(ctx context.Context, q sqlx.QueryerContext, t ident.Table) ([]Column, error) {
	var cols []Column
	var err error
	if d.sqlite {
		err = sqlx.SelectContext(ctx, q, &cols, `SELECT name, type, "notnull" <> 0 OR (pk > 0 AND `+sqliteRowidKey+`) AS not_null, pk AS key
			FROM pragma_table_info($1, $2) ORDER BY cid`, t.Name, schemaName(t))
	} else {
		// From 18 on, attnotnull is also true for a NOT NULL constraint
		// added NOT VALID (or left so by a failed VALIDATE), under which
		// old rows may still be NULL: only a validated one counts (before
		// 18, pg_constraint holds no NOT NULL constraints, contype 'n').
		err = sqlx.SelectContext(ctx, q, &cols, `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
				a.attnotnull AND NOT EXISTS (SELECT 1 FROM pg_constraint n WHERE n.conrelid = a.attrelid
					AND n.contype = 'n' AND n.conkey = ARRAY[a.attnum] AND NOT n.convalidated) AS not_null,
				coalesce(array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1, 0) AS key
			FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, t.Quoted())
	}
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t, err)
	}
	return cols, nil
}

// Index is an index as the catalog describes it.
type Index struct {
	// Name is empty for SQLite's rowid key (see [Column].NotNull): the
	// table itself, no index, but unique on its column as one would be.
	Name    string
	Columns []string
	Unique  bool
	// Valid is false for an index a failed concurrent build left behind
	// (PostgreSQL only).
	Valid bool
}

// Indexes lists t's indexes, the one its primary key is kept in included
// (on SQLite, the rowid key, unnamed).
func (d *Dialect) Indexes(ctx context.Context, q sqlx.QueryerContext, t ident.Table) ([]Index, error) {
	var rows []struct {
		Name    string `db:"name"`
		Columns string `db:"columns"`
		Unique  bool   `db:"is_unique"`
		Valid   bool   `db:"is_valid"`
	}
	var err error
	if d.sqlite {
		err = sqlx.SelectContext(ctx, q, &rows, `SELECT l.name, l."unique" <> 0 AS is_unique, true AS is_valid,
				coalesce((SELECT group_concat(name, ',') FROM (SELECT i.name FROM pragma_index_info(l.name, $2) i ORDER BY i.seqno)), '') AS columns
			FROM pragma_index_list($1, $2) l
			UNION ALL
			SELECT '', true, true, c.name FROM pragma_table_info($1, $2) c WHERE c.pk > 0 AND `+sqliteRowidKey, t.Name, schemaName(t))
	} else {
		err = sqlx.SelectContext(ctx, q, &rows, `SELECT c.relname AS name, i.indisunique AS is_unique, i.indisvalid AS is_valid,
				coalesce((SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
					JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum), '') AS columns
			FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass($1)`, t.Quoted())
	}
	if err != nil {
		return nil, fmt.Errorf("read indexes of %s: %w", t, err)
	}
	out := make([]Index, len(rows))
	for i, r := range rows {
		out[i] = Index{Name: r.Name, Unique: r.Unique, Valid: r.Valid}
		if r.Columns != "" {
			out[i].Columns = strings.Split(r.Columns, ",")
		}
	}
	return out, nil
}

// PrimaryKey lists t's primary key columns in key order; none when t has
// no primary key (or does not exist).
func (d *Dialect) PrimaryKey(ctx context.Context, q sqlx.QueryerContext, t ident.Table) ([]string, error) {
	cols, err := d.Columns(ctx, q, t)
	if err != nil {
		return nil, err
	}
	return PrimaryKeyOf(cols), nil
}

// PrimaryKeyOf lists the primary key columns among cols, as [Dialect.Columns]
// read them, in key order; none when there is no primary key.
func PrimaryKeyOf(cols []Column) []string {
	var keys []string
	for pos := 1; ; pos++ {
		i := slices.IndexFunc(cols, func(c Column) bool { return c.Key == pos })
		if i < 0 {
			return keys
		}
		keys = append(keys, cols[i].Name)
	}
}

// EstimateRows is the planner's estimate of t's row count, PostgreSQL's
// reltuples: -1 (or 0 before PostgreSQL 14) when the table was never
// analyzed. SQLite keeps no estimate: there it is always -1, and a caller
// that needs a figure counts, once.
func (d *Dialect) EstimateRows(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (int64, error) {
	if d.sqlite {
		return -1, nil
	}
	var n float64
	err := sqlx.GetContext(ctx, q, &n, `SELECT reltuples FROM pg_class WHERE oid = $1::regclass`, t.Quoted())
	return int64(n), err
}

// ServerMajor is the server's major version, which some DDL depends on
// (PostgreSQL 18 adds NOT NULL constraints NOT VALID). SQLite's forms do
// not depend on its version: 0.
func (d *Dialect) ServerMajor(ctx context.Context, q sqlx.QueryerContext) (int, error) {
	if d.sqlite {
		return 0, nil
	}
	var v int
	if err := sqlx.GetContext(ctx, q, &v, `SELECT current_setting('server_version_num')::int`); err != nil {
		return 0, fmt.Errorf("read server version: %w", err)
	}
	return v / 10000, nil
}
