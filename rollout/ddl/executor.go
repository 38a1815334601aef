package ddl

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/internal/pgerr"
)

// Executor applies operations: each statement on one connection that has
// its lock_timeout and statement_timeout set (not on a pool, whose next
// connection would forget them), lock timeouts retried with jittered
// backoff up to a bound, and every applied step recorded in
// schemashift_ddl_steps, so that a run cut off at any point can simply be
// run again. On SQLite it runs the plain forms described in the package
// documentation, and records what each gives up as the step's note. It is
// safe for concurrent use and holds nothing to close.
type Executor struct {
	db               *sqlx.DB
	d                *dialect.Dialect
	lockTimeout      time.Duration
	statementTimeout time.Duration
	retries          int
	backoff          time.Duration
	notes            func(context.Context, Note)
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

// WithNotes calls fn with the note of each step applied with one, right
// after the step is recorded, so that the caller's audit trail shows what
// the database could not do the safe way. fn runs on the applying
// goroutine; a note of a run cut off before fn ran stays readable from
// [Executor.Notes].
func WithNotes(fn func(context.Context, Note)) ExecutorOption {
	return func(e *Executor) error {
		if fn == nil {
			return errors.New("notes func is nil")
		}
		e.notes = fn
		return nil
	}
}

// NewExecutor returns an executor on db, a PostgreSQL or SQLite pool.
func NewExecutor(db *sqlx.DB, opts ...ExecutorOption) (*Executor, error) {
	if db == nil {
		return nil, errors.New("new executor: db is nil")
	}
	e := &Executor{db: db, d: dialect.Of(db), lockTimeout: 2 * time.Second, retries: 20, backoff: 200 * time.Millisecond}
	for _, o := range opts {
		if err := o(e); err != nil {
			return nil, fmt.Errorf("new executor: %w", err)
		}
	}
	return e, nil
}

// stepsLock serializes the creation and upgrade of the steps table
// between executors.
const stepsLock = 7215837262348120003

// stepsSchema is in PostgreSQL's spelling; dialect.Schema renders it for
// SQLite.
const stepsSchema = `CREATE TABLE IF NOT EXISTS schemashift_ddl_steps (
	migration  text NOT NULL,
	direction  text NOT NULL,
	op         integer NOT NULL,
	step       integer NOT NULL,
	statement  text NOT NULL,
	skipped    boolean NOT NULL DEFAULT false,
	note       text NOT NULL DEFAULT '',
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (migration, direction, op, step)
)`

var stepsTable = ident.Table{Name: "schemashift_ddl_steps"}

// Apply runs the Up statements of ops that are not recorded as applied.
func (e *Executor) Apply(ctx context.Context, migration string, ops []Op) error {
	return e.run(ctx, migration, "up", ops, false)
}

// Revert runs the Down statements of ops, last op first.
func (e *Executor) Revert(ctx context.Context, migration string, ops []Op) error {
	rev := make([]Op, len(ops))
	for i, o := range ops {
		rev[len(ops)-1-i] = o
	}
	return e.run(ctx, migration, "down", rev, true)
}

// Plan renders what Apply would run on this executor's database, without
// running it; each statement's Note says what it gives up there.
func (e *Executor) Plan(ctx context.Context, ops []Op) ([]Statement, error) {
	up, err := e.Renderer(ctx)
	if err != nil {
		return nil, err
	}
	var out []Statement
	for _, o := range ops {
		st, err := up(o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o, err)
		}
		out = append(out, st...)
	}
	return out, nil
}

// Renderer returns what renders one operation as Apply would run it on
// this executor's database (the server's version is read once, here).
func (e *Executor) Renderer(ctx context.Context) (func(Op) ([]Statement, error), error) {
	major, err := e.major(ctx)
	if err != nil {
		return nil, err
	}
	return func(o Op) ([]Statement, error) { return render(e.d, o, major, false) }, nil
}

// Note is what one applied step could not do the safe way on its
// database, as recorded with the step.
type Note struct {
	Migration string
	Direction string // "up" (Apply) or "down" (Revert)
	Op        int    // the operation's position in the run, from 0 (a Revert runs the last first)
	Step      int    // the statement's position in the operation, from 0
	Statement string
	// Skipped: the statement's effect was already there, so it did not run.
	Skipped bool
	Text    string
}

func (n Note) String() string {
	return fmt.Sprintf("%s %s: %s (%s)", n.Direction, n.Migration, n.Text, n.Statement)
}

// Notes returns the notes recorded with migration's applied steps, in the
// order the steps ran; none when no step had one.
func (e *Executor) Notes(ctx context.Context, migration string) ([]Note, error) {
	var rows []struct {
		Direction string `db:"direction"`
		Op        int    `db:"op"`
		Step      int    `db:"step"`
		Statement string `db:"statement"`
		Skipped   bool   `db:"skipped"`
		Note      string `db:"note"`
	}
	err := e.db.SelectContext(ctx, &rows, `SELECT direction, op, step, statement, skipped, note FROM schemashift_ddl_steps
		WHERE migration = $1 AND note <> '' ORDER BY applied_at, op, step`, migration)
	if pgerr.UndefinedTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read DDL notes of %s: %w", migration, err)
	}
	out := make([]Note, len(rows))
	for i, r := range rows {
		out[i] = Note{Migration: migration, Direction: r.Direction, Op: r.Op, Step: r.Step, Statement: r.Statement, Skipped: r.Skipped, Text: r.Note}
	}
	return out, nil
}

func (e *Executor) major(ctx context.Context) (int, error) {
	if e.d.IsSQLite() {
		return 0, nil // SQLite's forms do not depend on its version
	}
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

// ensureSteps creates or upgrades the steps table, running no DDL when it
// is current: DDL on it would queue behind a running executor's reads.
func (e *Executor) ensureSteps(ctx context.Context) error {
	current := func(q sqlx.QueryerContext) (bool, error) {
		cols, err := e.d.Columns(ctx, q, stepsTable)
		return slices.ContainsFunc(cols, func(c dialect.Column) bool { return c.Name == "note" }), err
	}
	if ok, err := current(e.db); err != nil || ok {
		return err
	}
	tx, err := e.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if err := e.d.LockTx(ctx, tx, stepsLock); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, e.d.Schema(stepsSchema)); err != nil {
		return err
	}
	// A table from before notes were recorded gains the column.
	if ok, err := current(tx); err != nil {
		return err
	} else if !ok {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE schemashift_ddl_steps ADD COLUMN note text NOT NULL DEFAULT ''`); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (e *Executor) run(ctx context.Context, migration, direction string, ops []Op, down bool) error {
	major, err := e.major(ctx)
	if err != nil {
		return err
	}
	// Render everything first: a bad or unsupported operation fails
	// before anything runs or is created.
	all := make([][]Statement, len(ops))
	for i, o := range ops {
		if all[i], err = render(e.d, o, major, down); err != nil {
			return fmt.Errorf("%s %s: %s: %w", direction, migration, o, err)
		}
	}
	if err := e.ensureSteps(ctx); err != nil {
		return fmt.Errorf("ensure DDL steps table: %w", err)
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
			skipped, err := e.step(ctx, migration, direction, i, j, st)
			if err != nil {
				return fmt.Errorf("%s %s: %s: step %d (%s): %w", direction, migration, ops[i], j+1, st.SQL, err)
			}
			if st.Note != "" && e.notes != nil {
				e.notes(ctx, Note{Migration: migration, Direction: direction, Op: i, Step: j, Statement: st.SQL, Skipped: skipped, Text: st.Note})
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

// step runs one statement with retries on lock timeouts (and, on SQLite,
// on a write lock not had within busy_timeout), and reports whether it
// was skipped because its effect was already there.
func (e *Executor) step(ctx context.Context, migration, direction string, op, step int, st Statement) (bool, error) {
	for attempt := 1; ; attempt++ {
		skipped, err := e.try(ctx, migration, direction, op, step, st)
		kind := pgerr.Classify(err)
		if err == nil || (kind != pgerr.LockTimeout && kind != pgerr.Deadlock) || attempt > e.retries {
			return skipped, err
		}
		ceiling := float64(e.backoff) * float64(uint(1)<<min(attempt, 6))
		wait := time.Duration(ceiling/2 + rand.Float64()*ceiling/2)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

func (e *Executor) try(ctx context.Context, migration, direction string, op, step int, st Statement) (skipped bool, err error) {
	conn, err := e.db.Connx(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	record := func(q sqlx.ExecerContext, skipped bool) error {
		_, err := q.ExecContext(ctx, `INSERT INTO schemashift_ddl_steps (migration, direction, op, step, statement, skipped, note)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`, migration, direction, op, step, st.SQL, skipped, st.Note)
		return err
	}
	if st.NoTx {
		// Session settings on this connection, reset before it goes back
		// to the pool.
		if err := e.d.SetDDLTimeouts(ctx, conn, e.lockTimeout, e.statementTimeout, false); err != nil {
			return false, err
		}
		defer e.d.ResetTimeouts(context.WithoutCancel(ctx), conn) //nolint:errcheck // best effort
		if st.Index != "" {
			if err := e.d.DropInvalidIndex(ctx, conn, ident.Table{Schema: st.IndexSchema, Name: st.Index}); err != nil {
				return false, err
			}
		}
		skip, err := e.exists(ctx, conn, st)
		if err != nil {
			return false, err
		}
		if !skip {
			if _, err := conn.ExecContext(ctx, st.SQL); err != nil {
				return false, err
			}
		}
		return skip, record(conn, skip)
	}
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if err := e.d.SetDDLTimeouts(ctx, tx, e.lockTimeout, e.statementTimeout, true); err != nil {
		return false, err
	}
	skip, err := e.exists(ctx, tx, st)
	if err != nil {
		return false, err
	}
	if !skip {
		if _, err := tx.ExecContext(ctx, st.SQL); err != nil {
			return false, err
		}
	}
	if err := record(tx, skip); err != nil {
		return false, err
	}
	return skip, tx.Commit()
}

// exists reports whether st's effect is already there, by its Exists
// query or its column guard.
func (e *Executor) exists(ctx context.Context, q sqlx.QueryerContext, st Statement) (bool, error) {
	if st.column != nil {
		cols, err := e.d.Columns(ctx, q, st.column.table)
		if err != nil {
			return false, fmt.Errorf("check whether applied: %w", err)
		}
		has := slices.ContainsFunc(cols, func(c dialect.Column) bool { return c.Name == st.column.name })
		return has == st.column.present, nil
	}
	if st.Exists == "" {
		return false, nil
	}
	var done bool
	if err := sqlx.GetContext(ctx, q, &done, st.Exists, st.ExistsArgs...); err != nil {
		return false, fmt.Errorf("check whether applied: %w", err)
	}
	return done, nil
}
