package sqlite

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
)

// lockLease is how long a SQLite lock stays held without its holder
// renewing it: a holder that died frees it after this long, in real time.
const lockLease = 30 * time.Second

// Lock implements [dialect.Sessions]. SQLite has no advisory lock: it is
// a leased row in schemashift_locks, renewed while held, so that it takes
// no connection for long (a one-connection pool must still work).
//
// A lease's times are real time (time.Now), never a caller's injected
// clock: the lease is about processes (a holder that died frees the lock
// after lockLease), not about a migration's timeline, and a coordinator
// whose injected clock runs ahead must not see a held lease as run out.
// Renewals come every third of the lease; a renewal that fails or matches
// no row ends the hold (see Hold); Lock's caller has no context to be
// told by, and should use Hold.
func (d Dialect) Lock(ctx context.Context, db *sqlx.DB, name string, _ func() time.Time) (unlock func(), err error) {
	h, err := d.lockRow(ctx, db, name)
	if err != nil {
		return nil, err
	}
	return func() { _ = h.release() }, nil // Lock's caller has no use for a loss reported after the fact
}

// Hold implements [dialect.Sessions]: the lock is the leased row of Lock,
// judged in real time, which holds no connection, and one is db. f's
// context ends, with cause [dialect.ErrLockLost], when a renewal of the
// lease fails or matches no row, and Hold then returns ErrLockLost
// (wrapped) with f's error; f fences each write it must make only under
// the lock with [dialect.CheckHeld] on its context, inside the write's
// transaction.
func (d Dialect) Hold(ctx context.Context, db *sqlx.DB, name string, f func(ctx context.Context, one *sqlx.DB) error) error {
	h, err := d.lockRow(ctx, db, name)
	if err != nil {
		return err
	}
	return func() (err error) {
		defer func() {
			if lost := h.release(); lost != nil {
				err = errors.Join(err, lost)
			}
		}()
		return f(h.ctx, db)
	}()
}

// Locked implements [dialect.Sessions]: f cannot be stopped when the lock
// is lost under it, but Locked then returns [dialect.ErrLockLost]
// (wrapped) with f's error.
func (d Dialect) Locked(ctx context.Context, db *sqlx.DB, name string, _ func() time.Time, f func(one *sqlx.DB) error) error {
	return d.Hold(ctx, db, name, func(_ context.Context, one *sqlx.DB) error { return f(one) })
}

// heldRow is a lock held: its row's name and holder, and the
// context its holder works under, ended (cause [dialect.ErrLockLost]) when a
// renewal fails or matches no row.
type heldRow struct {
	db           *sqlx.DB
	name, holder string
	ctx          context.Context
	lose         context.CancelCauseFunc
	stop         context.CancelFunc
	done         chan struct{}
}

// release stops the renewals and deletes the row if it is still ours; it
// returns [dialect.ErrLockLost] (wrapped) if the lock was lost while held.
func (h *heldRow) release() error {
	h.stop()
	<-h.done
	_, _ = h.db.ExecContext(context.WithoutCancel(h.ctx), `DELETE FROM schemashift_locks WHERE name = $1 AND holder = $2`, h.name, h.holder)
	if cause := context.Cause(h.ctx); errors.Is(cause, dialect.ErrLockLost) {
		return cause
	}
	h.lose(nil)
	return nil
}

func (d Dialect) lockRow(ctx context.Context, db *sqlx.DB, name string) (*heldRow, error) {
	var id [12]byte
	_, _ = rand.Read(id[:])
	holder := hex.EncodeToString(id[:])
	created := false
	for {
		at := time.Now()
		res, err := db.ExecContext(ctx, `INSERT INTO schemashift_locks (name, holder, until) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
			WHERE schemashift_locks.until < $4`, name, holder, dialect.Stamp(at.Add(lockLease)), dialect.Stamp(at))
		if !created && UndefinedTable(err) {
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
	h.ctx = dialect.WithFence(h.ctx, h)
	renewCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.stop = stop
	go func() {
		defer close(h.done)
		t := time.NewTicker(cmp.Or(d.renewEvery, lockLease/3))
		defer t.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-t.C:
				res, err := db.ExecContext(renewCtx, `UPDATE schemashift_locks SET until = $3
					WHERE name = $1 AND holder = $2`, name, holder, dialect.Stamp(time.Now().Add(lockLease)))
				if renewCtx.Err() != nil {
					return // released meanwhile
				}
				var n int64
				if err == nil {
					n, err = res.RowsAffected()
				}
				switch {
				case err != nil:
					h.lose(fmt.Errorf("lock %s: renew the lease: %w: %w", name, dialect.ErrLockLost, err))
					return
				case n != 1:
					h.lose(fmt.Errorf("lock %s: renew the lease: %w: another holder has it", name, dialect.ErrLockLost))
					return
				}
			}
		}
	}()
	return h, nil
}

// Check implements [dialect.Fence]: given q, a transaction that holds
// SQLite's write lock (as every transaction of a pool set up as CheckPool
// requires does, from BEGIN), it reads the lock's row and returns
// [dialect.ErrLockLost] (wrapped) unless the holder is still this one and
// its lease has not run out in real time; while the transaction lasts no
// other process can take the lock.
func (h *heldRow) Check(ctx context.Context, q sqlx.QueryerContext) error {
	if cause := context.Cause(h.ctx); errors.Is(cause, dialect.ErrLockLost) {
		return cause
	}
	var row struct {
		Holder string `db:"holder"`
		Live   bool   `db:"live"`
	}
	// Live as the claim judges it: a lease runs out when until < now.
	err := sqlx.GetContext(ctx, q, &row, `SELECT holder, CASE WHEN until < $2 THEN 0 ELSE 1 END AS live
		FROM schemashift_locks WHERE name = $1`, h.name, dialect.Stamp(time.Now()))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("lock %s: %w: its row is gone", h.name, dialect.ErrLockLost)
	case err != nil:
		return fmt.Errorf("lock %s: check it is held: %w", h.name, err)
	case row.Holder != h.holder:
		return fmt.Errorf("lock %s: %w: another holder has it", h.name, dialect.ErrLockLost)
	case !row.Live:
		return fmt.Errorf("lock %s: %w: its lease ran out", h.name, dialect.ErrLockLost)
	}
	return nil
}

// CheckPool implements [dialect.Sessions]: it checks that a pool waits for the write lock
// (busy_timeout) and takes it at BEGIN (_txlock=immediate), as sqlite.Open
// sets up. //
// The second is probed with two of the pool's connections, when it has two
// to give: one takes the write lock, waiting for it like any writer, then
// the other begins a transaction the pool's way without waiting. BEGIN
// IMMEDIATE fails then; a deferred BEGIN takes no lock and succeeds. While
// the first holds the lock no other writer can write, so a writer
// elsewhere cannot sway the answer; one that keeps the lock past
// busy_timeout makes the check fail, saying so, rather than pass
// untested.
func (Dialect) CheckPool(ctx context.Context, db *sqlx.DB) error {
	var busy int
	if err := db.GetContext(ctx, &busy, `PRAGMA busy_timeout`); err != nil {
		return fmt.Errorf("check SQLite pool: %w", err)
	}
	if busy <= 0 {
		return fmt.Errorf("check SQLite pool: busy_timeout is 0: %w", dialect.ErrPoolSetup)
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
	defer dialect.Discard(holder)
	if _, err := holder.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		if Busy(err) {
			return fmt.Errorf("check SQLite pool: cannot tell whether BEGIN takes the write lock: "+
				"another writer held it longer than busy_timeout (%d ms): %w", busy, err)
		}
		return fmt.Errorf("check SQLite pool: %w", err)
	}
	probe, err := db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("check SQLite pool: %w", err)
	}
	defer dialect.Discard(probe)
	if _, err := probe.ExecContext(ctx, `PRAGMA busy_timeout = 0`); err != nil {
		return fmt.Errorf("check SQLite pool: %w", err)
	}
	tx, err := probe.BeginTxx(ctx, nil)
	if Busy(err) {
		return nil // BEGIN wanted the write lock the holder has
	}
	if err != nil {
		return fmt.Errorf("check SQLite pool: %w", err)
	}
	_ = tx.Rollback() // a probe that wrote nothing
	return fmt.Errorf("check SQLite pool: BEGIN does not take the write lock: %w", dialect.ErrPoolSetup)
}
