package backfill

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
)

// Key is the value of a row's primary key, one text per key column, as the
// database prints it. Keys round-trip through text, so any key type that
// casts to and from text works: integers, UUIDs, text, dates.
type Key []string

// plan is a job resolved against the catalog: every statement it runs.
type plan struct {
	d        dialect.Dialect
	table    ident.Table
	cols     []dialect.Column // the table's columns, as the catalog read them
	keyCols  []string         // unquoted, index order
	keyTypes []string         // each key column's type, as the catalog names it
	keyList  string           // "k1", "k2"
	keyText  string           // "k1" as text, "k2" as text
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
	p.keyList = strings.Join(quoted, ", ")
	texts := make([]string, len(quoted))
	for i, k := range quoted {
		// Aliased, so that ORDER BY names the column and not this text.
		texts[i] = d.Text(k) + " AS schemashift_k" + strconv.Itoa(i+1)
	}
	p.keyText = strings.Join(texts, ", ")
	if err := p.checkFilled(j); err != nil {
		return nil, err
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

// args collects bind parameters and numbers them.
type args struct{ vals []any }

func (a *args) add(v any) string {
	a.vals = append(a.vals, v)
	return "$" + strconv.Itoa(len(a.vals))
}

// keyRow renders k as a row of typed parameters.
func (p *plan) keyRow(a *args, k Key) string {
	parts := make([]string, len(k))
	for i, v := range k {
		parts[i] = p.d.Typed(a.add(v), p.keyTypes[i])
	}
	return p.d.Row(parts...)
}

// span is a range of keys: after Lo (exclusive) up to Hi (inclusive); a nil
// bound is open.
type span struct {
	Lo Key `json:"lo,omitempty"`
	Hi Key `json:"hi,omitempty"`
}

// where renders the predicate of a span. A span is always two bounds,
// never a list of keys: a statement's size does not grow with its rows.
func (p *plan) where(a *args, s span) string {
	var conds []string
	if s.Lo != nil {
		conds = append(conds, p.d.Row(p.keyList)+" > "+p.keyRow(a, s.Lo))
	}
	if s.Hi != nil {
		conds = append(conds, p.d.Row(p.keyList)+" <= "+p.keyRow(a, s.Hi))
	}
	if len(conds) == 0 {
		return "true"
	}
	return strings.Join(conds, " AND ")
}

// boundary finds the key n rows after lo (the last key of a chunk of n
// rows), or nil when fewer rows remain.
func (p *plan) boundary(ctx context.Context, q sqlx.QueryerContext, lo Key, n int) (Key, error) {
	return p.boundaryWithin(ctx, q, span{Lo: lo}, n)
}

// boundaryWithin finds the key n rows into s, or nil when s holds fewer.
func (p *plan) boundaryWithin(ctx context.Context, q sqlx.QueryerContext, s span, n int) (Key, error) {
	a := &args{}
	where := p.where(a, s)
	query := "SELECT " + p.keyText + " FROM " + p.table.Quoted() + " WHERE " + where +
		" ORDER BY " + p.keyList + " LIMIT 1 OFFSET " + a.add(n-1)
	return scanKey(ctx, q, len(p.keyCols), query, a.vals...)
}

// count counts the rows of a span.
func (p *plan) count(ctx context.Context, q sqlx.QueryerContext, s span) (int64, error) {
	a := &args{}
	var n int64
	err := sqlx.GetContext(ctx, q, &n, "SELECT count(*) FROM "+p.table.Quoted()+" WHERE "+p.where(a, s), a.vals...)
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

// setShape is what a Set job's statements compare, rendered once per
// statement: the new columns against their expressions, and what the job
// declares of the rows written through the new path.
type setShape struct {
	differs  string   // the new columns differ from their expressions
	unfilled string   // no one has written the row's new shape: every new column is NULL (and, with Down, its old shape is not Down of them)
	newPath  string   // the old columns equal Down's expressions: a new-path write ("" without Down)
	drifted  string   // a filled row that differs was changed behind the adapters' back ("" when that cannot be told)
	sets     []string // new column = its expression
	downSets []string // old column = its Down expression (with Down)
	cols     []string // quoted
	exprs    []string
}

func (p *plan) setShape(j Job) (setShape, error) {
	var sh setShape
	var nulls []string
	for _, as := range j.Set {
		c, err := ident.Quote(as.Column)
		if err != nil {
			return sh, err
		}
		sh.cols, sh.exprs = append(sh.cols, c), append(sh.exprs, "("+as.Expr+")")
		sh.sets = append(sh.sets, c+" = ("+as.Expr+")")
		nulls = append(nulls, c+" IS NULL")
	}
	sh.differs = p.d.Row(sh.cols...) + " IS DISTINCT FROM " + p.d.Row(sh.exprs...)
	sh.unfilled = "(" + strings.Join(nulls, " AND ") + ")"
	if len(j.Down) > 0 {
		old, down, err := p.downRow(j.Down, func(q string, _ int) string { return q })
		if err != nil {
			return sh, err
		}
		exprs, _ := p.downExprs(j.Down) // checked by downRow
		for i, a := range j.Down {
			q, _ := ident.Quote(a.Column)
			sh.downSets = append(sh.downSets, q+" = "+exprs[i])
		}
		sh.newPath = old + " IS NOT DISTINCT FROM " + down
		sh.drifted = old + " IS DISTINCT FROM " + down
		// A new-path write may set every new column NULL; Down tells it
		// from a row no one wrote, where it holds.
		sh.unfilled = "(" + sh.unfilled + " AND " + sh.drifted + ")"
	} else if j.Derived {
		sh.drifted = "true"
	}
	return sh, nil
}

// downRow renders Down's expressions, each as the type of the old column
// it stands for, as a row; old is the row of those old columns, as
// qualify names each (given its quoted name and its position from 1).
func (p *plan) downRow(down []Assign, qualify func(quoted string, i int) string) (old, exprs string, err error) {
	vals, err := p.downExprs(down)
	if err != nil {
		return "", "", err
	}
	cols := make([]string, len(down))
	for i, a := range down {
		q, _ := ident.Quote(a.Column) // checked by downExprs
		cols[i] = qualify(q, i+1)
	}
	return p.d.Row(cols...), p.d.Row(vals...), nil
}

// downExprs is each of Down's expressions as the type of its old column.
func (p *plan) downExprs(down []Assign) ([]string, error) {
	vals := make([]string, len(down))
	for i, a := range down {
		c, ok := p.column(a.Column)
		if !ok {
			return nil, fmt.Errorf("down: %w: %s has no column %q", ErrInvalidJob, p.table, a.Column)
		}
		if _, err := ident.Quote(a.Column); err != nil {
			return nil, err
		}
		vals[i] = p.d.AsColumn("("+a.Expr+")", c.Type)
	}
	return vals, nil
}

// setStatement renders a Set job's chunk statement. It fills only the rows
// whose new columns are all NULL: a row written through the new path is
// never overwritten from the old shape. On PostgreSQL a row written while
// the chunk waits for its lock is checked again as written, and skipped.
func (p *plan) setStatement(j Job, a *args, s span) (string, error) {
	sh, err := p.setShape(j)
	if err != nil {
		return "", err
	}
	return "UPDATE " + p.table.Quoted() + " SET " + strings.Join(sh.sets, ", ") +
		" WHERE " + p.where(a, s) + " AND " + sh.unfilled + " AND " + sh.differs, nil
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
// exists is left as it is (ON CONFLICT DO NOTHING): it was written through
// the new path, or by an earlier chunk.
func (p *plan) intoStatement(j Job, a *args, s span) (string, error) {
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
		cols = append(cols, c)
		exprs = append(exprs, "("+as.Expr+")")
	}
	conflict, err := ident.QuoteAll(j.Into.Key)
	if err != nil {
		return "", err
	}
	return "INSERT INTO " + into.Quoted() + " (" + strings.Join(cols, ", ") + ")" +
		" SELECT " + strings.Join(exprs, ", ") + " FROM " + p.table.Quoted() +
		" WHERE " + p.where(a, s) + " ORDER BY " + p.keyList + p.d.ForUpdate() +
		" ON CONFLICT (" + strings.Join(conflict, ", ") + ") DO NOTHING", nil
}

// lockStatement renders a Go-mode chunk's read of its rows, locked: only
// the rows no one has filled (Fills all NULL, or no row in Check's table).
func (p *plan) lockStatement(j Job, a *args, s span) (string, error) {
	cols := []string{p.keyList}
	for _, c := range j.Columns {
		if contains(p.keyCols, c) {
			continue
		}
		q, err := ident.Quote(c)
		if err != nil {
			return "", err
		}
		cols = append(cols, q)
	}
	unfilled, err := p.goUnfilled(j)
	if err != nil {
		return "", err
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + p.table.Quoted() + " AS schemashift_s" +
		" WHERE " + p.where(a, s) + " AND " + unfilled + " ORDER BY " + p.keyList + p.d.ForUpdate(), nil
}

// goUnfilled is the predicate, over the walked table aliased
// schemashift_s, of a Go-mode job's rows that no one has filled.
func (p *plan) goUnfilled(j Job) (string, error) {
	if j.Check == nil {
		nulls := make([]string, len(j.Fills))
		for i, c := range j.Fills {
			q, err := ident.Quote(c)
			if err != nil {
				return "", err
			}
			nulls[i] = "schemashift_s." + q + " IS NULL"
		}
		return "(" + strings.Join(nulls, " AND ") + ")", nil
	}
	target, err := ident.ParseTable(j.Check.Table)
	if err != nil {
		return "", err
	}
	tk, err := p.moveKey(j.Check)
	if err != nil {
		return "", err
	}
	on := make([]string, len(tk))
	for i, k := range tk {
		dq, _ := ident.Quote(k)
		sq, _ := ident.Quote(p.keyCols[i])
		on[i] = "schemashift_d." + dq + " = schemashift_s." + sq
	}
	return "NOT EXISTS (SELECT 1 FROM " + target.Quoted() + " AS schemashift_d WHERE " + strings.Join(on, " AND ") + ")", nil
}

// lockSpan locks the walked table's rows of s in tx, in key order (on
// SQLite, tx holds the write lock already).
func (p *plan) lockSpan(ctx context.Context, tx *sqlx.Tx, s span) error {
	lock := p.d.ForUpdate()
	if lock == "" {
		return nil
	}
	a := &args{}
	_, err := tx.ExecContext(ctx, "SELECT 1 FROM "+p.table.Quoted()+" WHERE "+p.where(a, s)+" ORDER BY "+p.keyList+lock, a.vals...)
	return err
}

// scanRows reads a Go-mode chunk's rows, column name to value.
func scanRows(ctx context.Context, tx *sqlx.Tx, stmt string, vals []any) ([]map[string]any, error) {
	rows, err := tx.QueryxContext(ctx, stmt, vals...)
	if err != nil {
		return nil, err
	}
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
