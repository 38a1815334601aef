package dialects_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialect/postgres"
	sqlitedialect "github.com/schemashift/schemashift/internal/dialect/sqlite"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The catalog reads the same facts from both databases.
func TestCatalog(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		d := dbtest.Dialect(t, db)
		db.MustExecContext(ctx, `CREATE TABLE pairs (a integer NOT NULL, b text NOT NULL, note text, PRIMARY KEY (b, a))`)
		db.MustExecContext(ctx, `CREATE TABLE single (id bigint PRIMARY KEY, v text)`)
		db.MustExecContext(ctx, `CREATE TABLE keyless (v text)`)
		db.MustExecContext(ctx, `CREATE UNIQUE INDEX pairs_note ON pairs (note, a)`)

		for table, want := range map[string][]string{"pairs": {"b", "a"}, "single": {"id"}, "keyless": nil, "missing": nil} {
			got, err := dialect.PrimaryKey(ctx, d, db, ident.Table{Name: table})
			require.NoError(t, err)
			assert.Equal(t, want, got, table)
		}
		ok, err := d.TableExists(ctx, db, ident.Table{Name: "pairs"})
		require.NoError(t, err)
		assert.True(t, ok)
		ok, err = d.TableExists(ctx, db, ident.Table{Name: "missing"})
		require.NoError(t, err)
		assert.False(t, ok)

		cols, err := d.Columns(ctx, db, ident.Table{Name: "pairs"})
		require.NoError(t, err)
		require.Len(t, cols, 3)
		assert.Equal(t, []string{"a", "b", "note"}, []string{cols[0].Name, cols[1].Name, cols[2].Name})
		assert.True(t, cols[0].NotNull)
		assert.False(t, cols[2].NotNull)
		assert.True(t, strings.EqualFold("text", cols[2].Type), cols[2].Type)

		idx, err := d.Indexes(ctx, db, ident.Table{Name: "pairs"})
		require.NoError(t, err)
		var found bool
		for _, i := range idx {
			if i.Name == "pairs_note" {
				found = true
				assert.Equal(t, []string{"note", "a"}, i.Columns)
				assert.True(t, i.Unique)
				assert.True(t, i.Valid)
			}
		}
		assert.True(t, found, "%+v", idx)
	})
}

// What the DDL executor reads of the objects it makes reads the same on
// both databases: an index there, valid, on its table; a name taken by a
// relation that is no index of the table; nothing under a free name; and
// where CREATE TABLE puts an unqualified table.
func TestCatalogObjects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		d := dbtest.Dialect(t, db)
		db.MustExecContext(ctx, `CREATE TABLE items (id bigint PRIMARY KEY, sku text DEFAULT 'none')`)
		db.MustExecContext(ctx, `CREATE TABLE other (id bigint PRIMARY KEY)`)
		db.MustExecContext(ctx, `CREATE INDEX items_sku ON items (sku)`)
		db.MustExecContext(ctx, `CREATE INDEX other_id ON other (id)`)
		items := ident.Table{Name: "items"}
		for name, want := range map[string]dialect.IndexState{
			"items_sku": dialect.IndexValid, "other_id": dialect.IndexOther, "other": dialect.IndexOther, "nothing": dialect.IndexAbsent,
		} {
			got, err := d.IndexState(ctx, db, ident.Table{Name: name}, items)
			require.NoError(t, err, name)
			assert.Equal(t, want, got, name)
			found, err := d.RelationExists(ctx, db, items, name)
			require.NoError(t, err)
			assert.Equal(t, want != dialect.IndexAbsent, found, name)
		}
		def, err := d.IndexDef(ctx, db, ident.Table{Name: "items_sku"}, items)
		require.NoError(t, err)
		require.Len(t, def, 1)
		assert.True(t, def[0].OnTable)
		assert.Contains(t, def[0].Def, "items_sku")
		shape, err := d.ColumnShape(ctx, db, items, "sku")
		require.NoError(t, err)
		require.Len(t, shape, 1)
		assert.True(t, shape[0].HasDefault)
		assert.False(t, shape[0].NotNull)
		notTable, err := d.IsTable(ctx, db, items)
		require.NoError(t, err)
		assert.Empty(t, notTable)
		notTable, err = d.IsTable(ctx, db, ident.Table{Name: "items_sku"})
		require.NoError(t, err)
		assert.NotEmpty(t, notTable, "an index is no table")
		schema, err := d.ResolveSchema(ctx, db, ident.Table{Name: "not_yet"})
		require.NoError(t, err)
		assert.Equal(t, map[bool]string{false: "public", true: "main"}[dbtest.IsSQLite(t, db)], schema.String)
	})
}

// An integer primary key is NOT NULL and kept unique by an index on both
// databases: on SQLite too, where it is the rowid, which the catalog calls
// nullable and lists among no indexes.
func TestCatalogIntegerKey(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		d := dbtest.Dialect(t, db)
		db.MustExecContext(ctx, `CREATE TABLE accounts (id integer PRIMARY KEY, v text)`)
		cols, err := d.Columns(ctx, db, ident.Table{Name: "accounts"})
		require.NoError(t, err)
		require.Len(t, cols, 2)
		assert.True(t, cols[0].NotNull, "id")
		assert.False(t, cols[1].NotNull, "v")
		idx, err := d.Indexes(ctx, db, ident.Table{Name: "accounts"})
		require.NoError(t, err)
		require.Len(t, idx, 1)
		assert.Equal(t, []string{"id"}, idx[0].Columns)
		assert.True(t, idx[0].Unique)
		assert.True(t, idx[0].Valid)
	})
}

// SQLite's rowid key is told by its having no index of its own, not by
// how it is spelled: INTEGER PRIMARY KEY DESC is no rowid (it has an
// index, and keeps a NULL), PRIMARY KEY (id DESC) is one.
func TestCatalogSQLiteRowidKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := dbtest.SQLite(t)
	for table, tt := range map[string]struct {
		ddl     string
		notNull bool
		null    string // what inserting a NULL key does: "numbered" (the next rowid), "kept" or "refused"
		unnamed bool   // the key is listed as an unnamed index
	}{
		"rowid":         {ddl: `(id INTEGER PRIMARY KEY, v text)`, notNull: true, null: "numbered", unnamed: true},
		"rowid_table":   {ddl: `(id integer, v text, PRIMARY KEY (id DESC))`, notNull: true, null: "numbered", unnamed: true},
		"rowid_autoinc": {ddl: `(id integer PRIMARY KEY AUTOINCREMENT, v text)`, notNull: true, null: "numbered", unnamed: true},
		"desc":          {ddl: `(id INTEGER PRIMARY KEY DESC, v text)`, null: "kept"},
		"bigint":        {ddl: `(id bigint PRIMARY KEY, v text)`, null: "kept"},
		"without_rowid": {ddl: `(id integer PRIMARY KEY, v text) WITHOUT ROWID`, notNull: true, null: "refused"},
	} {
		db.MustExecContext(ctx, `CREATE TABLE `+table+` `+tt.ddl)
		cols, err := sqlitedialect.Dialect{}.Columns(ctx, db, ident.Table{Name: table})
		require.NoError(t, err)
		assert.Equal(t, tt.notNull, cols[0].NotNull, table)
		assert.False(t, cols[1].NotNull, table)
		null := "refused"
		if _, err := db.ExecContext(ctx, `INSERT INTO `+table+` (id, v) VALUES (NULL, 'x')`); err == nil {
			var kept bool
			require.NoError(t, db.GetContext(ctx, &kept, `SELECT id IS NULL FROM `+table))
			null = map[bool]string{true: "kept", false: "numbered"}[kept]
		}
		assert.Equal(t, tt.null, null, table)

		idx, err := sqlitedialect.Dialect{}.Indexes(ctx, db, ident.Table{Name: table})
		require.NoError(t, err)
		require.Len(t, idx, 1, "%s: %+v", table, idx)
		assert.Equal(t, []string{"id"}, idx[0].Columns, table)
		assert.True(t, idx[0].Unique, table)
		assert.Equal(t, tt.unnamed, idx[0].Name == "", "%s: %+v", table, idx[0])
	}
}

// Timestamps written by a column default come back as times, directly
// from a column and through Time from an expression. A Stamp is read as
// the time it is, on both databases, and compares as time with stored
// times: microsecond stamps among themselves and with strftime's
// millisecond text (SQLite compares text), across a second, a year and
// with the database's own clock years away.
func TestTime(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		d := dbtest.Dialect(t, db)
		ev := `CREATE TABLE ev (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), doc text)`
		if db.DriverName() == "sqlite" {
			ev = sqlitedialect.Dialect{}.Schema(ev)
		}
		db.MustExecContext(ctx, ev)
		db.MustExecContext(ctx, `INSERT INTO ev (doc) VALUES ($1)`, `{"a": 1}`)
		var at time.Time
		require.NoError(t, db.GetContext(ctx, &at, `SELECT at FROM ev`))
		assert.WithinDuration(t, time.Now(), at, time.Minute)
		var latest dialect.Time
		require.NoError(t, db.GetContext(ctx, &latest, `SELECT max(at) FROM ev`))
		assert.True(t, latest.Equal(at), "%v vs %v", latest, at)
		now, err := d.CurrentTime(ctx, db)
		require.NoError(t, err)
		assert.False(t, now.Before(at.Truncate(time.Millisecond)))

		// A default-stamped row (the database's clock) against stamps a
		// moment either side of it.
		var later, earlier bool
		require.NoError(t, db.GetContext(ctx, &later, `SELECT $1 > at FROM ev`, dialect.Stamp(at.Add(time.Microsecond))))
		assert.True(t, later)
		require.NoError(t, db.GetContext(ctx, &earlier, `SELECT $1 < at FROM ev`, dialect.Stamp(at.Add(-time.Millisecond))))
		assert.True(t, earlier)

		// Stamps stored and compared: each reads back as its time, and
		// sorts as time does, a microsecond apart.
		base := time.Date(2031, 12, 31, 23, 59, 59, 999999000, time.FixedZone("east", 5*3600))
		db.MustExecContext(ctx, `DELETE FROM ev`)
		times := []time.Time{base, base.Add(time.Microsecond), base.Add(-time.Microsecond), base.Add(time.Second), base.Add(-365 * 24 * time.Hour)}
		for _, tm := range times {
			db.MustExecContext(ctx, `INSERT INTO ev (at) VALUES ($1)`, dialect.Stamp(tm))
		}
		var back []time.Time
		require.NoError(t, db.SelectContext(ctx, &back, `SELECT at FROM ev ORDER BY at`))
		require.Len(t, back, len(times))
		for i, want := range []time.Time{times[4], times[2], times[0], times[1], times[3]} {
			assert.True(t, back[i].Equal(want), "%d: %v, not %v", i, back[i], want)
		}
		var n int
		require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM ev WHERE at > $1`, dialect.Stamp(base)))
		assert.Equal(t, 2, n, "strictly after: one microsecond and one second later")
		require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM ev WHERE at <= $1`, dialect.Stamp(base)))
		assert.Equal(t, 3, n)
		var typed dialect.Time
		cast := "CAST($1 AS timestamptz)"
		if db.DriverName() == "sqlite" {
			cast = "$1"
		}
		require.NoError(t, db.GetContext(ctx, &typed, `SELECT CASE WHEN true THEN `+cast+` END`, dialect.Stamp(base)))
		assert.True(t, typed.Equal(base), "%v", typed)
		assert.Equal(t, "2031-12-31 18:59:59.999999+00:00", dialect.Stamp(base.Add(999*time.Nanosecond)), "UTC, to the microsecond, truncated")
		assert.True(t, dialect.Tick(base.Add(999*time.Nanosecond)).Equal(base))
	})
}

// A lock has one holder at a time, across pools; the next one gets it once
// it is released. On SQLite a one-connection pool can hold it and go on
// working, and a holder that died frees it when its lease runs out.
func TestLock(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		d := dbtest.Dialect(t, db)
		unlock, err := d.Lock(ctx, db, "m", nil)
		require.NoError(t, err)
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err = d.Lock(short, db, "m", nil)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "held by the first")
		other, err := d.Lock(ctx, db, "other", nil)
		require.NoError(t, err, "another name is free")
		other()
		unlock()
		again, err := d.Lock(ctx, db, "m", nil)
		require.NoError(t, err, "released")
		again()
	})
	t.Run("sqlite one connection", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		db := dbtest.SQLite(t)
		db.SetMaxOpenConns(1)
		unlock, err := sqlitedialect.Dialect{}.Lock(ctx, db, "m", nil)
		require.NoError(t, err)
		var n int
		require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM schemashift_locks`), "the pool is free while the lock is held")
		assert.Equal(t, 1, n)
		unlock()
		// A holder that died: its lease has run out.
		db.MustExecContext(ctx, `INSERT INTO schemashift_locks VALUES ('m', 'dead', '2000-01-01 00:00:00.000+00:00')`)
		unlock, err = sqlitedialect.Dialect{}.Lock(ctx, db, "m", nil)
		require.NoError(t, err)
		unlock()
	})
}

// A SQLite lock's lease is judged in real time, never by a caller's
// clock: a taker whose clock is an hour ahead (or behind) of the holder's
// waits for it all the same; a lease run out in real time is taken.
func TestSQLiteLockLeaseIsRealTime(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := dbtest.SQLite(t)
	var ns atomic.Int64
	ns.Store(time.Date(2031, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixNano())
	skewed := func() time.Time { return time.Unix(0, ns.Load()).UTC() }
	held, err := sqlitedialect.Dialect{}.Lock(ctx, db, "m", skewed)
	require.NoError(t, err)
	var until time.Time
	require.NoError(t, db.GetContext(ctx, &until, `SELECT until FROM schemashift_locks WHERE name = 'm'`))
	assert.WithinDuration(t, time.Now().Add(30*time.Second), until, 10*time.Second, "leased in real time")

	tryLock := func() error {
		short, cancel := context.WithTimeout(ctx, 60*time.Millisecond)
		defer cancel()
		unlock, err := sqlitedialect.Dialect{}.Lock(short, db, "m", skewed)
		if err == nil {
			unlock()
		}
		return err
	}
	require.ErrorIs(t, tryLock(), context.DeadlineExceeded, "held")
	ns.Add(int64(time.Hour))
	require.ErrorIs(t, tryLock(), context.DeadlineExceeded, "held against a clock an hour ahead")
	ns.Add(-3 * int64(time.Hour))
	require.ErrorIs(t, tryLock(), context.DeadlineExceeded, "held against a clock behind")
	// The lease ran out in real time (its holder died).
	db.MustExecContext(ctx, `UPDATE schemashift_locks SET until = $1 WHERE name = 'm'`, dialect.Stamp(time.Now().Add(-time.Millisecond)))
	require.NoError(t, tryLock(), "free once its lease ran out in real time")
	held()
}

// A SQLite lock lost while held (another process took it: here its row
// changes holder) is fenced: CheckHeld, in a transaction, refuses with
// ErrLockLost; the next renewal matches no row and ends Hold's context
// with cause ErrLockLost, and Hold returns ErrLockLost. On PostgreSQL
// CheckHeld passes under Hold.
func TestHoldFencesALostLock(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		ctx := t.Context()
		db := dbtest.SQLite(t)
		checkHeld := func(ctx context.Context) error {
			tx, err := db.BeginTxx(ctx, nil)
			require.NoError(t, err)
			defer tx.Rollback() //nolint:errcheck
			return dialect.CheckHeld(ctx, tx)
		}
		err := sqlitedialect.Dialect{}.RenewingEvery(10*time.Millisecond).Hold(ctx, db, "m", func(ctx context.Context, one *sqlx.DB) error {
			require.NoError(t, checkHeld(ctx), "held")
			one.MustExecContext(ctx, `UPDATE schemashift_locks SET holder = 'thief' WHERE name = 'm'`)
			require.ErrorIs(t, checkHeld(context.WithoutCancel(ctx)), dialect.ErrLockLost, "another holder has it")
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the hold's context did not end when its renewal matched no row")
			}
			assert.ErrorIs(t, context.Cause(ctx), dialect.ErrLockLost)
			return nil
		})
		require.ErrorIs(t, err, dialect.ErrLockLost)
		var holder string
		require.NoError(t, db.GetContext(ctx, &holder, `SELECT holder FROM schemashift_locks WHERE name = 'm'`))
		assert.Equal(t, "thief", holder, "release deletes only its own row")
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		db := pgtest.DB(t)
		err := postgres.Dialect{}.Hold(ctx, db, "m", func(ctx context.Context, one *sqlx.DB) error {
			tx, err := one.BeginTxx(ctx, nil)
			require.NoError(t, err)
			defer tx.Rollback() //nolint:errcheck
			return dialect.CheckHeld(ctx, tx)
		})
		require.NoError(t, err)
	})
}

// A SQLite pool opened without what schemashift relies on is refused with
// a clear error; PostgreSQL and sqlite.Open pools pass.
func TestCheckPool(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	require.NoError(t, postgres.Dialect{}.CheckPool(ctx, pgtest.DB(t)))
	require.NoError(t, sqlitedialect.Dialect{}.CheckPool(ctx, dbtest.SQLite(t)))
	one := dbtest.SQLite(t)
	one.SetMaxOpenConns(1)
	require.NoError(t, sqlitedialect.Dialect{}.CheckPool(ctx, one))
	for name, dsn := range map[string]string{
		"plain":             "%s",
		"no busy_timeout":   "file:%s?_txlock=immediate",
		"deferred BEGIN":    "file:%s?_pragma=busy_timeout(1000)",
		"deferred, one WAL": "file:%s?_pragma=busy_timeout(1000)&_pragma=journal_mode(wal)",
	} {
		db, err := sqlx.Open("sqlite", fmt.Sprintf(dsn, filepath.Join(t.TempDir(), "app.db")))
		require.NoError(t, err)
		err = sqlitedialect.Dialect{}.CheckPool(ctx, db)
		require.ErrorIs(t, err, dialect.ErrPoolSetup, name)
		assert.Contains(t, err.Error(), "sqlite.Open", name)
		db.Close()
	}
}

// Another process's writer holding the write lock sways the check neither
// way: a pool that begins deferred is still refused and one that begins
// immediate still passes, the check waiting for the lock like any writer.
// A writer that keeps it past the pool's busy_timeout makes the check
// fail, saying it cannot tell, rather than pass.
func TestCheckPoolUnderConcurrentWriter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for name, tt := range map[string]struct {
		dsn     string
		hold    time.Duration // how long the other writer keeps the lock once the check runs
		want    error
		message string
	}{
		"deferred BEGIN":       {dsn: "file:%s?_pragma=busy_timeout(2000)&_pragma=journal_mode(wal)", hold: 300 * time.Millisecond, want: dialect.ErrPoolSetup, message: "BEGIN does not take the write lock"},
		"immediate BEGIN":      {dsn: "file:%s?_txlock=immediate&_pragma=busy_timeout(2000)&_pragma=journal_mode(wal)", hold: 300 * time.Millisecond},
		"locked past timeout":  {dsn: "file:%s?_pragma=busy_timeout(100)&_pragma=journal_mode(wal)", hold: time.Second, message: "cannot tell whether BEGIN takes the write lock"},
		"immediate, past time": {dsn: "file:%s?_txlock=immediate&_pragma=busy_timeout(100)&_pragma=journal_mode(wal)", hold: time.Second, message: "cannot tell whether BEGIN takes the write lock"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "app.db")
			writer := dbtest.SQLiteAt(t, path)
			writer.MustExecContext(ctx, `CREATE TABLE t (v integer)`)
			db, err := sqlx.Open("sqlite", fmt.Sprintf(tt.dsn, path))
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			require.NoError(t, db.PingContext(ctx))

			tx := writer.MustBeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock is held from here
			tx.MustExecContext(ctx, `INSERT INTO t VALUES (1)`)
			released := make(chan struct{})
			time.AfterFunc(tt.hold, func() { _ = tx.Commit(); close(released) })
			err = sqlitedialect.Dialect{}.CheckPool(ctx, db)
			<-released
			switch {
			case tt.message == "":
				require.NoError(t, err)
			case tt.want != nil:
				require.ErrorIs(t, err, tt.want)
				assert.Contains(t, err.Error(), tt.message)
			default:
				require.Error(t, err)
				assert.NotErrorIs(t, err, dialect.ErrPoolSetup, "nothing was found wrong with the pool")
				assert.Contains(t, err.Error(), tt.message)
			}
			// The probe's connections were dropped, not pooled with a
			// transaction open or busy_timeout zeroed: the pool writes.
			db.MustExecContext(ctx, `INSERT INTO t VALUES (2)`)
		})
	}
}
