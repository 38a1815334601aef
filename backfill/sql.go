package backfill

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
)

// Key is the value of a row's primary key, one text per key column, as the
// database prints it. Keys round-trip through text, so any key type that
// casts to and from text works: integers, UUIDs, text, dates.
type Key []string

// plan is a job resolved against the catalog: the parts of every
// statement it runs, which its dialect writes.
type plan struct {
	d        dialect.Dialect
	table    ident.Table
	t        dialect.BackfillTable // table, key and key types, quoted
	cols     []dialect.Column      // the table's columns, as the catalog read them
	keyCols  []string              // unquoted, index order
	keyTypes []string              // each key column's type, as the catalog names it
	// timing is how a chunk's statement is timed for the statistics
	// signal (see fill and timeBy), read from the catalog at New and
	// again as each Run starts. timedAs is the column a Go-mode chunk's
	// read of its rows reads the database's time as: schemashift_micros,
	// or with a number after it, so that it is none of the columns read.
	timing  atomic.Int32
	timedAs string
	// setJob says the job's statement updates its own table: one whose
	// table has rules cannot be timed by the database (see timeNone).
	setJob bool
}

// How a chunk's statement is timed for the statistics signal (see fill).
const (
	// timeClient: its time at the client, less a round trip; on a
	// database without statistics (where nothing reads it).
	timeClient int32 = iota
	// timeServer: by the database's clock, from the Execute message to
	// the end of its work.
	timeServer
	// timeNone: not at all (nothing taken off: it errs low); a Set job's
	// table has rules, which refuse an UPDATE inside a WITH.
	timeNone
)

// timeBy reads from the catalog how the chunk statements are timed (see
// the timing constants).
func (p *plan) timeBy(ctx context.Context, q sqlx.QueryerContext) error {
	stmt := p.d.BackfillRules()
	if stmt == "" {
		p.timing.Store(timeClient)
		return nil
	}
	var rules bool
	if err := sqlx.GetContext(ctx, q, &rules, stmt, p.table.Quoted()); err != nil {
		return fmt.Errorf("read the rules of %s: %w", p.table, err)
	}
	mode := timeServer
	if rules && p.setJob {
		mode = timeNone
	}
	p.timing.Store(mode)
	return nil
}

func resolve(ctx context.Context, d dialect.Dialect, q sqlx.QueryerContext, j Job) (*plan, error) {
	t, err := ident.ParseTable(j.Table)
	if err != nil {
		return nil, err
	}
	cols, err := d.Columns(ctx, q, t)
	if err != nil {
		return nil, fmt.Errorf("resolve table %s: %w", t, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("resolve table %s: %w: relation does not exist", t, ErrInvalidJob)
	}
	p := &plan{d: d, table: t, cols: cols}
	keys := j.Key
	if len(keys) == 0 {
		if keys = dialect.PrimaryKeyOf(cols); len(keys) == 0 {
			return nil, fmt.Errorf("resolve primary key of %s: %w: the table has no primary key; name one in Job.Key", t, ErrInvalidJob)
		}
	}
	for _, k := range keys {
		c, ok := p.column(k)
		if !ok {
			return nil, fmt.Errorf("resolve key column %q of %s: %w: no such column", k, t, ErrInvalidJob)
		}
		p.keyCols = append(p.keyCols, k)
		p.keyTypes = append(p.keyTypes, c.Type)
	}
	quoted, err := ident.QuoteAll(p.keyCols)
	if err != nil {
		return nil, err
	}
	p.t = dialect.BackfillTable{Name: t.Quoted(), Key: quoted, Types: p.keyTypes}
	if err := p.checkFilled(j); err != nil {
		return nil, err
	}
	p.setJob = len(j.Set) > 0
	if err := p.timeBy(ctx, q); err != nil {
		return nil, fmt.Errorf("resolve table %s: %w", t, err)
	}
	p.timedAs = "schemashift_micros"
	for n := 1; contains(j.Columns, p.timedAs) || contains(p.keyCols, p.timedAs); n++ {
		p.timedAs = fmt.Sprintf("schemashift_micros_%d", n)
	}
	return p, nil
}

// checkFilled refuses a job whose unfilled rows cannot be told: the
// columns a job fills in its own table are NULL until someone writes them,
// and a Go-mode move's target key copies the source key.
func (p *plan) checkFilled(j Job) error {
	fills := j.Fills
	for _, a := range j.Set {
		fills = append(fills, a.Column)
	}
	for _, f := range fills {
		c, ok := p.column(f)
		if !ok {
			return fmt.Errorf("resolve column %q of %s: %w: no such column", f, p.table, ErrInvalidJob)
		}
		if c.NotNull {
			return fmt.Errorf("resolve column %q of %s: %w: it is NOT NULL, but a row no one has written is told by the columns the job fills being NULL; add it nullable, and set NOT NULL after the backfill", f, p.table, ErrInvalidJob)
		}
	}
	if j.Func != nil && j.Check != nil {
		if _, err := p.moveKey(j.Check); err != nil {
			return fmt.Errorf("resolve %s: %w: %w", j.Check.Table, ErrInvalidJob, err)
		}
	}
	return nil
}

// column finds the table's column named name.
func (p *plan) column(name string) (dialect.Column, bool) {
	i := slices.IndexFunc(p.cols, func(c dialect.Column) bool { return c.Name == name })
	if i < 0 {
		return dialect.Column{}, false
	}
	return p.cols[i], true
}

// span is a range of keys: after Lo (exclusive) up to Hi (inclusive); a nil
// bound is open.
type span struct {
	Lo Key `json:"lo,omitempty"`
	Hi Key `json:"hi,omitempty"`
}

// bounds is s as a statement over it takes it: which bounds it has, and
// their key values, Lo's then Hi's. A span is always two bounds, never a
// list of keys: a statement's size does not grow with its rows.
func (s span) bounds() (dialect.BackfillSpan, []any) {
	var vals []any
	for _, k := range []Key{s.Lo, s.Hi} {
		for _, v := range k {
			vals = append(vals, v)
		}
	}
	return dialect.BackfillSpan{Lo: s.Lo != nil, Hi: s.Hi != nil}, vals
}

// boundary finds the key n rows after lo (the last key of a chunk of n
// rows), or nil when fewer rows remain.
func (p *plan) boundary(ctx context.Context, q sqlx.QueryerContext, lo Key, n int) (Key, error) {
	return p.boundaryWithin(ctx, q, span{Lo: lo}, n)
}

// boundaryWithin finds the key n rows into s, or nil when s holds fewer.
func (p *plan) boundaryWithin(ctx context.Context, q sqlx.QueryerContext, s span, n int) (Key, error) {
	shape, vals := s.bounds()
	return scanKey(ctx, q, len(p.keyCols), p.d.BackfillBoundary(p.t, shape), append(vals, n-1)...)
}

// count counts the rows of a span.
func (p *plan) count(ctx context.Context, q sqlx.QueryerContext, s span) (int64, error) {
	shape, vals := s.bounds()
	var n int64
	err := sqlx.GetContext(ctx, q, &n, p.d.BackfillCount(p.t, shape), vals...)
	return n, err
}

func scanKey(ctx context.Context, q sqlx.QueryerContext, n int, query string, vals ...any) (Key, error) {
	rows, err := q.QueryContext(ctx, query, vals...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	k := make(Key, n)
	dest := make([]any, n)
	for i := range k {
		dest[i] = &k[i]
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, err
	}
	return k, rows.Close()
}

// set is a Set job's parts, quoted, for the statements that fill and
// verify it.
func (p *plan) set(j Job) (dialect.BackfillSet, error) {
	set := dialect.BackfillSet{Derived: j.Derived}
	for _, as := range j.Set {
		c, err := ident.Quote(as.Column)
		if err != nil {
			return set, err
		}
		set.Columns, set.Exprs = append(set.Columns, c), append(set.Exprs, as.Expr)
	}
	down, err := p.down(j.Down)
	set.Down = down
	return set, err
}

// down is each of Down's old columns, quoted, with its expression and its
// type.
func (p *plan) down(down []Assign) ([]dialect.BackfillDown, error) {
	var out []dialect.BackfillDown
	for _, a := range down {
		c, ok := p.column(a.Column)
		if !ok {
			return nil, fmt.Errorf("down: %w: %s has no column %q", ErrInvalidJob, p.table, a.Column)
		}
		q, err := ident.Quote(a.Column)
		if err != nil {
			return nil, err
		}
		out = append(out, dialect.BackfillDown{Column: q, Expr: a.Expr, Type: c.Type})
	}
	return out, nil
}

// setStatement renders a Set job's chunk statement. It fills only the rows
// whose new columns are all NULL: a row written through the new path is
// never overwritten from the old shape. On PostgreSQL a row written while
// the chunk waits for its lock is checked again as written, and skipped.
func (p *plan) setStatement(j Job, s dialect.BackfillSpan) (string, error) {
	set, err := p.set(j)
	if err != nil {
		return "", err
	}
	return p.d.BackfillSetChunk(p.t, s, set), nil
}

// moveKey names, for each key column of the walked table, the column of
// the table moved to that copies it (the Into column whose expression is
// the key column's name).
func (p *plan) moveKey(into *Into) ([]string, error) {
	var out []string
	for _, k := range p.keyCols {
		quoted, _ := ident.Quote(k)
		found := ""
		for _, a := range into.Columns {
			e := strings.TrimSpace(a.Expr)
			if contains(into.Key, a.Column) && (e == k || e == quoted) {
				found = a.Column
			}
		}
		if found == "" {
			return nil, fmt.Errorf("%w: no key column of %s is a copy of source key column %q", ErrNotVerifiable, into.Table, k)
		}
		out = append(out, found)
	}
	return out, nil
}

// intoStatement renders an Into job's chunk statement. A target row that
// exists is left as it is: it was written through the new path, or by an
// earlier chunk.
func (p *plan) intoStatement(j Job, s dialect.BackfillSpan) (string, error) {
	into, err := ident.ParseTable(j.Into.Table)
	if err != nil {
		return "", err
	}
	var cols, exprs []string
	for _, as := range j.Into.Columns {
		c, err := ident.Quote(as.Column)
		if err != nil {
			return "", err
		}
		cols, exprs = append(cols, c), append(exprs, as.Expr)
	}
	conflict, err := ident.QuoteAll(j.Into.Key)
	if err != nil {
		return "", err
	}
	return p.d.BackfillInto(p.t, s, into.Quoted(), cols, exprs, conflict), nil
}

// lockStatement renders a Go-mode chunk's read of its rows, locked: only
// the rows no one has filled (Fills all NULL, or no row in Check's table),
// and on PostgreSQL p.timedAs, each row's time into the
// statement by the database's clock (see fill), which fill takes out of
// the rows before Func sees them.
func (p *plan) lockStatement(j Job, s dialect.BackfillSpan) (string, error) {
	var g dialect.BackfillGo
	for _, c := range j.Columns {
		if contains(p.keyCols, c) {
			continue
		}
		q, err := ident.Quote(c)
		if err != nil {
			return "", err
		}
		g.Columns = append(g.Columns, q)
	}
	if p.timing.Load() == timeServer {
		g.Timed = p.timedAs
	}
	var err error
	if j.Check == nil {
		if g.Fills, err = ident.QuoteAll(j.Fills); err != nil {
			return "", err
		}
		return p.d.BackfillGoRows(p.t, s, g), nil
	}
	target, err := ident.ParseTable(j.Check.Table)
	if err != nil {
		return "", err
	}
	tk, err := p.moveKey(j.Check)
	if err != nil {
		return "", err
	}
	g.Check = target.Quoted()
	if g.CheckKey, err = ident.QuoteAll(tk); err != nil {
		return "", err
	}
	return p.d.BackfillGoRows(p.t, s, g), nil
}

// lockSpan locks the walked table's rows of s in tx, in key order (where
// the dialect has a statement for it: on SQLite, tx holds the write lock
// already).
func (p *plan) lockSpan(ctx context.Context, tx *sqlx.Tx, s span) error {
	shape, vals := s.bounds()
	stmt := p.d.BackfillLock(p.t, shape)
	if stmt == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, stmt, vals...)
	return err
}

// scanRows reads a Go-mode chunk's rows, column name to value.
func scanRows(ctx context.Context, tx *sqlx.Tx, stmt string, vals []any) ([]map[string]any, error) {
	return scanRowsTimed(ctx, tx, stmt, vals, func() {})
}

// scanRowsTimed is scanRows, calling answered once the statement's
// first answer came back, before any row is decoded.
func scanRowsTimed(ctx context.Context, tx *sqlx.Tx, stmt string, vals []any, answered func()) ([]map[string]any, error) {
	rows, err := tx.QueryxContext(ctx, stmt, vals...)
	if err != nil {
		return nil, err
	}
	answered()
	defer rows.Close()
	var batch []map[string]any
	for rows.Next() {
		m := map[string]any{}
		if err := rows.MapScan(m); err != nil {
			return nil, err
		}
		batch = append(batch, m)
	}
	return batch, rows.Err()
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}
