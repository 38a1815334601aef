package ddl_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func sqlOf(t *testing.T, o ddl.Op, major int, down bool) []string {
	t.Helper()
	var st []ddl.Statement
	var err error
	if down {
		st, err = o.Down(major)
	} else {
		st, err = o.Up(major)
	}
	require.NoError(t, err, o)
	out := make([]string, len(st))
	for i, s := range st {
		out[i] = s.SQL
		if s.NoTx {
			out[i] += " -- outside a transaction"
		}
	}
	return out
}

// Golden renderings.
func TestRenderedSQL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		op       ddl.Op
		major    int
		up, down []string
	}{
		{ddl.AddColumn{Table: "users", Column: "given_name", Type: "text"}, 15,
			[]string{`ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "given_name" text`},
			[]string{`ALTER TABLE "users" DROP COLUMN IF EXISTS "given_name"`}},
		{ddl.AddColumn{Table: "users", Column: "n", Type: "int", Default: "0"}, 15,
			[]string{`ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "n" int DEFAULT 0`}, nil},
		{ddl.AddColumn{Table: "users", Column: "token", Type: "uuid", Default: "gen_random_uuid()", Volatile: true}, 15,
			[]string{`ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "token" uuid`, `ALTER TABLE "users" ALTER COLUMN "token" SET DEFAULT gen_random_uuid()`}, nil},
		{ddl.AddTable{Table: "app.order_totals", Columns: "order_id bigint PRIMARY KEY, amount numeric(12,2)"}, 15,
			[]string{`CREATE TABLE IF NOT EXISTS "app"."order_totals" (order_id bigint PRIMARY KEY, amount numeric(12,2))`},
			[]string{`DROP TABLE IF EXISTS "app"."order_totals"`}},
		{ddl.CreateIndex{Name: "users_email", Table: "users", Columns: []string{"email"}, Unique: true, Where: "deleted_at IS NULL"}, 15,
			[]string{`CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_email" ON "users" ("email") WHERE deleted_at IS NULL -- outside a transaction`},
			[]string{`DROP INDEX CONCURRENTLY IF EXISTS "users_email" -- outside a transaction`}},
		{ddl.AddForeignKey{Name: "orders_user", Table: "orders", Columns: []string{"user_id"}, RefTable: "users", RefColumns: []string{"id"}}, 15,
			[]string{`ALTER TABLE "orders" ADD CONSTRAINT "orders_user" FOREIGN KEY ("user_id") REFERENCES "users" ("id") NOT VALID`,
				`ALTER TABLE "orders" VALIDATE CONSTRAINT "orders_user"`},
			[]string{`ALTER TABLE "orders" DROP CONSTRAINT IF EXISTS "orders_user"`}},
		{ddl.AddCheck{Name: "age_positive", Table: "users", Expr: "age > 0"}, 15,
			[]string{`ALTER TABLE "users" ADD CONSTRAINT "age_positive" CHECK (age > 0) NOT VALID`, `ALTER TABLE "users" VALIDATE CONSTRAINT "age_positive"`}, nil},
		{ddl.SetNotNull{Table: "users", Column: "email"}, 15,
			[]string{`ALTER TABLE "users" ADD CONSTRAINT "email_not_null" CHECK ("email" IS NOT NULL) NOT VALID`,
				`ALTER TABLE "users" VALIDATE CONSTRAINT "email_not_null"`,
				`ALTER TABLE "users" ALTER COLUMN "email" SET NOT NULL`,
				`ALTER TABLE "users" DROP CONSTRAINT IF EXISTS "email_not_null"`},
			[]string{`ALTER TABLE "users" DROP CONSTRAINT IF EXISTS "email_not_null"`, `ALTER TABLE "users" ALTER COLUMN "email" DROP NOT NULL`}},
		{ddl.SetNotNull{Table: "users", Column: "email"}, 18,
			[]string{`ALTER TABLE "users" ADD CONSTRAINT "email_not_null" NOT NULL "email" NOT VALID`, `ALTER TABLE "users" VALIDATE CONSTRAINT "email_not_null"`}, nil},
		{ddl.AddUnique{Name: "users_email_key", Table: "users", Columns: []string{"tenant", "email"}}, 15,
			[]string{`CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_email_key" ON "users" ("tenant", "email") -- outside a transaction`,
				`ALTER TABLE "users" ADD CONSTRAINT "users_email_key" UNIQUE USING INDEX "users_email_key"`},
			[]string{`ALTER TABLE "users" DROP CONSTRAINT IF EXISTS "users_email_key"`}},
		{ddl.DropColumn{Table: "users", Column: `full "name"`}, 15, []string{`ALTER TABLE "users" DROP COLUMN IF EXISTS "full ""name"""`}, nil},
		{ddl.DropTable{Table: "legacy"}, 15, []string{`DROP TABLE IF EXISTS "legacy"`}, nil},
	}
	for _, c := range cases {
		assert.Equal(t, c.up, sqlOf(t, c.op, c.major, false), "%s", c.op)
		if c.down != nil {
			assert.Equal(t, c.down, sqlOf(t, c.op, c.major, true), "%s", c.op)
		}
	}
	for _, o := range []ddl.Op{ddl.DropColumn{Table: "t", Column: "c"}, ddl.DropTable{Table: "t"}, ddl.DropIndex{Name: "i"}} {
		_, err := o.Down(15)
		assert.ErrorIs(t, err, ddl.ErrIrreversible)
	}
	expand, contract := ddl.RenameColumn("users", "full_name", "name", "text")
	assert.Equal(t, []ddl.Op{ddl.AddColumn{Table: "users", Column: "name", Type: "text"}}, expand, "never a bare RENAME")
	assert.Equal(t, []ddl.Op{ddl.DropColumn{Table: "users", Column: "full_name"}}, contract)
}

func TestOpsRefuseHostileInput(t *testing.T) {
	t.Parallel()
	for _, o := range []ddl.Op{
		ddl.AddColumn{Table: "users", Column: "a", Type: "int; DROP TABLE users"},
		ddl.AddColumn{Table: "users", Column: "a", Type: "int", Default: "0 -- x"},
		ddl.AddColumn{Table: "", Column: "a", Type: "int"},
		ddl.AddColumn{Table: "users", Column: strings.Repeat("c", 64), Type: "int"},
		ddl.AddCheck{Name: "c", Table: "users", Expr: "a > 0) NOT VALID; DROP TABLE users; --"},
		ddl.CreateIndex{Name: "i", Table: "users"},
		ddl.AddTable{Table: "t", Columns: "a int); DROP TABLE users; CREATE TABLE x (b int"},
	} {
		_, err := o.Up(15)
		assert.ErrorIs(t, err, ddl.ErrInvalidOp, "%s", o)
	}
	// The error names what is wrong.
	long := strings.Repeat("n", 64)
	for _, c := range []struct {
		op   ddl.Op
		want string
	}{
		{ddl.CreateIndex{Name: long, Table: "users", Columns: []string{"email"}}, `index "` + long},
		{ddl.AddCheck{Name: long, Table: "users", Expr: "true"}, `constraint "` + long},
		{ddl.AddForeignKey{Name: long, Table: "o", Columns: []string{"u"}, RefTable: "u", RefColumns: []string{"id"}}, `constraint "` + long},
		{ddl.DropColumn{Table: "users", Column: long}, `column "` + long},
	} {
		_, err := c.op.Up(15)
		assert.ErrorContains(t, err, c.want, "%s", c.op)
		_, err = ddl.RenderSQLite(c.op, false)
		assert.ErrorContains(t, err, c.want, "%s on SQLite", c.op)
	}
}

func executor(t *testing.T, db *sqlx.DB, opts ...ddl.ExecutorOption) *ddl.Executor {
	t.Helper()
	e, err := ddl.NewExecutor(db, append([]ddl.ExecutorOption{ddl.WithRetries(50, 10*time.Millisecond)}, opts...)...)
	require.NoError(t, err)
	return e
}

// fixture fills db with the users and orders the operations change, in
// SQL both databases accept.
func fixture(t *testing.T, db *sqlx.DB) *sqlx.DB {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, email text, tenant int NOT NULL DEFAULT 1, age int)`)
	db.MustExecContext(t.Context(), `INSERT INTO users (id, email, tenant, age)
		WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2000) SELECT i, 'u' || i || '@x', 1, 20 FROM s`)
	db.MustExecContext(t.Context(), `CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint)`)
	db.MustExecContext(t.Context(), `INSERT INTO orders (id, user_id) SELECT id, id FROM users WHERE id <= 100`)
	return db
}

func pgFixture(t *testing.T) *sqlx.DB { return fixture(t, pgtest.DB(t)) }

var allOps = []ddl.Op{
	ddl.AddColumn{Table: "users", Column: "given_name", Type: "text"},
	ddl.AddColumn{Table: "users", Column: "score", Type: "int", Default: "0"},
	ddl.AddColumn{Table: "users", Column: "token", Type: "uuid", Default: "gen_random_uuid()", Volatile: true},
	ddl.AddTable{Table: "order_totals", Columns: "order_id bigint PRIMARY KEY, amount numeric(12,2)"},
	ddl.CreateIndex{Name: "users_email", Table: "users", Columns: []string{"email"}},
	ddl.AddForeignKey{Name: "orders_user", Table: "orders", Columns: []string{"user_id"}, RefTable: "users", RefColumns: []string{"id"}},
	ddl.AddCheck{Name: "age_positive", Table: "users", Expr: "age > 0"},
	ddl.SetNotNull{Table: "users", Column: "email"},
	ddl.AddUnique{Name: "users_tenant_email", Table: "users", Columns: []string{"tenant", "email"}},
}

// opsFor is allOps without the constraints SQLite cannot add to an
// existing table.
func opsFor(db *sqlx.DB) []ddl.Op {
	if !(db.DriverName() == "sqlite") {
		return allOps
	}
	var ops []ddl.Op
	for _, o := range allOps {
		switch o.(type) {
		case ddl.AddForeignKey, ddl.AddCheck, ddl.SetNotNull:
		default:
			ops = append(ops, o)
		}
	}
	return ops
}

// schemaOf describes users (columns and nullability, indexes and
// validity), the constraints of users and orders (PostgreSQL; SQLite adds
// none), and whether order_totals exists, from either catalog.
func schemaOf(t *testing.T, db *sqlx.DB) string {
	t.Helper()
	ctx, d, users := t.Context(), dbtest.Dialect(t, db), ident.Table{Name: "users"}
	cols, err := d.Columns(ctx, db, users)
	require.NoError(t, err)
	var cs []string
	for _, c := range cols {
		cs = append(cs, c.Name+":"+map[bool]string{false: "YES", true: "NO"}[c.NotNull])
	}
	idx, err := d.Indexes(ctx, db, users)
	require.NoError(t, err)
	var is []string
	for _, i := range idx {
		is = append(is, fmt.Sprintf("%s:%t", i.Name, i.Valid))
	}
	var cons string
	if !(db.DriverName() == "sqlite") {
		require.NoError(t, db.GetContext(ctx, &cons, `SELECT coalesce(string_agg(conname || ':' || convalidated, ',' ORDER BY conname), '')
			FROM pg_constraint WHERE conrelid IN ('users'::regclass, 'orders'::regclass)`))
	}
	exists, err := d.TableExists(ctx, db, ident.Table{Name: "order_totals"})
	require.NoError(t, err)
	slices.Sort(cs)
	slices.Sort(is)
	return fmt.Sprintf("%s | %s | %s | %t", strings.Join(cs, ","), cons, strings.Join(is, ","), exists)
}

// Every operation the database can do, against a real PostgreSQL and a
// SQLite file: applied, applied again (nothing changes), and reversed.
func TestApplyReapplyRevert(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		fixture(t, db)
		ops, sqlite := opsFor(db), (db.DriverName() == "sqlite")
		before := schemaOf(t, db)
		e := executor(t, db)
		require.NoError(t, e.Apply(t.Context(), "m", ops))
		applied := schemaOf(t, db)
		want := []string{"given_name:YES", "email:NO", "score:YES", "token:YES", "age_positive:true", "orders_user:true",
			"users_tenant_email:true", "users_email:true", "| true"}
		if sqlite {
			want = []string{"given_name:YES", "email:YES", "score:YES", "token:YES", "users_tenant_email:true", "users_email:true", "| true"}
		}
		for _, w := range want {
			assert.Contains(t, applied, w)
		}
		if !sqlite && serverMajor(t, db) >= 18 {
			assert.Contains(t, applied, "email_not_null:true", "18: the NOT NULL is a constraint of that name, validated")
		} else {
			assert.NotContains(t, applied, "email_not_null", "the helper check is gone once NOT NULL is set")
		}
		var nullTokens int
		require.NoError(t, db.GetContext(t.Context(), &nullTokens, `SELECT count(*) FROM users WHERE token IS NULL`))
		assert.Equal(t, 2000, nullTokens, "a volatile default is not applied to existing rows: they are the backfill's")

		// A new row gets the constant default everywhere; the volatile one
		// only where the database can set it on an existing table.
		db.MustExecContext(t.Context(), `INSERT INTO users (id, email) VALUES (5000, 'new@x')`)
		var row struct {
			Score int            `db:"score"`
			Token sql.NullString `db:"token"`
		}
		require.NoError(t, db.GetContext(t.Context(), &row, `SELECT score, CAST(token AS text) AS token FROM users WHERE id = 5000`))
		assert.Equal(t, 0, row.Score)
		assert.Equal(t, !sqlite, row.Token.Valid, "token default set on PostgreSQL, not on SQLite")
		db.MustExecContext(t.Context(), `DELETE FROM users WHERE id = 5000`)

		require.NoError(t, e.Apply(t.Context(), "m", ops), "recorded steps are skipped")
		fresh := executor(t, db)
		require.NoError(t, fresh.Apply(t.Context(), "other-record", ops), "and without the record, every statement is idempotent")
		assert.Equal(t, applied, schemaOf(t, db))

		require.NoError(t, e.Revert(t.Context(), "m", ops))
		assert.Equal(t, before, schemaOf(t, db))
		require.NoError(t, e.Revert(t.Context(), "m", ops))
		require.NoError(t, fresh.Revert(t.Context(), "other-record", ops), "reverting what is already undone changes nothing")
		assert.Equal(t, before, schemaOf(t, db))

		err := e.Revert(t.Context(), "m2", []ddl.Op{ddl.DropColumn{Table: "users", Column: "age"}})
		assert.ErrorIs(t, err, ddl.ErrIrreversible)
	})
}

// An executor stopped between steps (a crash, a deploy) resumes where it
// stopped when run again.
func TestExecutorResumesAfterCrashBetweenSteps(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		fixture(t, db)
		ops := opsFor(db)
		plan, err := executor(t, db).Plan(t.Context(), ops)
		require.NoError(t, err)
		crash := errors.New("killed")
		runs := (len(plan) - 1) / 2
		for range runs { // each run dies after two steps
			e := executor(t, db)
			n := 0
			ddl.OnStep(e, func(op, step int) error {
				if n++; n == 2 {
					return crash
				}
				return nil
			})
			err := e.Apply(t.Context(), "resume", ops)
			require.ErrorIs(t, err, crash)
		}
		var steps int
		require.NoError(t, db.GetContext(t.Context(), &steps, `SELECT count(*) FROM schemashift_ddl_steps WHERE migration = 'resume'`))
		require.Equal(t, 2*runs, steps, "each run recorded its two steps")
		require.NoError(t, executor(t, db).Apply(t.Context(), "resume", ops))
		var distinct int
		require.NoError(t, db.GetContext(t.Context(), &steps, `SELECT count(*) FROM schemashift_ddl_steps WHERE migration = 'resume'`))
		require.NoError(t, db.GetContext(t.Context(), &distinct, `SELECT count(*) FROM (SELECT DISTINCT op, step FROM schemashift_ddl_steps WHERE migration = 'resume') s`))
		assert.Equal(t, len(plan), steps, "every step recorded once")
		assert.Equal(t, steps, distinct)
		assert.Contains(t, schemaOf(t, db), "users_tenant_email:true")
	})
}

// A failed concurrent build leaves an INVALID index; the retry drops it
// and builds a valid one (IF NOT EXISTS alone would keep the invalid one).
func TestInvalidIndexIsRebuilt(t *testing.T) {
	t.Parallel()
	db := pgFixture(t)
	db.MustExecContext(t.Context(), `UPDATE users SET email = 'dup@x' WHERE id IN (1, 2)`)
	op := []ddl.Op{ddl.CreateIndex{Name: "users_email_unique", Table: "users", Columns: []string{"email"}, Unique: true}}
	err := executor(t, db).Apply(t.Context(), "idx", op)
	require.Error(t, err)
	var valid bool
	require.NoError(t, db.GetContext(t.Context(), &valid, `SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_unique'::regclass`))
	require.False(t, valid, "the failed build left an INVALID index")

	db.MustExecContext(t.Context(), `UPDATE users SET email = 'other@x' WHERE id = 2`)
	require.NoError(t, executor(t, db).Apply(t.Context(), "idx", op))
	require.NoError(t, db.GetContext(t.Context(), &valid, `SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_unique'::regclass`))
	assert.True(t, valid)
}

// A long transaction holds a lock on the table: the expand waits at most
// lock_timeout per try, the foreground keeps running meanwhile, and the
// expand succeeds once the lock is released. The lock is held until the
// ALTER has been seen waiting on it in eight tries (pg_stat_activity
// shows each try's statement start), so that the expand has given up and
// retried seven times before the test lets it through.
//
// The bound is relative, not lock_timeout plus a margin: on a loaded
// machine a query can take long for reasons of its own. A query queued
// behind the waiting ALTER waits for that try only; without lock_timeout
// it would wait for as long as the transaction holds the lock, so no query
// may wait half of that. That a try lasts about lock_timeout (not the
// executor's default 2s) is read on the server: the shortest gap between
// two tries' starts is at most a few lock timeouts.
func TestExpandWaitsOnLongTransactionWithoutBlockingForeground(t *testing.T) {
	t.Parallel()
	db := pgFixture(t)
	db.SetMaxOpenConns(20)
	holder := db.MustBeginTx(t.Context(), nil)
	var n int
	require.NoError(t, holder.Get(&n, `SELECT count(*) FROM users`)) // ACCESS SHARE until the end
	held := time.Now()

	const lockTimeout, tries = 100 * time.Millisecond, 8
	e := executor(t, db, ddl.WithLockTimeout(lockTimeout))
	done := make(chan error, 1)
	go func() {
		done <- e.Apply(context.WithoutCancel(t.Context()), "expand", []ddl.Op{ddl.AddColumn{Table: "users", Column: "nickname", Type: "text"}})
	}()

	var mu sync.Mutex
	var worst time.Duration
	var queries int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				var email string
				if err := db.GetContext(context.WithoutCancel(t.Context()), &email, `SELECT email FROM users WHERE id = $1`, 1+(w*500+i)%2000); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				worst, queries = max(worst, time.Since(start)), queries+1
				mu.Unlock()
			}
		})
	}

	// Each try of the ALTER, seen waiting on the lock, by its start.
	var starts []time.Time
	require.Eventually(t, func() bool {
		var waiting []time.Time
		if !assert.NoError(t, db.SelectContext(t.Context(), &waiting, `SELECT query_start FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE 'ALTER TABLE%'`)) {
			return false
		}
		for _, at := range waiting {
			if !slices.ContainsFunc(starts, at.Equal) {
				starts = append(starts, at)
			}
		}
		return len(starts) >= tries
	}, 60*time.Second, 5*time.Millisecond, "the ALTER was not seen waiting in %d tries", tries)
	select {
	case err := <-done:
		t.Fatalf("the expand finished while the lock was held: %v", err)
	default:
	}
	hold := time.Since(held)
	require.NoError(t, holder.Rollback())
	require.NoError(t, <-done)
	close(stop)
	wg.Wait()
	slices.SortFunc(starts, time.Time.Compare)
	shortest := starts[1].Sub(starts[0])
	for i := 2; i < len(starts); i++ {
		shortest = min(shortest, starts[i].Sub(starts[i-1]))
	}
	assert.Less(t, worst, hold/2, "a query queued behind the waiting ALTER waited out the long transaction, not at most about lock_timeout")
	assert.Less(t, shortest, 5*lockTimeout, "a try gave up after about lock_timeout")
	assert.Greater(t, queries, 50, "the foreground kept running")
	t.Logf("foreground: %d queries, worst latency %v while the lock was held %v; %d tries, shortest %v apart (lock_timeout %v)",
		queries, worst, hold, len(starts), shortest, lockTimeout)
	var has bool
	require.NoError(t, db.GetContext(t.Context(), &has, `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'nickname')`))
	assert.True(t, has)
}
