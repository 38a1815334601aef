package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
)

// Locked implements [dialect.Sessions].
func (d Dialect) Locked(ctx context.Context, db *sqlx.DB, name string, now func() time.Time, f func(one *sqlx.DB) error) error {
	return d.Hold(ctx, db, name, func(_ context.Context, one *sqlx.DB) error { return f(one) })
}

// Hold implements [dialect.Sessions]. The lock is a session advisory
// lock, held by a connection of db's that Hold takes for the whole call,
// and one is a pool of that connection alone: the lock and everything f
// does share it, statements that cannot run in a transaction block
// (CREATE INDEX CONCURRENTLY) included, so that f never waits for a
// second connection of a pool that has none to give (a pool of one
// connection works; n concurrent callers need no more than n connections
// between them, and each holds one). f must not hold one of one's
// connections or transactions while it asks for another: one has no
// second to give. f's context is ctx: the lock is lost only with its
// connection, which fails f's statements ([dialect.ErrPinLost]).
func (Dialect) Hold(ctx context.Context, db *sqlx.DB, name string, f func(ctx context.Context, one *sqlx.DB) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var lockErr, ferr error
	ran := false
	rawErr := conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("lock %s: the driver's connection is a %T, not a driver.Conn", name, dc)
		}
		pin := &pinnedConnector{conn: c, driver: db.Driver()}
		inner := sql.OpenDB(pin)
		inner.SetMaxOpenConns(1)
		defer inner.Close() // closes no connection: pinnedConn.Close is a no-op
		one := sqlx.NewDb(inner, db.DriverName())
		if err := advisoryLock(ctx, one, name); err != nil {
			// Cut off (by ctx, say) after the server granted it, the lock
			// would stay with a pooled connection: dropped, the
			// connection takes it along.
			lockErr = err
			return driver.ErrBadConn
		}
		ran = true
		ferr = f(ctx, one)
		if _, err := one.ExecContext(context.WithoutCancel(ctx), unlockSQL, name); err != nil {
			return driver.ErrBadConn // likewise; f's outcome stands
		}
		return pin.fate()
	})
	switch {
	case lockErr != nil:
		return lockErr
	case !ran:
		return rawErr
	}
	return ferr
}

// advisoryLock takes the session advisory lock named name on q, one
// connection, waiting for it until ctx ends. It waits between short tries,
// not in one long pg_advisory_lock: a statement waiting holds a snapshot,
// and the holder's CREATE INDEX CONCURRENTLY waits for every older
// snapshot to go, the waiter's too, which would be a deadlock.
func advisoryLock(ctx context.Context, q sqlx.QueryerContext, name string) error {
	wait := time.Millisecond
	for {
		var got bool
		if err := sqlx.GetContext(ctx, q, &got, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, name); err != nil {
			return err
		}
		if got {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxLockWait)
	}
}

// maxLockWait bounds the wait between two tries of a held lock: how long
// a lock may stay free before a waiter sees it.
const maxLockWait = 50 * time.Millisecond

// pinnedConnector gives a pool its one connection, once: a pool that
// dropped it (broken) gets no other.
type pinnedConnector struct {
	conn   driver.Conn
	driver driver.Driver
	mu     sync.Mutex
	given  bool
	lost   bool
}

func (p *pinnedConnector) Connect(context.Context) (driver.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.given {
		p.lost = true
		return nil, dialect.ErrPinLost
	}
	p.given = true
	return pinnedConn{p.conn}, nil
}

func (p *pinnedConnector) Driver() driver.Driver { return p.driver }

// fate is driver.ErrBadConn when the pool lost the connection, so that
// the pool it came from drops it too.
func (p *pinnedConnector) fate() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lost {
		return driver.ErrBadConn
	}
	return nil
}

// pinnedConn is a connection lent by another pool: it forwards what the
// driver's connection does, and its Close leaves it open for its pool.
type pinnedConn struct{ c driver.Conn }

var (
	_ driver.ConnBeginTx        = pinnedConn{}
	_ driver.ConnPrepareContext = pinnedConn{}
	_ driver.ExecerContext      = pinnedConn{}
	_ driver.QueryerContext     = pinnedConn{}
	_ driver.NamedValueChecker  = pinnedConn{}
	_ driver.SessionResetter    = pinnedConn{}
	_ driver.Validator          = pinnedConn{}
	_ driver.Pinger             = pinnedConn{}
)

func (p pinnedConn) Prepare(query string) (driver.Stmt, error) { return p.c.Prepare(query) }

// Unwrap is the driver's connection, for telling its database by its type.
func (p pinnedConn) Unwrap() driver.Conn { return p.c }

// Close implements driver.Conn: the connection is its pool's to close.
func (p pinnedConn) Close() error { return nil }

// Begin implements driver.Conn.
//
// Deprecated: database/sql calls BeginTx.
func (p pinnedConn) Begin() (driver.Tx, error) { return p.c.Begin() } //nolint:staticcheck // forwarded as is

func (p pinnedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := p.c.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	if opts != (driver.TxOptions{}) {
		return nil, errors.New("the driver takes no transaction options")
	}
	return p.c.Begin() //nolint:staticcheck // the driver has no BeginTx
}

func (p pinnedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if c, ok := p.c.(driver.ConnPrepareContext); ok {
		return c.PrepareContext(ctx, query)
	}
	return p.c.Prepare(query)
}

func (p pinnedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := p.c.(driver.ExecerContext); ok {
		return e.ExecContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (p pinnedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := p.c.(driver.QueryerContext); ok {
		return q.QueryContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (p pinnedConn) CheckNamedValue(v *driver.NamedValue) error {
	if c, ok := p.c.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

// ResetSession implements driver.SessionResetter. It does not reset the
// session between two uses in one [Dialect.Locked] call: the session is
// the call's throughout, and a reset the pool's owner configured (DISCARD
// ALL, say) would release the lock. Its own pool resets it when it gets
// it back.
func (p pinnedConn) ResetSession(context.Context) error {
	if !p.IsValid() {
		return driver.ErrBadConn
	}
	return nil
}

func (p pinnedConn) IsValid() bool {
	if v, ok := p.c.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (p pinnedConn) Ping(ctx context.Context) error {
	if pg, ok := p.c.(driver.Pinger); ok {
		return pg.Ping(ctx)
	}
	return nil
}
