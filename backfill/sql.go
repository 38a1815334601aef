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
	d        *dialect.Dialect
	table    ident.Table
	cols     []dialect.Column // the table's columns, as the catalog read them
	keyCols  []string         // unquoted, index order
	keyTypes []string         // each key column's type, as the catalog names it
	keyList  string           // "k1", "k2"
	keyText  string           // "k1" as text, "k2" as text
}

func resolve(ctx context.Context, d *dialect.Dialect, q sqlx.QueryerContext, j Job) (*plan, error) {
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
	return p, nil
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

// where renders the predicate of a span (or of an explicit key list).
func (p *plan) where(a *args, s span, keys []Key) string {
	if keys != nil {
		rows := make([]string, len(keys))
		for i, k := range keys {
			rows[i] = p.keyRow(a, k)
		}
		return p.d.Row(p.keyList) + " IN (" + strings.Join(rows, ", ") + ")"
	}
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
	a := &args{}
	where := p.where(a, span{Lo: lo}, nil)
	query := "SELECT " + p.keyText + " FROM " + p.table.Quoted() + " WHERE " + where +
		" ORDER BY " + p.keyList + " LIMIT 1 OFFSET " + a.add(n-1)
	return scanKey(ctx, q, len(p.keyCols), query, a.vals...)
}

// count counts the rows of a span.
func (p *plan) count(ctx context.Context, q sqlx.QueryerContext, s span) (int64, error) {
	a := &args{}
	var n int64
	err := sqlx.GetContext(ctx, q, &n, "SELECT count(*) FROM "+p.table.Quoted()+" WHERE "+p.where(a, s, nil), a.vals...)
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

// setStatement renders a Set job's chunk statement.
func (p *plan) setStatement(j Job, a *args, s span, keys []Key) (string, error) {
	cols := make([]string, len(j.Set))
	exprs := make([]string, len(j.Set))
	sets := make([]string, len(j.Set))
	for i, as := range j.Set {
		c, err := ident.Quote(as.Column)
		if err != nil {
			return "", err
		}
		cols[i], exprs[i] = c, "("+as.Expr+")"
		sets[i] = c + " = " + exprs[i]
	}
	return "UPDATE " + p.table.Quoted() + " SET " + strings.Join(sets, ", ") +
		" WHERE " + p.where(a, s, keys) +
		" AND " + p.d.Row(cols...) + " IS DISTINCT FROM " + p.d.Row(exprs...), nil
}

// intoStatement renders an Into job's chunk statement.
func (p *plan) intoStatement(j Job, a *args, s span, keys []Key) (string, error) {
	into, err := ident.ParseTable(j.Into.Table)
	if err != nil {
		return "", err
	}
	const target = "schemashift_target"
	var cols, exprs, updates, mine, theirs []string
	isKey := map[string]bool{}
	for _, k := range j.Into.Key {
		isKey[k] = true
	}
	for _, as := range j.Into.Columns {
		c, err := ident.Quote(as.Column)
		if err != nil {
			return "", err
		}
		cols = append(cols, c)
		exprs = append(exprs, "("+as.Expr+")")
		if !isKey[as.Column] {
			updates = append(updates, c+" = EXCLUDED."+c)
			mine = append(mine, target+"."+c)
			theirs = append(theirs, "EXCLUDED."+c)
		}
	}
	conflict, err := ident.QuoteAll(j.Into.Key)
	if err != nil {
		return "", err
	}
	return "INSERT INTO " + into.Quoted() + " AS " + target + " (" + strings.Join(cols, ", ") + ")" +
		" SELECT " + strings.Join(exprs, ", ") + " FROM " + p.table.Quoted() +
		" WHERE " + p.where(a, s, keys) + " ORDER BY " + p.keyList + p.d.ForUpdate() +
		" ON CONFLICT (" + strings.Join(conflict, ", ") + ") DO UPDATE SET " + strings.Join(updates, ", ") +
		" WHERE " + p.d.Row(mine...) + " IS DISTINCT FROM " + p.d.Row(theirs...), nil
}

// lockStatement renders a Go-mode chunk's read of its rows, locked.
func (p *plan) lockStatement(j Job, a *args, s span, keys []Key) (string, error) {
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
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + p.table.Quoted() +
		" WHERE " + p.where(a, s, keys) + " ORDER BY " + p.keyList + p.d.ForUpdate(), nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}
