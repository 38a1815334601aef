package backfill_test

import (
	"context"
	"errors"
	"fmt"
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

func TestSetModeFillsEveryRow(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 5000)
		var progress []backfill.Progress
		var mu sync.Mutex
		b := mustNew(t, db, emailJob("users_email_lower"), backfill.WithChunkSize(700, 100, 700),
			// No chunk of a loaded machine's is cut for overrunning the bound.
			backfill.WithMaxLockHold(10*time.Second),
			backfill.WithProgress(10*time.Millisecond, func(p backfill.Progress) { mu.Lock(); progress = append(progress, p); mu.Unlock() }))
		final, err := b.Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, final.Status)
		assert.Equal(t, int64(5000), final.RowsDone)
		assert.Equal(t, int64(5000), final.RowsChanged)
		assert.Equal(t, int64(8), final.ChunksDone, "5000 rows in chunks of 700")
		assert.Zero(t, final.ChunksRedone)
		assert.Equal(t, 0, divergent(t, db))
		mu.Lock()
		require.NotEmpty(t, progress)
		assert.Equal(t, backfill.Done, progress[len(progress)-1].Status, "the last report is the final state")
		mu.Unlock()

		// A second run finds the job done; a rerun of the statement changes nothing.
		again, err := b.Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, final.RowsDone, again.RowsDone)

		st, err := backfill.State(t.Context(), db, "users_email_lower")
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, st.Status)
		assert.NotNil(t, st.FinishedAt)
		assert.Equal(t, int64(5000), st.TotalEstimate)
	})
}

// A table whose rows fill the last chunk exactly ends its walk on an empty
// claim: the job is done then, not one poll interval later (here an hour,
// which the deadline would catch).
func TestFullLastChunkFinishesAtOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 1000)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		for _, workers := range []int{1, 3} {
			bf, err := backfill.New(ctx, db, emailJob(fmt.Sprintf("full_last_chunk_%d", workers)),
				backfill.WithChunkSize(100, 100, 100), backfill.WithWorkers(workers), backfill.WithPollInterval(time.Hour))
			require.NoError(t, err)
			p, err := bf.Run(ctx)
			require.NoError(t, err, "%d workers", workers)
			assert.Equal(t, backfill.Done, p.Status)
			assert.Equal(t, int64(10), p.ChunksDone)
		}
	})
}

func TestKeyShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		create string
		fill   string // an INSERT … SELECT … FROM s(i), i from 1 to 2345
		sqlite string // the fill on SQLite, where it differs
		key    []string
	}{
		{"composite int", `CREATE TABLE t (tenant int, id bigint, v text, w text, PRIMARY KEY (tenant, id))`,
			`INSERT INTO t (tenant, id, v) SELECT i % 7, i * 11, 'V' || i FROM s`, "", nil},
		{"uuid", `CREATE TABLE t (id uuid PRIMARY KEY, v text, w text)`,
			`INSERT INTO t (id, v) SELECT CAST(md5(CAST(i AS text)) AS uuid), 'V' || i FROM s`,
			// SQLite has no uuid type or md5: a uuid's text in a column declared uuid.
			`INSERT INTO t (id, v) SELECT printf('%08x-%04x-4%03x-8%03x-%012x', (i * 2654435761) % 4294967296, i % 65536, i % 4096, (i * 7) % 4096, i * 1000003), 'V' || i FROM s`, nil},
		{"text with odd values", `CREATE TABLE t (id text PRIMARY KEY, v text, w text)`,
			`INSERT INTO t (id, v) SELECT CASE WHEN i % 5 = 0 THEN 'a''b"c,' || i WHEN i % 5 = 1 THEN 'ü ' || i ELSE 'k' || i END, 'V' || i FROM s`, "", nil},
		{"explicit key, composite text and date", `CREATE TABLE t (d date, name text, v text, w text, UNIQUE (d, name))`,
			`INSERT INTO t (d, name, v) SELECT date '2020-01-01' + (i % 30), 'n' || i, 'V' || i FROM s`,
			`INSERT INTO t (d, name, v) SELECT date('2020-01-01', '+' || (i % 30) || ' days'), 'n' || i, 'V' || i FROM s`, []string{"d", "name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				t.Parallel()
				db.MustExecContext(t.Context(), tt.create)
				if isSQLite(db) && tt.sqlite != "" {
					fill(t, db, 2345, tt.sqlite)
				} else {
					fill(t, db, 2345, tt.fill)
				}
				b := mustNew(t, db, backfill.Job{Name: "w", Table: "t", Key: tt.key,
					Set: []backfill.Assign{{Column: "w", Expr: "lower(v)"}}}, backfill.WithChunkSize(100, 100, 100))
				final, err := b.Run(t.Context())
				require.NoError(t, err)
				assert.Equal(t, int64(2345), final.RowsDone)
				assert.Equal(t, int64(24), final.ChunksDone)
				var left int
				require.NoError(t, db.GetContext(t.Context(), &left, `SELECT count(*) FROM t WHERE w IS DISTINCT FROM lower(v)`))
				assert.Zero(t, left)
			})
		})
	}
}

func TestIntoModeMovesRows(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ordersTables(t, db, 3000, 1, 7)
		// Some rows are already there, one of them stale: neither is
		// rewritten nor duplicated (a row that exists was written by someone).
		db.MustExecContext(t.Context(), `INSERT INTO order_totals VALUES (1, 0.07, 'USD'), (2, 99, 'USD')`)
		job := backfill.Job{Name: "orders_move", Table: "orders", Into: &backfill.Into{
			Table: "order_totals", Key: []string{"order_id"},
			Columns: []backfill.Assign{{Column: "order_id", Expr: "id"}, {Column: "amount", Expr: "amount_cents / 100.0"}, {Column: "currency", Expr: "'USD'"}},
		}, Derived: true}
		b := mustNew(t, db, job, backfill.WithChunkSize(500, 100, 500))
		final, err := b.Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, int64(3000), final.RowsDone)
		assert.Equal(t, int64(2998), final.RowsChanged, "the rows already there are not rewritten")
		var wrong []int64
		require.NoError(t, db.SelectContext(t.Context(), &wrong, `SELECT o.id FROM orders o LEFT JOIN order_totals t ON t.order_id = o.id
			WHERE t.amount IS DISTINCT FROM o.amount_cents / 100.0`))
		assert.Equal(t, []int64{2}, wrong)

		rep, err := b.Verify(t.Context(), backfill.VerifyOptions{ChunkRows: 700})
		require.NoError(t, err)
		assert.False(t, rep.Passed())
		assert.Equal(t, int64(3000), rep.Compared)
		assert.Equal(t, int64(1), rep.Drifted, "the job is Derived: the stale row was changed behind its back")
		rep, err = b.Verify(t.Context(), backfill.VerifyOptions{ChunkRows: 700, Repair: true})
		require.NoError(t, err)
		assert.True(t, rep.Passed(), rep.Summary())
		assert.Equal(t, int64(1), rep.Repaired)
	})
}

func TestGoModeLocksAndWrites(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 1000)
		job := backfill.Job{Name: "go", Table: "users", Columns: []string{"email"}, Version: "v1", Fills: []string{"email_lower"},
			Func: func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
				var n int64
				for _, r := range rows {
					res, err := tx.ExecContext(ctx, `UPDATE users SET email_lower = lower($2) WHERE id = $1`, r["id"], r["email"])
					if err != nil {
						return n, err
					}
					c, _ := res.RowsAffected()
					n += c
				}
				return n, nil
			}}
		b := mustNew(t, db, job, backfill.WithChunkSize(300, 100, 300))
		final, err := b.Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, int64(1000), final.RowsChanged)
		assert.Equal(t, 0, divergent(t, db))
		_, err = b.Verify(t.Context(), backfill.VerifyOptions{})
		assert.ErrorIs(t, err, backfill.ErrNotVerifiable)
	})
}

func TestChangedDefinitionIsRefused(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 10)
		mustNew(t, db, emailJob("j"))
		changed := emailJob("j")
		changed.Set[0].Expr = "upper(email)"
		_, err := backfill.New(t.Context(), db, changed)
		require.ErrorIs(t, err, backfill.ErrDefinitionChanged)
		// Settings that are not part of the definition may change.
		_, err = backfill.New(t.Context(), db, emailJob("j"), backfill.WithChunkSize(5, 5, 5), backfill.WithWorkers(3))
		require.NoError(t, err)
	})
}

func TestBadJobsAreRefused(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 10)
		db.MustExecContext(t.Context(), `CREATE TABLE nokey (a int, b int)`)
		cases := map[string]backfill.Job{
			"no name":             {Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email)"}}},
			"no mode":             {Name: "x", Table: "users"},
			"two modes":           {Name: "x", Table: "users", Set: []backfill.Assign{{Column: "a", Expr: "1"}}, Func: func(context.Context, *sqlx.Tx, []map[string]any) (int64, error) { return 0, nil }, Version: "1"},
			"statement in expr":   {Name: "x", Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email); DROP TABLE users"}}},
			"comment in expr":     {Name: "x", Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email) -- hi"}}},
			"hostile column":      {Name: "x", Table: "users", Set: []backfill.Assign{{Column: `email_lower" = 'x'; --`, Expr: "lower(email)"}}},
			"long column":         {Name: "x", Table: "users", Set: []backfill.Assign{{Column: string(make([]byte, 64)), Expr: "1"}}},
			"missing table":       {Name: "x", Table: "nope", Set: []backfill.Assign{{Column: "a", Expr: "1"}}},
			"hostile table":       {Name: "x", Table: `users"; DROP TABLE users; --`, Set: []backfill.Assign{{Column: "a", Expr: "1"}}},
			"no primary key":      {Name: "x", Table: "nokey", Set: []backfill.Assign{{Column: "b", Expr: "a"}}},
			"unknown key column":  {Name: "x", Table: "users", Key: []string{"nope"}, Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email)"}}},
			"bad expression":      {Name: "x", Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(no_such_column)"}}},
			"go mode, no version": {Name: "x", Table: "users", Func: func(context.Context, *sqlx.Tx, []map[string]any) (int64, error) { return 0, nil }},
		}
		for name, job := range cases {
			_, err := backfill.New(t.Context(), db, job)
			assert.Error(t, err, name)
		}
		var n int
		require.NoError(t, db.GetContext(t.Context(), &n, `SELECT count(*) FROM users`))
		assert.Equal(t, 10, n, "nothing hostile ran")
		for name, opts := range map[string][]backfill.Option{
			"min over max":       {backfill.WithChunkSize(10, 100, 50)},
			"zero workers":       {backfill.WithWorkers(0)},
			"timeout over lease": {backfill.WithLease(time.Second), backfill.WithStatementTimeout(2 * time.Second)},
			"negative rate":      {backfill.WithRate(-1)},
			"no clock":           {backfill.WithClock(nil)},
		} {
			_, err := backfill.New(t.Context(), db, emailJob("opts"), opts...)
			assert.Error(t, err, name)
		}
	})
}

// Two and four workers sharing a job finish it exactly once.
func TestWorkersShareAJobExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, workers := range []int{2, 4} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				t.Parallel()
				usersTable(t, db, 6000)
				// Half the workers in one Backfill, half in another (as two
				// processes would be). The first claims wait for one another:
				// a worker held there cannot claim again, so the first
				// `workers` claims are one per worker, however unfairly the
				// database hands out its lock (SQLite's is not fair).
				var claims atomic.Int64
				allClaimed := make(chan struct{})
				first := backfill.WithAfterClaim(func(int64) {
					switch n := claims.Add(1); {
					case n == int64(workers):
						close(allClaimed)
					case n < int64(workers):
						select {
						case <-allClaimed:
						case <-time.After(10 * time.Second): // the count below says who never came
						}
					}
				})
				var wg sync.WaitGroup
				errs := make([]error, 2)
				for i := range 2 {
					b := mustNew(t, db, emailJob("shared"), backfill.WithWorkers(workers/2), backfill.WithChunkSize(250, 250, 250), first)
					wg.Go(func() { _, errs[i] = b.Run(t.Context()) })
				}
				wg.Wait()
				require.NoError(t, errors.Join(errs...))
				st, err := backfill.State(t.Context(), db, "shared")
				require.NoError(t, err)
				assert.Equal(t, int64(6000), st.RowsDone, "every row walked once")
				assert.Equal(t, int64(6000), st.RowsChanged, "every row changed once")
				assert.Equal(t, int64(24), st.ChunksDone)
				assert.Zero(t, st.ChunksRedone)
				var workersSeen int
				require.NoError(t, db.GetContext(t.Context(), &workersSeen, `SELECT count(DISTINCT worker) FROM schemashift_backfill_chunks`))
				assert.Equal(t, workers, workersSeen, "every worker took chunks")
				assert.Equal(t, 0, divergent(t, db))
			})
		})
	}
}

// A Go-mode move into another table is verified through its Check, and
// its drifted rows repaired from the old shape through the Check's SQL.
func TestGoModeMoveVerifiedThroughCheck(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ordersTables(t, db, 2000, 1, 3)
		job := backfill.Job{Name: "orders_go", Table: "orders", Columns: []string{"amount_cents"}, Version: "v1", Derived: true,
			Func: func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
				for _, r := range rows {
					if _, err := tx.ExecContext(ctx, `INSERT INTO order_totals VALUES ($1, $2 / 100.0, 'EUR')
						ON CONFLICT (order_id) DO NOTHING`, r["id"], r["amount_cents"]); err != nil {
						return 0, err
					}
				}
				return int64(len(rows)), nil
			},
			Check: &backfill.Into{Table: "order_totals", Key: []string{"order_id"}, Columns: []backfill.Assign{
				{Column: "order_id", Expr: "id"}, {Column: "amount", Expr: "amount_cents / 100.0"}, {Column: "currency", Expr: "'EUR'"}}},
		}
		b := mustNew(t, db, job, backfill.WithChunkSize(300, 100, 300))
		_, err := b.Run(t.Context())
		require.NoError(t, err)
		rep, err := b.Verify(t.Context(), backfill.VerifyOptions{})
		require.NoError(t, err)
		assert.True(t, rep.Passed())
		db.MustExecContext(t.Context(), `UPDATE order_totals SET amount = 0 WHERE order_id IN (5, 1500)`)
		rep, err = b.Verify(t.Context(), backfill.VerifyOptions{Repair: true})
		require.NoError(t, err)
		assert.Equal(t, int64(2), rep.Divergent)
		assert.Equal(t, int64(2), rep.Repaired)
		assert.True(t, rep.Passed())
	})
}
