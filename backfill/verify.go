package backfill

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/schemashift/schemashift/internal/ident"
)

// Redacted replaces the values of sensitive columns in a report.
const Redacted = "[redacted]"

// ErrNotVerifiable: the job's shape cannot be compared inside the database
// (a Go-mode job, or an Into whose key is not a copy of the source key).
var ErrNotVerifiable = errors.New("backfill job cannot be verified in the database")

// VerifyOptions are the settings of one verification.
type VerifyOptions struct {
	// ChunkRows is how many source rows one comparison covers (default
	// 100000).
	ChunkRows int
	// MaxKeys bounds how many divergent rows are listed (default 1000); all
	// are counted.
	MaxKeys int
	// Sensitive names columns whose values are replaced by [Redacted].
	Sensitive []string
	// Parallel is how many chunks are compared at once (default 2).
	Parallel int
	// Repair re-runs the backfill over exactly the divergent rows found, then
	// checks them again.
	Repair bool
}

// Field is one column of a divergent row: the value the backfill would
// write (Want) against the value stored (Got).
type Field struct {
	Column string
	Want   string
	Got    string
}

// Divergence is one row whose two representations disagree.
type Divergence struct {
	Key    Key
	Fields []Field
}

// Report is the outcome of a verification.
type Report struct {
	Job       string
	Compared  int64 // source rows compared
	Chunks    int   // comparisons made (bisections included)
	Divergent int64 // rows that disagree, all counted
	Diverged  []Divergence
	Repaired  int64 // rows the repair changed
	// Remaining counts the listed rows still divergent after the repair.
	Remaining int64
	Duration  time.Duration
	repaired  bool
}

// Passed reports whether nothing diverged (after repair, if one ran).
func (r Report) Passed() bool { return r.stillDivergent() == 0 }

// stillDivergent counts the rows divergent after the repair, if one ran:
// the listed rows were rechecked, the unlisted ones not repaired.
func (r Report) stillDivergent() int64 {
	if !r.repaired {
		return r.Divergent
	}
	return r.Divergent - int64(len(r.Diverged)) + r.Remaining
}

// Verify compares the old and the new representation of every row, in
// chunks, inside the database, and records the outcome in the job's state
// (a failed verification shows in [Progress].Verify). Same-table jobs
// count the rows whose columns differ from their expressions; moves to
// another table compare row counts and checksums per chunk and bisect a
// chunk that differs down to its rows.
func (b *Backfill) Verify(ctx context.Context, o VerifyOptions) (Report, error) {
	start := time.Now()
	if o.ChunkRows <= 0 {
		o.ChunkRows = 100000
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 1000
	}
	if o.Parallel <= 0 {
		o.Parallel = 2
	}
	rep := Report{Job: b.job.Name}
	var into *intoSides // a move's two sides, for its verification and its repair's recheck
	var err error
	switch {
	case len(b.job.Set) > 0:
		err = b.verifySet(ctx, o, &rep)
	case b.job.Into != nil || b.job.Check != nil:
		if into, err = b.intoSides(ctx); err != nil {
			return rep, fmt.Errorf("verify %q: %w", b.job.Name, err)
		}
		err = b.verifyInto(ctx, into, o, &rep)
	default:
		err = fmt.Errorf("verify %q: %w: a Go-mode job without Check", b.job.Name, ErrNotVerifiable)
	}
	if err != nil {
		return rep, err
	}
	if o.Repair && len(rep.Diverged) > 0 {
		if err := b.repair(ctx, into, &rep); err != nil {
			return rep, err
		}
	}
	rep.Duration = time.Since(start)
	status := "passed"
	if !rep.Passed() {
		status = "failed"
	}
	detail := ""
	if len(rep.Diverged) > 0 {
		keys := make([]string, 0, min(10, len(rep.Diverged)))
		for _, d := range rep.Diverged[:min(10, len(rep.Diverged))] {
			keys = append(keys, strings.Join(d.Key, ","))
		}
		detail = "divergent keys: " + strings.Join(keys, "; ")
	}
	if _, err := b.db.ExecContext(ctx, `UPDATE schemashift_backfills SET verify_status = $2, verify_divergent = $3,
		verify_detail = $4, verified_at = `+b.plan.d.Now()+`, updated_at = `+b.plan.d.Now()+` WHERE job = $1`, b.job.Name, status, rep.stillDivergent(), detail); err != nil {
		return rep, fmt.Errorf("record verification: %w", err)
	}
	return rep, nil
}

// chunks walks the source in spans of n rows.
func (b *Backfill) eachSpan(ctx context.Context, n int, fn func(span) error) error {
	var lo Key
	for {
		hi, err := b.plan.boundary(ctx, b.db, lo, n)
		if err != nil {
			return fmt.Errorf("find verification boundary: %w", err)
		}
		if err := fn(span{Lo: lo, Hi: hi}); err != nil {
			return err
		}
		if hi == nil {
			return nil
		}
		lo = hi
	}
}

func redact(sensitive []string, column, v string) string {
	for _, s := range sensitive {
		if s == column {
			return Redacted
		}
	}
	return v
}

func (b *Backfill) verifySet(ctx context.Context, o VerifyOptions, rep *Report) error {
	var cols, exprs, pairs []string
	for _, as := range b.job.Set {
		c, err := ident.Quote(as.Column)
		if err != nil {
			return err
		}
		cols = append(cols, c)
		exprs = append(exprs, "("+as.Expr+")")
		pairs = append(pairs, b.plan.d.Text("("+as.Expr+")"), b.plan.d.Text(c))
	}
	differs := b.plan.d.Row(cols...) + " IS DISTINCT FROM " + b.plan.d.Row(exprs...)
	spans, err := b.spans(ctx, o.ChunkRows)
	if err != nil {
		return err
	}
	type counts struct {
		Rows      int64 `db:"rows"`
		Divergent int64 `db:"divergent"`
	}
	results := make([]counts, len(spans))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Parallel)
	for i, s := range spans {
		g.Go(func() error {
			a := &args{}
			if err := b.db.GetContext(gctx, &results[i], "SELECT count(*) AS rows, count(*) FILTER (WHERE "+differs+") AS divergent FROM "+
				b.plan.table.Quoted()+" WHERE "+b.plan.where(a, s, nil), a.vals...); err != nil {
				return fmt.Errorf("verify chunk: %w", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, s := range spans {
		rep.Chunks++
		rep.Compared += results[i].Rows
		rep.Divergent += results[i].Divergent
		if room := o.MaxKeys - len(rep.Diverged); results[i].Divergent > 0 && room > 0 {
			if err := b.listSet(ctx, o, s, differs, pairs, room, rep); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Backfill) listSet(ctx context.Context, o VerifyOptions, s span, differs string, pairs []string, room int, rep *Report) error {
	a := &args{}
	where := b.plan.where(a, s, nil)
	rows, err := b.db.QueryContext(ctx, "SELECT "+b.plan.keyText+", "+strings.Join(pairs, ", ")+" FROM "+b.plan.table.Quoted()+
		" WHERE "+where+" AND "+differs+" ORDER BY "+b.plan.keyList+" LIMIT "+a.add(room), a.vals...)
	if err != nil {
		return fmt.Errorf("list divergent rows: %w", err)
	}
	defer rows.Close()
	nk := len(b.plan.keyCols)
	for rows.Next() {
		vals := make([]*string, nk+2*len(b.job.Set))
		dest := make([]any, len(vals))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		d := Divergence{Key: make(Key, nk)}
		for i := range nk {
			d.Key[i] = *vals[i]
		}
		for i, as := range b.job.Set {
			want, got := text(vals[nk+2*i]), text(vals[nk+2*i+1])
			if want != got {
				d.Fields = append(d.Fields, Field{Column: as.Column,
					Want: redact(o.Sensitive, as.Column, want), Got: redact(o.Sensitive, as.Column, got)})
			}
		}
		rep.Diverged = append(rep.Diverged, d)
	}
	return rows.Err()
}

// spans partitions the table into spans of about n rows. For a single key
// column of a type without collation, the bounds come from the planner's
// histogram (no scan; PostgreSQL only); otherwise each bound is found by
// walking the key.
func (b *Backfill) spans(ctx context.Context, n int) ([]span, error) {
	if len(b.plan.keyCols) == 1 && !strings.Contains(b.plan.keyTypes[0], "char") && b.plan.keyTypes[0] != "text" {
		bounds, tuples, err := b.plan.d.KeyHistogram(ctx, b.db, b.plan.table, b.plan.keyCols[0], b.plan.keyTypes[0])
		if err != nil {
			return nil, err
		}
		if len(bounds) > 2 && tuples > 0 {
			perBucket := tuples / float64(len(bounds)-1)
			step := max(1, int(float64(n)/perBucket))
			var out []span
			var lo Key
			for i := step; i < len(bounds)-1; i += step {
				hi := Key{bounds[i]}
				out = append(out, span{Lo: lo, Hi: hi})
				lo = hi
			}
			return append(out, span{Lo: lo}), nil
		}
	}
	var out []span
	err := b.eachSpan(ctx, n, func(s span) error { out = append(out, s); return nil })
	return out, err
}

func text(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// repair re-runs the backfill over the listed divergent rows, then checks
// them again; into is a move's two sides (nil for a same-table job).
func (b *Backfill) repair(ctx context.Context, into *intoSides, rep *Report) error {
	keys := make([]Key, len(rep.Diverged))
	for i, d := range rep.Diverged {
		keys[i] = d.Key
	}
	for start := 0; start < len(keys); start += 500 {
		batch := keys[start:min(start+500, len(keys))]
		var changed int64
		err := b.retry(ctx, "repair", func() error {
			var err error
			changed, err = b.process(ctx, "", nil, batch)
			return err
		})
		if err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		rep.Repaired += changed
	}
	again := Report{}
	var err error
	if len(b.job.Set) > 0 {
		err = b.recheckSet(ctx, keys, &again)
	} else {
		err = b.recheckInto(ctx, into, keys, &again)
	}
	if err != nil {
		return fmt.Errorf("recheck repaired rows: %w", err)
	}
	rep.Remaining, rep.repaired = again.Divergent, true
	return nil
}

func (b *Backfill) recheckSet(ctx context.Context, keys []Key, rep *Report) error {
	var cols, exprs []string
	for _, as := range b.job.Set {
		c, _ := ident.Quote(as.Column)
		cols, exprs = append(cols, c), append(exprs, "("+as.Expr+")")
	}
	a := &args{}
	where := b.plan.where(a, span{}, keys)
	return b.db.GetContext(ctx, &rep.Divergent, "SELECT count(*) FROM "+b.plan.table.Quoted()+" WHERE "+where+
		" AND "+b.plan.d.Row(cols...)+" IS DISTINCT FROM "+b.plan.d.Row(exprs...), a.vals...)
}
