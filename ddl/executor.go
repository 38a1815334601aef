package ddl

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemashift/schemashift/internal/backoff"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/fragment"
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
	d                dialect.Dialect
	lockTimeout      time.Duration
	statementTimeout time.Duration
	retries          int
	backoff          time.Duration
	notes            func(context.Context, Note)
	// onStep, when set, runs after each recorded step (a test hook).
	onStep func(op, step int) error
	// onIntent runs once the record that a statement is about to make its
	// object is written, before the statement; onStatement once the
	// statement ran, before its step is recorded done (test hooks: an
	// error stops the run as a crash at that line would).
	onIntent, onStatement func(op, step int) error
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
func NewExecutor(pool Pool, opts ...ExecutorOption) (*Executor, error) {
	if pool == nil {
		return nil, errors.New("new executor: db is nil")
	}
	db, d, err := dialects.Sqlx(pool)
	if err != nil {
		return nil, fmt.Errorf("new executor: %w", err)
	}
	e := &Executor{db: db, d: d, lockTimeout: 2 * time.Second, retries: 20, backoff: 200 * time.Millisecond}
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

var stepsTable = ident.Table{Name: "schemashift_ddl_steps"}

// namesTable holds, where the database has a search path, the schema
// each table a migration names without one was resolved to, once, by its
// first apply: the apply's later runs and its revert name the table with
// that schema, so a table of that name that appears earlier on the search
// path later is never touched. A revert that ran to its end forgets them.
var namesTable = ident.Table{Name: "schemashift_ddl_names"}

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
	err := e.db.SelectContext(ctx, &rows, e.d.DDLNotes(), migration)
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

func (e *Executor) major(ctx context.Context) (int, error) { return e.d.ServerMajor(ctx, e.db) }

// ensureSteps creates or upgrades the steps table, running no DDL when it
// is current: DDL on it would queue behind a running executor's reads.
func (e *Executor) ensureSteps(ctx context.Context) error {
	missing := func(q sqlx.QueryerContext) ([]string, error) {
		cols, err := e.d.Columns(ctx, q, stepsTable)
		if err != nil || len(cols) == 0 {
			return []string{""}, err // no table
		}
		var out []string
		for _, c := range e.d.DDLStepsColumns() {
			if !slices.ContainsFunc(cols, func(have dialect.Column) bool { return have.Name == c.Name }) {
				out = append(out, c.Add)
			}
		}
		if e.d.SearchPath() {
			ok, err := e.d.TableExists(ctx, q, namesTable)
			if err != nil {
				return nil, err
			}
			if !ok {
				out = append(out, e.d.DDLNamesSchema())
			}
		}
		return out, nil
	}
	if m, err := missing(e.db); err != nil || len(m) == 0 {
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
	if _, err := tx.ExecContext(ctx, e.d.DDLStepsSchema()); err != nil {
		return err
	}
	// A table from an earlier release gains the columns it lacks.
	m, err := missing(tx)
	if err != nil {
		return err
	}
	for _, add := range m {
		if _, err := tx.ExecContext(ctx, add); err != nil {
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
	// Each table named without its schema is named with the one it was
	// resolved to by the migration's first apply, and rendered again so.
	if ops, err = e.qualify(ctx, migration, direction, ops); err != nil {
		return fmt.Errorf("%s %s: %w", direction, migration, err)
	}
	for i, o := range ops {
		if all[i], err = render(e.d, o, major, down); err != nil {
			return fmt.Errorf("%s %s: %s: %w", direction, migration, o, err)
		}
	}
	if !down {
		// An apply undoes what a revert did: every step of the revert must
		// run again, each deciding afresh whose object it drops.
		if _, err := e.db.ExecContext(ctx, e.d.DDLForgetDirection(), migration, "down"); err != nil {
			return fmt.Errorf("update DDL steps: %w", err)
		}
	}
	for i, steps := range all {
		for j, st := range steps {
			done, err := e.done(ctx, migration, direction, i, j, st)
			if err != nil {
				return err
			}
			if done {
				continue
			}
			r := run{migration: migration, direction: direction, op: i, step: j, st: st}
			skipped, note, err := e.step(ctx, r)
			if err != nil {
				return fmt.Errorf("%s %s: %s: step %d (%s): %w", direction, migration, ops[i], j+1, st.SQL, err)
			}
			if note != "" && e.notes != nil {
				e.notes(ctx, Note{Migration: migration, Direction: direction, Op: i, Step: j, Statement: st.SQL, Skipped: skipped, Text: note})
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
	if _, err := e.db.ExecContext(ctx, e.d.DDLForgetDirection(), migration, opposite); err != nil {
		return fmt.Errorf("update DDL steps: %w", err)
	}
	if down && e.d.SearchPath() {
		// Undone: the next apply resolves its tables afresh.
		if _, err := e.db.ExecContext(ctx, e.d.DDLForgetNames(), migration); err != nil {
			return fmt.Errorf("update DDL names: %w", err)
		}
	}
	return nil
}

// done reports whether step j of op i is recorded done in this direction.
// A step that makes an object is done only while the object is there: one
// dropped since (by a revert cut off after its drop, or by hand) is made
// again, and its stale record goes. (A row of an executor from before
// created was recorded is trusted as it is.)
func (e *Executor) done(ctx context.Context, migration, direction string, i, j int, st Statement) (bool, error) {
	var rows []sql.NullBool
	if err := e.db.SelectContext(ctx, &rows, e.d.DDLStepCreated(), migration, direction, i, j); err != nil {
		return false, fmt.Errorf("read DDL steps: %w", err)
	}
	if len(rows) == 0 {
		return false, nil
	}
	if st.creates == nil || !rows[0].Valid {
		return true, nil // a row of an older executor is trusted as it is
	}
	there, err := e.found(ctx, e.db, st.creates)
	if err != nil || there {
		return there, err
	}
	if _, err := e.db.ExecContext(ctx, e.d.DDLForgetStep(), migration, direction, i, j); err != nil {
		return false, fmt.Errorf("update DDL steps: %w", err)
	}
	return false, nil
}

// qualify names, on PostgreSQL, each table a built-in operation names
// without its schema with the schema the migration's first apply resolved
// it to (the table's, through the search path; for a table not there yet,
// the schema CREATE TABLE puts it in), recorded in schemashift_ddl_names.
// A revert with nothing recorded (its migration never applied, or applied
// by an executor from before names were recorded) leaves the name as it
// is: the search path decides, as it did for that apply.
func (e *Executor) qualify(ctx context.Context, migration, direction string, ops []Op) ([]Op, error) {
	if !e.d.SearchPath() {
		return ops, nil
	}
	resolved := map[string]string{}
	q := func(name string) (string, error) {
		t, err := ident.ParseTable(name)
		if err != nil || t.Schema != "" {
			return name, nil // refused when rendered, or named with its schema
		}
		schema, ok := resolved[t.Name]
		if !ok {
			var got []string
			if err := e.db.SelectContext(ctx, &got, e.d.DDLResolvedName(), migration, t.Name); err != nil {
				return "", fmt.Errorf("read DDL names: %w", err)
			}
			if len(got) == 0 && direction == "down" {
				return name, nil
			}
			if len(got) == 0 {
				now, err := e.d.ResolveSchema(ctx, e.db, t)
				if err != nil {
					return "", fmt.Errorf("resolve table %s: %w", t, err)
				}
				if !now.Valid {
					return name, nil // no schema on the search path: CREATE TABLE fails
				}
				// First resolution wins, against a concurrent apply of the
				// same migration.
				if _, err := e.db.ExecContext(ctx, e.d.DDLResolveName(), migration, t.Name, now.String); err != nil {
					return "", fmt.Errorf("record DDL names: %w", err)
				}
				if err := e.db.SelectContext(ctx, &got, e.d.DDLResolvedName(), migration, t.Name); err != nil {
					return "", fmt.Errorf("read DDL names: %w", err)
				}
				if len(got) == 0 {
					return "", fmt.Errorf("record DDL names: table %s not recorded", t)
				}
			}
			schema = got[0]
			resolved[t.Name] = schema
		}
		// The name with its schema, as ParseTable reads it back: exact
		// only when the schema's name has no dot.
		q := schema + "." + t.Name
		if back, err := ident.ParseTable(q); err != nil || back != (ident.Table{Schema: schema, Name: t.Name}) {
			return "", fmt.Errorf("%w: table %q resolves to schema %q, whose name cannot be written before a dot: name the table's schema in a search_path without it", ErrInvalidOp, name, schema)
		}
		return q, nil
	}
	out := make([]Op, len(ops))
	for i, o := range ops {
		out[i] = o
		if qo, ok := o.(qualifiable); ok {
			var err error
			if out[i], err = qo.qualified(q); err != nil {
				return nil, fmt.Errorf("%s: %w", o, err)
			}
		}
	}
	return out, nil
}

// run is one statement of a run, where it stands in it.
type run struct {
	migration, direction string
	op, step             int
	st                   Statement
}

// step runs one statement with retries on lock timeouts (and, on SQLite,
// on a write lock not had within busy_timeout), and reports whether it
// was skipped because its effect was already there (or its object is not
// this migration's), and the note recorded with it.
func (e *Executor) step(ctx context.Context, r run) (bool, string, error) {
	raced := false
	for attempt := 1; ; attempt++ {
		skipped, note, err := e.try(ctx, r)
		if r.st.creates != nil && duplicate(err) && !raced {
			// Its object was made by another between the check and the
			// statement: tried again, the object is found and compared.
			raced = true
			continue
		}
		kind := pgerr.Classify(err)
		if err == nil || (kind != pgerr.LockTimeout && kind != pgerr.Deadlock) || attempt > e.retries {
			return skipped, note, err
		}
		t := time.NewTimer(backoff.Wait(e.backoff, attempt, 64*e.backoff))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, "", errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

// duplicate reports whether err says the object a statement makes is
// there already (PostgreSQL: a column, a relation, a constraint).
func duplicate(err error) bool {
	switch pgerr.Code(err) {
	case "42701", "42P07", "42710":
		return true
	}
	return false
}

// The notes of a drop (or change) skipped because its object is not known
// to be this migration's.
const (
	noteNotOurs = "kept: not made by this migration's apply (it was there before, or was made by another)"
	noteLegacy  = "kept: applied by an executor that did not record which objects it made; drop it by hand if this migration made it"
)

// outcome is what a step did, as recorded.
type outcome struct {
	skipped bool
	// created: the step made its object (true), or made none (false:
	// found it there, or makes none). NULL only in rows from before this
	// was recorded.
	created sql.NullBool
	pending bool // the statement is about to run, outside a transaction
	note    string
}

// record writes what a step did. Ownership moves with the statement, in
// the write that records it (the statement's own transaction, when it has
// one): a step that makes its object, or is about to (an intent), voids
// every other record of making an object of that key, since the object
// those records name is gone; a drop that ran voids every record of making
// what it dropped and, in a revert, removes the apply's records of the
// step that made it and of its op's steps that make nothing, so a later
// apply runs them again.
func (e *Executor) record(ctx context.Context, q sqlx.ExecerContext, r run, o outcome) error {
	object := ""
	if r.st.creates != nil {
		object = e.key(r.st.creates)
	}
	if _, err := q.ExecContext(ctx, e.d.DDLRecordStep(), r.migration, r.direction, r.op, r.step, r.st.SQL, o.skipped, o.note, object, o.created, o.pending); err != nil {
		return err
	}
	if r.st.creates != nil && o.created.Bool && !o.skipped {
		if _, err := q.ExecContext(ctx, e.d.DDLDisownOthers(), object, r.migration, r.op, r.step); err != nil {
			return err
		}
	}
	if r.st.drops != nil && !o.skipped {
		dropped := e.key(r.st.drops)
		if r.direction == "down" {
			// The records of the step that made it, and of the op's steps
			// that make nothing (a VALIDATE, a SET DEFAULT on it): an apply
			// runs them again. A step of the op that made another object
			// keeps its record until that object's own drop.
			if _, err := q.ExecContext(ctx, e.d.DDLForgetDropped(), r.migration, dropped); err != nil {
				return err
			}
		}
		if _, err := q.ExecContext(ctx, e.d.DDLDisownDropped(), dropped); err != nil {
			return err
		}
	}
	return nil
}

// key names obj in schemashift_ddl_steps, folded as the database folds
// names: where "Users" and users are one object, one key.
func (e *Executor) key(obj *object) string { return e.d.FoldName(obj.key()) }

// sameName compares the names of two columns (or objects) as the
// database does.
func (e *Executor) sameName(a, b string) bool { return e.d.FoldName(a) == e.d.FoldName(b) }

// ours reports whether this migration's apply is recorded as the maker
// of obj (any migration's, for a helper), and when not, the note to keep
// it with.
func (e *Executor) ours(ctx context.Context, q sqlx.QueryerContext, migration string, obj *object) (bool, string, error) {
	var made struct {
		Ours    bool `db:"ours"`
		Pending bool `db:"pending"`
		Legacy  bool `db:"legacy"`
	}
	err := sqlx.GetContext(ctx, q, &made, e.d.DDLMade(),
		migration, e.key(obj), obj.anyMigration)
	if err != nil {
		return false, "", fmt.Errorf("read who made %s: %w", obj, err)
	}
	if made.Ours {
		return true, "", nil
	}
	if made.Pending && obj.kind == kIndex && e.d.ConcurrentIndexes() {
		// Only the intent of a concurrent build was recorded: the index
		// there is this build's when it is INVALID (the build cut off) or
		// has the operation's definition (built, not yet recorded). One of
		// another definition was made by another.
		state, err := e.indexState(ctx, q, obj)
		if err != nil {
			return false, "", err
		}
		if state == dialect.IndexInvalid || (state == dialect.IndexValid && len(obj.cols) > 0 && e.same(ctx, q, obj) == nil) {
			return true, "", nil
		}
	}
	if made.Legacy {
		return false, noteLegacy, nil
	}
	return false, noteNotOurs, nil
}

func (e *Executor) try(ctx context.Context, r run) (skipped bool, note string, err error) {
	st := r.st
	conn, err := e.db.Connx(ctx)
	if err != nil {
		return false, "", err
	}
	defer conn.Close()
	hook := func(fn func(op, step int) error) error {
		if fn == nil {
			return nil
		}
		return fn(r.op, r.step)
	}
	if st.NoTx {
		// Session settings on this connection, reset before it goes back
		// to the pool.
		if err := e.d.SetDDLTimeouts(ctx, conn, e.lockTimeout, e.statementTimeout, false); err != nil {
			return false, "", err
		}
		defer e.d.ResetTimeouts(context.WithoutCancel(ctx), conn) //nolint:errcheck // best effort
		if st.creates != nil {
			return e.tryCreateNoTx(ctx, conn, r, hook)
		}
		o, err := e.decide(ctx, conn, r)
		if err != nil {
			return false, "", err
		}
		if !o.skipped {
			if st.Index != "" {
				if err := e.d.DropInvalidIndex(ctx, conn, ident.Table{Schema: st.IndexSchema, Name: st.Index}); err != nil {
					return false, "", err
				}
			}
			if _, err := conn.ExecContext(ctx, st.SQL); err != nil {
				return false, "", err
			}
			if err := hook(e.onStatement); err != nil {
				return false, "", err
			}
		}
		return o.skipped, o.note, e.recordTx(ctx, conn, r, o)
	}
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return false, "", err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if err := e.d.SetDDLTimeouts(ctx, tx, e.lockTimeout, e.statementTimeout, true); err != nil {
		return false, "", err
	}
	o, err := e.decide(ctx, tx, r)
	if err != nil {
		return false, "", err
	}
	// Recorded first, in the statement's own transaction: the record of
	// what it made commits with it or not at all.
	if err := e.record(ctx, tx, r, o); err != nil {
		return false, "", err
	}
	if !o.skipped {
		if err := hook(e.onIntent); err != nil {
			return false, "", err
		}
		if _, err := tx.ExecContext(ctx, cmp.Or(st.strict, st.SQL)); err != nil {
			return false, "", err
		}
		if err := hook(e.onStatement); err != nil {
			return false, "", err
		}
	}
	return o.skipped, o.note, tx.Commit()
}

// recordTx records a step of a statement that ran outside a transaction,
// in a transaction of its own: the record and the ownership it moves
// commit together. (A run cut off between the statement and this finds,
// resumed, what the statement made or dropped: a drop's object is gone,
// so the apply's step that made it runs again.)
func (e *Executor) recordTx(ctx context.Context, conn *sqlx.Conn, r run, o outcome) error {
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if err := e.record(ctx, tx, r, o); err != nil {
		return err
	}
	return tx.Commit()
}

// decide says whether the statement of r runs, on q (the statement's
// transaction when it has one): skipped when its effect is there already,
// or when what it drops or changes is not this migration's; an object it
// makes that is there already with another definition is refused.
func (e *Executor) decide(ctx context.Context, q sqlx.QueryerContext, r run) (outcome, error) {
	st := r.st
	o := outcome{created: sql.NullBool{Valid: true}}
	skip, err := e.exists(ctx, q, st)
	if err != nil {
		return o, err
	}
	o.skipped = skip
	if st.creates != nil {
		o.created = sql.NullBool{Valid: true, Bool: !skip}
		if skip {
			// Skipped because its object is there: not this run's (a
			// statement in a transaction leaves no trace of an attempt
			// cut off), so it must be what the operation makes.
			found, err := e.found(ctx, q, st.creates)
			if err != nil {
				return o, err
			}
			if found {
				if err := e.same(ctx, q, st.creates); err != nil {
					return o, err
				}
			}
		}
	}
	for _, obj := range []*object{st.drops, st.needs} {
		if obj == nil || o.skipped {
			continue
		}
		ours, note, err := e.ours(ctx, q, r.migration, obj)
		if err != nil {
			return o, err
		}
		if ours {
			continue
		}
		if st.creates != nil {
			// It would take over an object this migration did not make.
			return o, fmt.Errorf("%w: %s is there, not made by this migration, and the operation would take it over", ErrExists, obj)
		}
		o.skipped, o.note = true, note
	}
	if o.note == "" {
		o.note = st.Note
	}
	return o, nil
}

// tryCreateNoTx runs a statement that makes an object and cannot run in a
// transaction (CREATE INDEX CONCURRENTLY). Before it runs, a pending step
// records that the object was not there; so when a run cut off is
// resumed, the object there with a pending step is this migration's (it
// was made, or half made, by the cut-off attempt), and there without one
// was there before.
func (e *Executor) tryCreateNoTx(ctx context.Context, conn *sqlx.Conn, r run, hook func(func(int, int) error) error) (bool, string, error) {
	st, obj := r.st, r.st.creates
	var pending bool
	if err := conn.GetContext(ctx, &pending, e.d.DDLPendingCreated(), r.migration, r.direction, r.op, r.step); err != nil {
		return false, "", fmt.Errorf("read DDL steps: %w", err)
	}
	state, err := e.indexState(ctx, conn, obj)
	if err != nil {
		return false, "", err
	}
	done := outcome{skipped: true, created: sql.NullBool{Valid: true, Bool: pending}, note: st.Note}
	switch {
	case state == dialect.IndexValid && pending:
		// Built by the attempt cut off before it was recorded, if it is
		// what the operation builds: one of another definition was made
		// by another (a build of this migration's has its definition).
		if err := e.same(ctx, conn, obj); err != nil {
			return false, "", err
		}
		return true, done.note, e.recordTx(ctx, conn, r, done)
	case state == dialect.IndexValid:
		if err := e.same(ctx, conn, obj); err != nil {
			return false, "", err
		}
		return true, done.note, e.recordTx(ctx, conn, r, done)
	case state == dialect.IndexInvalid && !pending:
		return false, "", fmt.Errorf("%w: %s is there, INVALID (a failed build), and was not made by this migration: drop it or build it first", ErrExists, obj)
	case state == dialect.IndexInvalid:
		// Left by this migration's failed build: dropped, and built again.
		if err := e.d.DropInvalidIndex(ctx, conn, ident.Table{Schema: st.IndexSchema, Name: st.Index}); err != nil {
			return false, "", err
		}
	case state == dialect.IndexOther:
		return false, "", fmt.Errorf("%w: %s: a relation of that name is there and is not that table's index", ErrExists, obj)
	}
	if !pending {
		if err := e.recordTx(ctx, conn, r, outcome{created: sql.NullBool{Valid: true, Bool: true}, pending: true}); err != nil {
			return false, "", err
		}
	}
	if err := hook(e.onIntent); err != nil {
		return false, "", err
	}
	if _, err := conn.ExecContext(ctx, cmp.Or(st.strict, st.SQL)); err != nil {
		if duplicate(err) {
			// Made by another since the check: not this build's. The
			// intent is voided, so the retry compares what is there and
			// takes it, if at all, as found.
			if verr := e.recordTx(ctx, conn, r, outcome{created: sql.NullBool{Valid: true}, pending: true}); verr != nil {
				return false, "", errors.Join(err, verr)
			}
		}
		return false, "", err
	}
	if err := hook(e.onStatement); err != nil {
		return false, "", err
	}
	made := outcome{created: sql.NullBool{Valid: true, Bool: true}, note: st.Note}
	return false, made.note, e.recordTx(ctx, conn, r, made)
}

// exists reports whether st's effect is already there, by its Exists
// query, its column guard, or the object it makes.
func (e *Executor) exists(ctx context.Context, q sqlx.QueryerContext, st Statement) (bool, error) {
	if st.column != nil {
		cols, err := e.d.Columns(ctx, q, st.column.table)
		if err != nil {
			return false, fmt.Errorf("check whether applied: %w", err)
		}
		has := slices.ContainsFunc(cols, func(c dialect.Column) bool { return e.sameName(c.Name, st.column.name) })
		return has == st.column.present, nil
	}
	if st.guard != nil {
		c, err := e.constraints()
		if err != nil {
			return false, err
		}
		done, err := c.Guard(ctx, q, st.guard.guard, st.guard.table, st.guard.constraint, st.guard.column)
		if err != nil {
			return false, fmt.Errorf("check whether applied: %w", err)
		}
		return done, nil
	}
	if st.Exists == "" {
		if st.creates != nil {
			return e.found(ctx, q, st.creates)
		}
		return false, nil
	}
	var done bool
	if err := sqlx.GetContext(ctx, q, &done, st.Exists, st.ExistsArgs...); err != nil {
		return false, fmt.Errorf("check whether applied: %w", err)
	}
	return done, nil
}

// indexOf is obj's index, in its table's schema.
func indexOf(obj *object) ident.Table { return ident.Table{Schema: obj.table.Schema, Name: obj.name} }

// indexState reads the state of obj, an index.
func (e *Executor) indexState(ctx context.Context, q sqlx.QueryerContext, obj *object) (dialect.IndexState, error) {
	state, err := e.d.IndexState(ctx, q, indexOf(obj), obj.table)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", obj, err)
	}
	return state, nil
}

// found reports whether obj, or anything of its name where it would be,
// is there.
func (e *Executor) found(ctx context.Context, q sqlx.QueryerContext, obj *object) (bool, error) {
	var found bool
	var err error
	switch {
	case obj.kind == kColumn:
		var cols []dialect.Column
		cols, err = e.d.Columns(ctx, q, obj.table)
		found = slices.ContainsFunc(cols, func(c dialect.Column) bool { return e.sameName(c.Name, obj.name) })
	case obj.kind == kTable:
		found, err = e.d.RelationExists(ctx, q, obj.table, obj.table.Name)
	case obj.kind == kIndex:
		found, err = e.d.RelationExists(ctx, q, obj.table, obj.name)
	case obj.kind == kNotNull:
		var c dialect.Constraints
		if c, err = e.constraints(); err == nil {
			found, err = c.Guard(ctx, q, dialect.GuardNamedOrNotNull, obj.table, obj.constraint, obj.name)
		}
	default: // a constraint
		var c dialect.Constraints
		if c, err = e.constraints(); err == nil {
			found, err = c.Guard(ctx, q, dialect.GuardNamed, obj.table, obj.name, "")
		}
	}
	if err != nil {
		return false, fmt.Errorf("check whether %s is there: %w", obj, err)
	}
	return found, nil
}

// same checks that obj, found there, is what the operation makes, and
// returns an error wrapping [ErrExists] that says what differs when not.
// Definitions are compared as PostgreSQL's parser reads them (the
// catalog's rendering against the operation's SQL), so a difference of
// spelling only (int and integer, a cast the catalog adds to a constant)
// is no difference; one the comparison cannot see through (IN written as
// = ANY) is refused, never taken as done.
func (e *Executor) same(ctx context.Context, q sqlx.QueryerContext, obj *object) error {
	differs := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s is there, not made by this migration, and %s", ErrExists, obj, fmt.Sprintf(format, args...))
	}
	switch obj.kind {
	case kColumn:
		have, err := e.d.ColumnShape(ctx, q, obj.table, obj.name)
		if err != nil {
			return fmt.Errorf("read %s: %w", obj, err)
		}
		if len(have) != 1 {
			return differs("cannot be read")
		}
		if !sameType(have[0].Type, obj.typ) {
			return differs("is of type %s, not %s", have[0].Type, obj.typ)
		}
		if have[0].HasDefault != obj.hasDefault {
			return differs("has a default: %t, not %t (the default's expression itself is not compared)", have[0].HasDefault, obj.hasDefault)
		}
		if have[0].NotNull {
			return differs("is NOT NULL, not nullable")
		}
		if have[0].Collation.Valid {
			return differs("has the collation %q, not its type's", have[0].Collation.String)
		}
	case kTable:
		notTable, err := e.d.IsTable(ctx, q, obj.table)
		if err != nil {
			return fmt.Errorf("read %s: %w", obj, err)
		}
		if notTable != "" {
			return differs("is %s, not a table", notTable)
		}
		cols, err := e.d.Columns(ctx, q, obj.table)
		if err != nil {
			return err
		}
		want, err := columnDefs(obj.columns)
		if err != nil {
			return differs("its columns cannot be compared: %v", err)
		}
		var have, wanted []string
		for _, c := range cols {
			have = append(have, c.Name+" "+c.Type)
		}
		for _, c := range want {
			wanted = append(wanted, c.name+" "+c.typ)
		}
		if len(cols) != len(want) {
			return differs("has the columns %q, not %q", have, wanted)
		}
		for i, c := range cols {
			if !e.sameName(c.Name, want[i].name) || !sameTypeName(typeNameOf(c.Type), want[i].tn) {
				return differs("has the columns %q, not %q", have, wanted)
			}
		}
	case kIndex:
		def, err := e.d.IndexDef(ctx, q, indexOf(obj), obj.table)
		if err != nil {
			return fmt.Errorf("read %s: %w", obj, err)
		}
		if len(def) != 1 || !def[0].OnTable {
			return differs("is not an index of that table")
		}
		if why := sameIndex(def[0].Def, obj); why != "" {
			return differs("is %s: %s", def[0].Def, why)
		}
	case kCheck, kForeignKey, kUnique:
		c, err := e.constraints()
		if err != nil {
			return err
		}
		have, err := c.ConstraintShape(ctx, q, obj.table, obj.name, obj.cols, obj.ref, obj.refCols, obj.cascade)
		if err != nil {
			return fmt.Errorf("read %s: %w", obj, err)
		}
		want := map[string]dialect.ConstraintKind{kCheck: dialect.CheckConstraint, kForeignKey: dialect.ForeignKeyConstraint,
			kUnique: dialect.UniqueConstraint}[obj.kind]
		if have.Kind != want {
			return differs("is %s", have.Def)
		}
		if !have.Same {
			return differs("is %s", have.Def)
		}
		if obj.kind == kCheck {
			if why := sameCheck(have.Def, obj.expr); why != "" {
				return differs("is %s: %s", have.Def, why)
			}
		}
		if obj.kind == kUnique {
			// Its index, whole (NULLS NOT DISTINCT, INCLUDE, a predicate).
			if why := sameIndex(have.Index, &object{cols: obj.cols, unique: true}); why != "" {
				return differs("is %s on the index %s: %s", have.Def, have.Index, why)
			}
		}
	case kNotNull:
		// A constraint of the operation's name must be the column's NOT
		// NULL (from 18; its validation is the next step); any other NOT
		// NULL constraint of the column (18) must be validated already:
		// this migration does not validate what it did not name.
		c, err := e.constraints()
		if err != nil {
			return err
		}
		wrong, err := c.NotNullConflicts(ctx, q, obj.table, obj.name, obj.constraint)
		if err != nil {
			return fmt.Errorf("read %s: %w", obj, err)
		}
		if len(wrong) > 0 {
			return differs("the column has the constraint %s, not a validated NOT NULL", strings.Join(wrong, ", "))
		}
	}
	return nil
}

// constraints is the executor's dialect's reads of constraints: none
// where DDL adds no constraint to an existing table.
func (e *Executor) constraints() (dialect.Constraints, error) {
	c, ok := e.d.(dialect.Constraints)
	if !ok {
		return nil, fmt.Errorf("%w: %s adds no constraint to an existing table", ErrUnsupported, e.d)
	}
	return c, nil
}

// columnDef is one column of a table definition.
type columnDef struct {
	name, typ string
	tn        *pg.TypeName
}

// columnDefs reads the columns of a CREATE TABLE column list, in order.
func columnDefs(columns string) ([]columnDef, error) {
	res, err := fragment.Parse("CREATE TABLE t (" + columns + ")")
	if err != nil {
		return nil, err
	}
	var out []columnDef
	for _, el := range res.GetStmts()[0].GetStmt().GetCreateStmt().GetTableElts() {
		if cd := el.GetColumnDef(); cd != nil {
			out = append(out, columnDef{name: cd.Colname, typ: typeString(cd.TypeName), tn: cd.TypeName})
		}
	}
	return out, nil
}

// typeString names a parsed type for an error message.
func typeString(tn *pg.TypeName) string {
	var names []string
	for _, n := range tn.GetNames() {
		names = append(names, n.GetString_().GetSval())
	}
	return strings.Join(names, ".")
}

// typeNameOf parses a type as it follows a column's name; nil when it
// does not parse.
func typeNameOf(typ string) *pg.TypeName {
	res, err := fragment.Parse("CREATE TABLE t (c " + typ + ")")
	if err != nil || len(res.GetStmts()) != 1 {
		return nil
	}
	elts := res.GetStmts()[0].GetStmt().GetCreateStmt().GetTableElts()
	if len(elts) != 1 {
		return nil
	}
	return elts[0].GetColumnDef().GetTypeName()
}

func sameType(have, want string) bool { return sameTypeName(typeNameOf(have), typeNameOf(want)) }

// sameTypeName compares two parsed types: pg_catalog's types by their
// internal names (int and integer are int4), a serial as the integer it
// is stored as, array bounds as PostgreSQL keeps them (not at all).
func sameTypeName(a, b *pg.TypeName) bool {
	if a == nil || b == nil {
		return false
	}
	norm := func(tn *pg.TypeName) *pg.TypeName {
		tn = proto.Clone(tn).(*pg.TypeName)
		clearLocations(tn.ProtoReflect())
		if len(tn.Names) == 2 && tn.Names[0].GetString_().GetSval() == "pg_catalog" {
			tn.Names = tn.Names[1:]
		}
		if len(tn.Names) == 1 {
			serial := map[string]string{"serial": "int4", "serial4": "int4", "bigserial": "int8", "serial8": "int8", "smallserial": "int2", "serial2": "int2"}
			if s, ok := serial[strings.ToLower(tn.Names[0].GetString_().GetSval())]; ok {
				tn.Names = []*pg.Node{pg.MakeStrNode(s)}
			}
		}
		for i := range tn.ArrayBounds {
			tn.ArrayBounds[i] = pg.MakeIntNode(-1)
		}
		tn.TypeOid, tn.Typemod = 0, 0
		return tn
	}
	return proto.Equal(norm(a), norm(b))
}

// sameIndex compares an index's definition, as the catalog renders it,
// with what obj builds, and says how it differs ("" when it does not).
func sameIndex(def string, obj *object) string {
	stmt := func(sql string) *pg.IndexStmt {
		res, err := fragment.Parse(sql)
		if err != nil || len(res.GetStmts()) != 1 {
			return nil
		}
		is := res.GetStmts()[0].GetStmt().GetIndexStmt()
		if is == nil {
			return nil
		}
		is.Idxname, is.Relation, is.Concurrent, is.IfNotExists = "", nil, false, false
		is.AccessMethod = cmp.Or(is.AccessMethod, "btree")
		is.WhereClause = normalExpr(is.WhereClause)
		clearLocations(is.ProtoReflect())
		return is
	}
	have := stmt(def)
	if have == nil {
		return "its definition cannot be compared"
	}
	cs, _ := cols(obj.cols)
	unique, where := "", ""
	if obj.unique {
		unique = "UNIQUE "
	}
	if obj.expr != "" {
		where = " WHERE " + obj.expr
	}
	want := stmt(fmt.Sprintf("CREATE %sINDEX i ON t (%s)%s", unique, cs, where))
	if want == nil || !proto.Equal(have, want) {
		return fmt.Sprintf("not UNIQUE %t on (%s)%s", obj.unique, cs, where)
	}
	return ""
}

// sameCheck compares a check constraint's definition, as the catalog
// renders it, with expr, and says how it differs ("" when it does not).
func sameCheck(def, expr string) string {
	check := func(sql string) *pg.Node {
		res, err := fragment.Parse(sql)
		if err != nil || len(res.GetStmts()) != 1 {
			return nil
		}
		cmds := res.GetStmts()[0].GetStmt().GetAlterTableStmt().GetCmds()
		if len(cmds) != 1 {
			return nil
		}
		c := cmds[0].GetAlterTableCmd().GetDef().GetConstraint()
		if c.GetContype() != pg.ConstrType_CONSTR_CHECK {
			return nil
		}
		return normalExpr(c.RawExpr)
	}
	have, want := check("ALTER TABLE t ADD CONSTRAINT c "+def), check("ALTER TABLE t ADD CONSTRAINT c CHECK ("+expr+")")
	if have == nil || want == nil || !proto.Equal(have, want) {
		return "not CHECK (" + expr + ")"
	}
	return ""
}

// normalExpr returns a copy of an expression without its source offsets
// and without the casts the catalog adds to constants ('EUR'::text).
func normalExpr(n *pg.Node) *pg.Node {
	if n == nil {
		return nil
	}
	n = proto.Clone(n).(*pg.Node)
	uncast(n.ProtoReflect())
	clearLocations(n.ProtoReflect())
	return n
}

// uncast replaces, under m, each cast of a constant by the constant.
func uncast(m protoreflect.Message) {
	constant := func(v protoreflect.Value) (protoreflect.Value, bool) {
		n, ok := v.Message().Interface().(*pg.Node)
		if !ok || n.GetTypeCast() == nil || n.GetTypeCast().GetArg().GetAConst() == nil {
			return v, false
		}
		return protoreflect.ValueOfMessage(n.GetTypeCast().GetArg().ProtoReflect()), true
	}
	var fields []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.Message() != nil && !fd.IsMap() {
			fields = append(fields, fd)
		}
		return true
	})
	for _, fd := range fields {
		if fd.IsList() {
			l := m.Mutable(fd).List()
			for i := range l.Len() {
				if c, ok := constant(l.Get(i)); ok {
					l.Set(i, c)
				}
				uncast(l.Get(i).Message())
			}
			continue
		}
		if c, ok := constant(m.Get(fd)); ok {
			m.Set(fd, c)
		}
		uncast(m.Mutable(fd).Message())
	}
}
