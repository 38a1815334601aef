package ddl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/pgerr"
)

// Executor applies operations: each statement on one connection that has
// its lock_timeout and statement_timeout set (not on a pool, whose next
// connection would forget them), lock timeouts retried with jittered
// backoff up to a bound, and every applied step recorded in
// schemashift_ddl_steps, so that a run cut off at any point can simply be
// run again. It is safe for concurrent use and holds nothing to close.
type Executor struct {
	db               *sqlx.DB
	lockTimeout      time.Duration
	statementTimeout time.Duration
	retries          int
	backoff          time.Duration
	// onStep, when set, runs after each recorded step (a test hook).
	onStep func(op, step int) error
}

// ExecutorOption configures an [Executor].
type ExecutorOption func(*Executor) error

// WithLockTimeout bounds how long one try waits for its lock (default 2s).
func WithLockTimeout(d time.Duration) ExecutorOption {
	return func(e *Executor) error {
		if d <= 0 {
			return fmt.Errorf("lock timeout %v is not positive", d)
		}
		e.lockTimeout = d
		return nil
	}
}

// WithStatementTimeout bounds each statement (default 0: none, since an
// index build can take long; its lock is not the kind that blocks writes).
func WithStatementTimeout(d time.Duration) ExecutorOption {
	return func(e *Executor) error {
		if d < 0 {
			return fmt.Errorf("statement timeout %v is negative", d)
		}
		e.statementTimeout = d
		return nil
	}
}

// WithRetries sets how many times a lock timeout is retried (default 20)
// and the backoff base (default 200ms).
func WithRetries(n int, base time.Duration) ExecutorOption {
	return func(e *Executor) error {
		if n < 0 || base <= 0 {
			return fmt.Errorf("retries %d, backoff %v: out of range", n, base)
		}
		e.retries, e.backoff = n, base
		return nil
	}
}

// NewExecutor returns an executor on db.
func NewExecutor(db *sqlx.DB, opts ...ExecutorOption) (*Executor, error) {
	if db == nil {
		return nil, errors.New("new executor: db is nil")
	}
	e := &Executor{db: db, lockTimeout: 2 * time.Second, retries: 20, backoff: 200 * time.Millisecond}
	for _, o := range opts {
		if err := o(e); err != nil {
			return nil, fmt.Errorf("new executor: %w", err)
		}
	}
	return e, nil
}

const stepsSchema = `
SELECT pg_advisory_xact_lock(7215837262348120003);
CREATE TABLE IF NOT EXISTS schemashift_ddl_steps (
	migration  text NOT NULL,
	direction  text NOT NULL,
	op         integer NOT NULL,
	step       integer NOT NULL,
	statement  text NOT NULL,
	skipped    boolean NOT NULL DEFAULT false,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (migration, direction, op, step)
)`

// Apply runs the Up statements of ops that are not recorded as applied.
func (e *Executor) Apply(ctx context.Context, migration string, ops []Op) error {
	return e.run(ctx, migration, "up", ops, func(o Op, major int) ([]Statement, error) { return o.Up(major) })
}

// Revert runs the Down statements of ops, last op first.
func (e *Executor) Revert(ctx context.Context, migration string, ops []Op) error {
	rev := make([]Op, len(ops))
	for i, o := range ops {
		rev[len(ops)-1-i] = o
	}
	return e.run(ctx, migration, "down", rev, func(o Op, major int) ([]Statement, error) { return o.Down(major) })
}

// Plan renders what Apply would run, without running it.
func (e *Executor) Plan(ctx context.Context, ops []Op) ([]Statement, error) {
	major, err := e.major(ctx)
	if err != nil {
		return nil, err
	}
	var out []Statement
	for _, o := range ops {
		st, err := o.Up(major)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o, err)
		}
		out = append(out, st...)
	}
	return out, nil
}

func (e *Executor) major(ctx context.Context) (int, error) {
	var v string
	if err := e.db.GetContext(ctx, &v, `SHOW server_version_num`); err != nil {
		return 0, fmt.Errorf("read server version: %w", err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("read server version %q: %w", v, err)
	}
	return n / 10000, nil
}

func (e *Executor) run(ctx context.Context, migration, direction string, ops []Op, render func(Op, int) ([]Statement, error)) error {
	if _, err := e.db.ExecContext(ctx, stepsSchema); err != nil {
		return fmt.Errorf("ensure DDL steps table: %w", err)
	}
	major, err := e.major(ctx)
	if err != nil {
		return err
	}
	// Render everything first: a bad operation fails before any runs.
	all := make([][]Statement, len(ops))
	for i, o := range ops {
		if all[i], err = render(o, major); err != nil {
			return fmt.Errorf("%s %s: %s: %w", direction, migration, o, err)
		}
	}
	for i, steps := range all {
		for j, st := range steps {
			var done bool
			if err := e.db.GetContext(ctx, &done, `SELECT EXISTS (SELECT 1 FROM schemashift_ddl_steps
				WHERE migration = $1 AND direction = $2 AND op = $3 AND step = $4)`, migration, direction, i, j); err != nil {
				return fmt.Errorf("read DDL steps: %w", err)
			}
			if done {
				continue
			}
			if err := e.step(ctx, migration, direction, i, j, st); err != nil {
				return fmt.Errorf("%s %s: %s: step %d (%s): %w", direction, migration, ops[i], j+1, st.SQL, err)
			}
			if e.onStep != nil {
				if err := e.onStep(i, j); err != nil {
					return err
				}
			}
		}
	}
	// Done one way: the record of the other way no longer holds (so that
	// an expand undone can be applied again).
	opposite := map[string]string{"up": "down", "down": "up"}[direction]
	if _, err := e.db.ExecContext(ctx, `DELETE FROM schemashift_ddl_steps WHERE migration = $1 AND direction = $2`, migration, opposite); err != nil {
		return fmt.Errorf("update DDL steps: %w", err)
	}
	return nil
}

// step runs one statement with retries on lock timeouts.
func (e *Executor) step(ctx context.Context, migration, direction string, op, step int, st Statement) error {
	for attempt := 1; ; attempt++ {
		err := e.try(ctx, migration, direction, op, step, st)
		kind := pgerr.Classify(err)
		if err == nil || (kind != pgerr.LockTimeout && kind != pgerr.Deadlock) || attempt > e.retries {
			return err
		}
		ceiling := float64(e.backoff) * float64(uint(1)<<min(attempt, 6))
		wait := time.Duration(ceiling/2 + rand.Float64()*ceiling/2)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

func (e *Executor) try(ctx context.Context, migration, direction string, op, step int, st Statement) error {
	conn, err := e.db.Connx(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	lock := strconv.FormatInt(e.lockTimeout.Milliseconds(), 10)
	stmt := strconv.FormatInt(e.statementTimeout.Milliseconds(), 10)
	record := func(q sqlx.ExecerContext, skipped bool) error {
		_, err := q.ExecContext(ctx, `INSERT INTO schemashift_ddl_steps (migration, direction, op, step, statement, skipped)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, migration, direction, op, step, st.SQL, skipped)
		return err
	}
	if st.NoTx {
		// Session settings on this connection, reset before it goes back
		// to the pool.
		if _, err := conn.ExecContext(ctx, `SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)`, lock, stmt); err != nil {
			return err
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `RESET lock_timeout; RESET statement_timeout`) //nolint:errcheck // best effort
		if st.Index != "" {
			if err := dropInvalidIndex(ctx, conn, st.Index); err != nil {
				return err
			}
		}
		skip, err := exists(ctx, conn, st)
		if err != nil {
			return err
		}
		if !skip {
			if _, err := conn.ExecContext(ctx, st.SQL); err != nil {
				return err
			}
		}
		return record(conn, skip)
	}
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`, lock, stmt); err != nil {
		return err
	}
	skip, err := exists(ctx, tx, st)
	if err != nil {
		return err
	}
	if !skip {
		if _, err := tx.ExecContext(ctx, st.SQL); err != nil {
			return err
		}
	}
	if err := record(tx, skip); err != nil {
		return err
	}
	return tx.Commit()
}

func exists(ctx context.Context, q sqlx.QueryerContext, st Statement) (bool, error) {
	if st.Exists == "" {
		return false, nil
	}
	var done bool
	if err := sqlx.GetContext(ctx, q, &done, st.Exists, st.ExistsArgs...); err != nil {
		return false, fmt.Errorf("check whether applied: %w", err)
	}
	return done, nil
}

// dropInvalidIndex drops an index of that name left INVALID by a failed
// or cancelled concurrent build: CREATE INDEX … IF NOT EXISTS would
// otherwise keep it.
func dropInvalidIndex(ctx context.Context, conn *sqlx.Conn, name string) error {
	var invalid sql.NullBool
	q, err := table(name)
	if err != nil {
		return err
	}
	if err := conn.GetContext(ctx, &invalid, `SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)`, q); err != nil &&
		!errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("check index %s: %w", name, err)
	}
	if invalid.Valid && invalid.Bool {
		if _, err := conn.ExecContext(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+q); err != nil {
			return fmt.Errorf("drop invalid index %s: %w", name, err)
		}
	}
	return nil
}
