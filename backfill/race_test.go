package backfill_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// runInBackground runs b in the background; the channel gets Run's error.
func runInBackground(t *testing.T, b *backfill.Backfill) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := b.Run(context.WithoutCancel(t.Context()))
		done <- err
	}()
	return done
}

// waitForLockWait returns once some backend of db (PostgreSQL) waits on
// a lock.
func waitForLockWait(t *testing.T, db *sqlx.DB) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		_ = db.GetContext(t.Context(), &n, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
		return n > 0
	}, 10*time.Second, 5*time.Millisecond)
}

// writeDuringChunk runs the backfill that newBackfill makes, given a hook
// for backfill.WithAfterClaim, with write run in a transaction begun once
// chunk 1 is claimed (its span fixed, no lock held) and committed once
// the chunk waits on it: on PostgreSQL once the chunk's statement waits on
// the transaction's row locks; on SQLite as soon as the chunk may go on,
// since the transaction holds the database's write lock from BEGIN (SQLite
// shows no waiters, and needs no wait: whenever the chunk asks for the
// lock, its transaction begins after the write commits). It returns when
// the backfill does.
func writeDuringChunk(t *testing.T, db *sqlx.DB, newBackfill func(afterClaim func(seq int64)) *backfill.Backfill, write func(tx *sqlx.Tx)) *backfill.Backfill {
	t.Helper()
	claimed, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	b := newBackfill(func(seq int64) {
		if seq == 1 {
			once.Do(func() { close(claimed); <-resume })
		}
	})
	done := runInBackground(t, b)
	<-claimed
	tx := db.MustBeginTx(t.Context(), nil)
	write(tx)
	close(resume)
	if !isSQLite(db) {
		waitForLockWait(t, db)
	}
	require.NoError(t, tx.Commit())
	require.NoError(t, <-done)
	return b
}

// A dual write (new path) lands while the chunk waits on the row: the
// chunk re-reads the row and keeps the written value.
func TestSetModeKeepsConcurrentDualWrite(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 3000)
		b := writeDuringChunk(t, db, func(afterClaim func(int64)) *backfill.Backfill {
			return mustNew(t, db, emailJob("dual"), backfill.WithChunkSize(1000, 1000, 1000), backfill.WithLockTimeout(10*time.Second),
				backfill.WithAfterClaim(afterClaim))
		}, func(tx *sqlx.Tx) {
			tx.MustExecContext(t.Context(), `UPDATE users SET email = 'Ada@New.Example', email_lower = 'ada@new.example' WHERE id = 300`)
		})

		var got string
		require.NoError(t, db.GetContext(t.Context(), &got, `SELECT email_lower FROM users WHERE id = 300`))
		assert.Equal(t, "ada@new.example", got)
		st, err := b.State(t.Context())
		require.NoError(t, err)
		assert.Equal(t, int64(2999), st.RowsChanged, "the dual-written row was already right")
		assert.Equal(t, 0, divergent(t, db))
	})
}

// An old-path write lands while the chunk waits: the new column reflects
// the value written, not the one the chunk first saw.
func TestSetModeReflectsConcurrentOldPathWrite(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 3000)
		writeDuringChunk(t, db, func(afterClaim func(int64)) *backfill.Backfill {
			return mustNew(t, db, emailJob("old"), backfill.WithChunkSize(1000, 1000, 1000), backfill.WithLockTimeout(10*time.Second),
				backfill.WithAfterClaim(afterClaim))
		}, func(tx *sqlx.Tx) {
			tx.MustExecContext(t.Context(), `UPDATE users SET email = 'Grace@Later.Example' WHERE id = 303`)
		})
		var got string
		require.NoError(t, db.GetContext(t.Context(), &got, `SELECT email_lower FROM users WHERE id = 303`))
		assert.Equal(t, "grace@later.example", got)
		assert.Equal(t, 0, divergent(t, db))
	})
}

// The cross-table move locks its source rows: a dual write committed while
// the chunk waits is not overwritten by a copy of the row as it was before.
// (Copying from the statement's snapshot without the lock loses exactly
// this write.)
func TestIntoModeKeepsConcurrentDualWrite(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ordersTables(t, db, 2000, 1, 1)
		job := backfill.Job{Name: "move", Table: "orders", Into: &backfill.Into{Table: "order_totals", Key: []string{"order_id"},
			Columns: []backfill.Assign{{Column: "order_id", Expr: "id"}, {Column: "amount", Expr: "amount_cents / 100.0"}, {Column: "currency", Expr: "'USD'"}}}}
		b := writeDuringChunk(t, db, func(afterClaim func(int64)) *backfill.Backfill {
			return mustNew(t, db, job, backfill.WithChunkSize(1000, 1000, 1000), backfill.WithLockTimeout(10*time.Second),
				backfill.WithAfterClaim(afterClaim))
		}, func(tx *sqlx.Tx) {
			tx.MustExecContext(t.Context(), `INSERT INTO order_totals VALUES (500, 12.34, 'USD')`)
			tx.MustExecContext(t.Context(), `UPDATE orders SET amount_cents = 1234 WHERE id = 500`)
		})

		var amount string
		require.NoError(t, db.GetContext(t.Context(), &amount, `SELECT CAST(amount AS text) FROM order_totals WHERE order_id = 500`))
		assert.Equal(t, "12.34", amount)
		rep, err := b.Verify(t.Context(), backfill.VerifyOptions{})
		require.NoError(t, err)
		assert.True(t, rep.Passed(), "%+v", rep.Diverged)
	})
}

// Go mode reads its rows FOR UPDATE (on SQLite, under the write lock): a
// dual write to a row of the chunk waits for the chunk's commit, then wins.
func TestGoModeBlocksConcurrentWritesUntilCommit(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 500)
		read := make(chan struct{})
		release := make(chan struct{})
		var once atomic.Bool
		job := backfill.Job{Name: "go", Table: "users", Columns: []string{"email"}, Version: "1", Fills: []string{"email_lower"},
			Func: func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
				if once.CompareAndSwap(false, true) {
					close(read)
					<-release
				}
				for _, r := range rows {
					if _, err := tx.ExecContext(ctx, `UPDATE users SET email_lower = lower($2) WHERE id = $1`, r["id"], r["email"]); err != nil {
						return 0, err
					}
				}
				return int64(len(rows)), nil
			}}
		b := mustNew(t, db, job, backfill.WithChunkSize(500, 500, 500))
		done := runInBackground(t, b)
		<-read

		wrote := make(chan error, 1)
		go func() {
			_, err := db.ExecContext(context.WithoutCancel(t.Context()), `UPDATE users SET email = 'Ada@New.Example', email_lower = 'ada@new.example' WHERE id = 30`)
			wrote <- err
		}()
		if isSQLite(db) {
			// SQLite shows no waiters: a write that did not wait shows by
			// ending first. Under load this may pass a write that does not
			// wait (it would fail on an unloaded run), never fail one that
			// does.
			select {
			case err := <-wrote:
				t.Fatalf("the dual write did not wait for the chunk's write lock (err %v): the chunk would overwrite it", err)
			case <-time.After(300 * time.Millisecond):
			}
		} else {
			waitForLockWait(t, db) // the write waits on the chunk's row lock
			select {
			case err := <-wrote:
				t.Fatalf("the dual write ended while the chunk held its row (err %v)", err)
			default:
			}
		}
		close(release)
		require.NoError(t, <-done)
		require.NoError(t, <-wrote)
		var got string
		require.NoError(t, db.GetContext(t.Context(), &got, `SELECT email_lower FROM users WHERE id = 30`))
		assert.Equal(t, "ada@new.example", got)
		assert.Equal(t, 0, divergent(t, db))
	})
}

// Dual writes (both columns in one statement, as the dualwrite stage
// writes) land on random rows all through a backfill, in SQL and in Go
// mode: no chunk writes a value computed from a row as it was before a
// write, so no row ends divergent.
func TestDualWriteTrafficDuringBackfill(t *testing.T) {
	t.Parallel()
	goMode := func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
		for _, r := range rows {
			if _, err := tx.ExecContext(ctx, `UPDATE users SET email_lower = lower($2) WHERE id = $1`, r["id"], r["email"]); err != nil {
				return 0, err
			}
		}
		return int64(len(rows)), nil
	}
	for name, job := range map[string]backfill.Job{
		"set": emailJob("traffic"),
		"go":  {Name: "traffic", Table: "users", Columns: []string{"email"}, Version: "1", Fills: []string{"email_lower"}, Func: goMode},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				t.Parallel()
				const rows = 4000
				usersTable(t, db, rows)
				b := mustNew(t, db, job, backfill.WithChunkSize(200, 200, 200), backfill.WithRate(20000))
				stop := dualWrites(t, db, rows, 0)
				_, err := b.Run(t.Context())
				writes := stop()
				require.NoError(t, err)
				assert.Positive(t, writes)
				assert.Equal(t, 0, divergent(t, db), "after %d dual writes", writes)
			})
		})
	}
}
