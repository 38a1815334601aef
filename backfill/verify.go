package backfill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/schemashift/schemashift/internal/dialect"
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
	// are counted, and a repair is not bounded by it.
	MaxKeys int
	// Sensitive names columns whose values are replaced by [Redacted].
	Sensitive []string
	// Parallel is how many chunks are compared at once (default 2).
	Parallel int
	// Repair fills the unfilled rows and rewrites the drifted ones from the
	// old shape, every one found (not only the listed ones), in
	// transactions of at most [RepairBatch] rows, each checking its rows
	// again under their locks; then it counts the repaired chunks again.
	// It never touches a row written through the new path, nor one it
	// cannot tell from such a row ([Unverified]).
	Repair bool
	// RepairFrom is the side a drifted row is rewritten from: the side
	// written last, which is the operator's to know (which writer bypassed
	// the adapters). [FromOld], the default, suits a legacy job writing the
	// old shape; [FromNew] rewrites the old columns as Down of the new ones,
	// and needs Down. Unfilled rows are filled from the old shape either way.
	RepairFrom Side
}

// Side is a shape a repair rewrites the other from.
type Side int

// The sides.
const (
	FromOld Side = iota // rewrite the new shape from the old (Set, Into, Check)
	FromNew             // rewrite the old shape from the new (Down)
)

// ErrNoInverse: a repair from the new shape was asked of a job that
// declares no Down.
var ErrNoInverse = errors.New("repair from the new shape needs the job's Down")

// RepairBatch is how many rows of the walked table one repair transaction
// covers at most.
const RepairBatch = 1000

// Kind is what a divergent row is, as far as the job's declarations tell.
type Kind string

// The kinds of divergent rows.
const (
	// Unfilled: no one has written the row's new shape (its new columns
	// are NULL, or the moved row is missing). A repair fills it.
	Unfilled Kind = "unfilled"
	// Drifted: the row's new shape was written, and the two shapes
	// disagree in both directions the job declares (new ≠ Set(old), and
	// old ≠ Down(new) or the job is Derived): it was changed behind the
	// adapters' back, by a writer of the old shape. A repair rewrites the
	// new shape from the old one.
	Drifted Kind = "drifted"
	// Unverified: the new shape differs from what the job computes, and the
	// job declares neither Down nor Derived, so a write through the new
	// path cannot be told from a drifted row. Never repaired; declare Down
	// (or Derived) to verify such rows.
	Unverified Kind = "unverified"
	// Orphan: a row of the table moved to whose source row is gone. Never
	// repaired (deleting is not the backfill's to do).
	Orphan Kind = "orphan"
)

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
	Kind   Kind
	Fields []Field
}

// Report is the outcome of a verification.
type Report struct {
	Job      string
	Compared int64 // source rows compared
	Chunks   int   // comparisons made (bisections included)
	// Divergent counts the rows that disagree, all of them: Unfilled +
	// Drifted + Unverified + Orphans.
	Divergent  int64
	Unfilled   int64
	Drifted    int64
	Unverified int64
	Orphans    int64
	// NewPath counts rows written through the new path whose old shape is
	// Down of their new one: consistent, and not divergent.
	NewPath  int64
	Diverged []Divergence // the first MaxKeys divergent rows, in key order
	Repaired int64        // rows the repair changed
	// Remaining counts the rows still divergent after the repair, listed
	// or not.
	Remaining int64
	Duration  time.Duration
	repaired  bool
}

// Passed reports whether nothing diverges (after the repair, if one ran).
// A verification that repaired rows is recorded as "repaired", not
// "passed": the gate to shadow waits for one that starts after the repair.
func (r Report) Passed() bool { return r.Left() == 0 }

// Left counts the rows divergent after the repair, if one ran, else all
// divergent rows.
func (r Report) Left() int64 {
	if !r.repaired {
		return r.Divergent
	}
	return r.Remaining
}

// Repairable counts the divergent rows a repair may touch: the unfilled
// and the drifted ones.
func (r Report) Repairable() int64 { return r.Unfilled + r.Drifted }

// Summary says in one line what was found and done.
func (r Report) Summary() string {
	s := fmt.Sprintf("%d rows compared, %d divergent (%d unfilled, %d drifted, %d unverified, %d orphaned), %d written through the new path, %d listed",
		r.Compared, r.Divergent, r.Unfilled, r.Drifted, r.Unverified, r.Orphans, r.NewPath, len(r.Diverged))
	if r.repaired {
		s += fmt.Sprintf(", %d repaired, %d left", r.Repaired, r.Remaining)
	}
	return s
}

// tally counts one span's rows by kind.
type tally struct {
	Rows     int64 `db:"rows"`
	Differs  int64 `db:"differs"` // rows whose new shape differs from the job's (new-path writes included)
	Unfilled int64 `db:"unfilled"`
	NewPath  int64 `db:"new_path"`
	Drifted  int64 `db:"drifted"`
	Orphans  int64 `db:"-"`
}

func (t tally) divergent() int64  { return t.Differs - t.NewPath + t.Orphans }
func (t tally) unverified() int64 { return t.Differs - t.Unfilled - t.NewPath - t.Drifted }
func (t tally) repairable() int64 { return t.Unfilled + t.Drifted }

func (r *Report) add(t tally) {
	r.Divergent += t.divergent()
	r.Unfilled += t.Unfilled
	r.Drifted += t.Drifted
	r.Unverified += t.unverified()
	r.Orphans += t.Orphans
	r.NewPath += t.NewPath
}

// counted is a span verified, with its tally: what a repair revisits.
type counted struct {
	span  span
	tally tally
}

// Verify compares the old and the new representation of every row, in
// chunks, inside the database, tells the divergent rows apart by [Kind],
// and records the outcome in the job's state ([Progress].Verify:
// "passed", "repaired" or "failed", with when it started). Same-table
// jobs count the rows whose columns differ from their expressions; moves
// to another table compare row counts and checksums per chunk and bisect
// a chunk that differs down to its rows.
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
	if o.Repair && o.RepairFrom == FromNew && len(b.job.Down) == 0 {
		return rep, fmt.Errorf("verify %q: %w", b.job.Name, ErrNoInverse)
	}
	// Started, by the Backfill's clock, which also stamped when the job
	// finished: the gate compares the two. A result recorded before is no longer current, and this
	// one is recorded only if no verification started since (run names it).
	var token [8]byte
	_, _ = rand.Read(token[:]) // never fails (crypto/rand)
	run := "run " + hex.EncodeToString(token[:])
	if _, err := b.db.ExecContext(ctx, b.plan.d.BackfillVerifyStart(), b.job.Name, run, dialect.Stamp(b.now())); err != nil {
		return rep, fmt.Errorf("verify %q: record start: %w", b.job.Name, err)
	}
	var into *intoSides // a move's two sides, for its verification and its repair
	var spans []counted
	var err error
	switch {
	case len(b.job.Set) > 0:
		spans, err = b.verifySet(ctx, o, &rep)
	case b.job.move() != nil:
		if into, err = b.intoSides(ctx); err != nil {
			return rep, fmt.Errorf("verify %q: %w", b.job.Name, err)
		}
		spans, err = b.verifyInto(ctx, into, o, &rep)
	default:
		err = fmt.Errorf("verify %q: %w: a Go-mode job without Check", b.job.Name, ErrNotVerifiable)
	}
	if err != nil {
		_ = b.recordVerify(ctx, run, "failed", rep.Divergent, "verification did not finish: "+err.Error()) // best effort: err is what matters
		return rep, err
	}
	if o.Repair && rep.Repairable() > 0 {
		if err := b.repair(ctx, into, spans, o.RepairFrom, &rep); err != nil {
			_ = b.recordVerify(ctx, run, "failed", rep.Divergent, "repair did not finish: "+err.Error()) // best effort: err is what matters
			return rep, err
		}
	}
	rep.Duration = time.Since(start)
	status := "passed"
	switch {
	case !rep.Passed():
		status = "failed"
	case rep.Repaired > 0:
		status = "repaired"
	}
	detail := rep.Summary()
	if len(rep.Diverged) > 0 {
		keys := make([]string, 0, min(10, len(rep.Diverged)))
		for _, d := range rep.Diverged[:min(10, len(rep.Diverged))] {
			keys = append(keys, strings.Join(d.Key, ",")+" ("+string(d.Kind)+")")
		}
		detail += "; divergent keys: " + strings.Join(keys, "; ")
	}
	if err := b.recordVerify(ctx, run, status, rep.Left(), detail); errors.Is(err, errVerifySuperseded) {
		return rep, nil // the later verification's outcome is the one that stands
	} else if err != nil {
		return rep, fmt.Errorf("record verification: %w", err)
	}
	return rep, nil
}

// errVerifySuperseded: another verification started after this one, so
// this one's outcome is not recorded over it.
var errVerifySuperseded = errors.New("a later verification started")

// recordVerify stores the outcome of the verification named run, unless
// another started since: a slow verification that started before the job
// finished must not record its pass over a later one's failure.
func (b *Backfill) recordVerify(ctx context.Context, run, status string, divergent int64, detail string) error {
	res, err := b.db.ExecContext(context.WithoutCancel(ctx), b.plan.d.BackfillVerifyRecord(), b.job.Name, status, divergent, detail, run, dialect.Stamp(b.now()))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return errVerifySuperseded
	}
	return nil
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

func (b *Backfill) verifySet(ctx context.Context, o VerifyOptions, rep *Report) ([]counted, error) {
	set, err := b.plan.set(b.job)
	if err != nil {
		return nil, err
	}
	spans, err := b.spans(ctx, o.ChunkRows)
	if err != nil {
		return nil, err
	}
	results := make([]counted, len(spans))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Parallel)
	for i, s := range spans {
		g.Go(func() error {
			t, err := b.tallySet(gctx, set, s)
			results[i] = counted{span: s, tally: t}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, c := range results {
		rep.Chunks++
		rep.Compared += c.tally.Rows
		rep.add(c.tally)
		if room := o.MaxKeys - len(rep.Diverged); c.tally.divergent() > 0 && room > 0 {
			if err := b.listSet(ctx, o, set, c.span, room, rep); err != nil {
				return nil, err
			}
		}
	}
	return results, nil
}

// tallySet counts a span's rows by kind: one pass comparing the shapes,
// and a second, telling the kinds apart, only where some row differs.
func (b *Backfill) tallySet(ctx context.Context, set dialect.BackfillSet, s span) (tally, error) {
	var t tally
	shape, vals := s.bounds()
	if err := b.db.GetContext(ctx, &t, b.plan.d.BackfillSetTally(b.plan.t, shape, set), vals...); err != nil {
		return t, fmt.Errorf("verify chunk: %w", err)
	}
	if t.Differs == 0 {
		return t, nil
	}
	// The kinds, over the differing rows only, counted again with them in
	// one statement: writes land between the two, and the kinds must add
	// up to the rows they divide.
	kinds := struct {
		Differs  int64 `db:"differs"`
		Unfilled int64 `db:"unfilled"`
		NewPath  int64 `db:"new_path"`
		Drifted  int64 `db:"drifted"`
	}{}
	if err := b.db.GetContext(ctx, &kinds, b.plan.d.BackfillSetKinds(b.plan.t, shape, set), vals...); err != nil {
		return t, fmt.Errorf("classify chunk: %w", err)
	}
	t.Differs, t.Unfilled, t.NewPath, t.Drifted = kinds.Differs, kinds.Unfilled, kinds.NewPath, kinds.Drifted
	return t, nil
}

func (b *Backfill) listSet(ctx context.Context, o VerifyOptions, set dialect.BackfillSet, s span, room int, rep *Report) error {
	shape, bound := s.bounds()
	rows, err := b.db.QueryContext(ctx, b.plan.d.BackfillSetList(b.plan.t, shape, set), append(bound, room)...)
	if err != nil {
		return fmt.Errorf("list divergent rows: %w", err)
	}
	defer rows.Close()
	nk := len(b.plan.keyCols)
	for rows.Next() {
		vals := make([]*string, nk+1+2*len(b.job.Set))
		dest := make([]any, len(vals))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		d := Divergence{Key: make(Key, nk), Kind: Kind(text(vals[nk]))}
		for i := range nk {
			d.Key[i] = *vals[i]
		}
		for i, as := range b.job.Set {
			want, got := text(vals[nk+1+2*i]), text(vals[nk+2+2*i])
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

// repair fills the unfilled rows and rewrites the drifted ones of every
// span that has some, in transactions of at most RepairBatch rows, then
// counts those spans again; into is a move's two sides (nil for a
// same-table job).
func (b *Backfill) repair(ctx context.Context, into *intoSides, spans []counted, from Side, rep *Report) error {
	var set dialect.BackfillSet
	if into == nil {
		var err error
		if set, err = b.plan.set(b.job); err != nil {
			return err
		}
	}
	remaining := rep.Divergent
	for _, c := range spans {
		if c.tally.repairable() == 0 {
			continue
		}
		err := b.eachSubspan(ctx, c.span, RepairBatch, func(sub span) error {
			return b.retry(ctx, "repair", func() error {
				n, err := b.repairSpan(ctx, into, set, sub, from)
				if err == nil {
					rep.Repaired += n
				}
				return err
			})
		})
		if err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		var after tally
		if into == nil {
			after, err = b.tallySet(ctx, set, c.span)
		} else {
			after, err = b.tallyInto(ctx, into, c.span)
		}
		if err != nil {
			return fmt.Errorf("recheck repaired rows: %w", err)
		}
		remaining += after.divergent() - c.tally.divergent()
	}
	rep.Remaining, rep.repaired = remaining, true
	return nil
}

// eachSubspan walks s in spans of at most n rows.
func (b *Backfill) eachSubspan(ctx context.Context, s span, n int, fn func(span) error) error {
	lo := s.Lo
	for {
		hi, err := b.plan.boundaryWithin(ctx, b.db, span{Lo: lo, Hi: s.Hi}, n)
		if err != nil {
			return fmt.Errorf("find repair boundary: %w", err)
		}
		if hi == nil {
			return fn(span{Lo: lo, Hi: s.Hi})
		}
		if err := fn(span{Lo: lo, Hi: hi}); err != nil {
			return err
		}
		lo = hi
	}
}

// repairSpan repairs one span's rows in one transaction, each row checked
// again under its lock: a row written through the new path since it was
// counted is left as it is.
func (b *Backfill) repairSpan(ctx context.Context, into *intoSides, set dialect.BackfillSet, s span, from Side) (int64, error) {
	tx, err := b.beginChunk(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	var changed int64
	if into == nil {
		// Unfilled rows from the old shape; drifted ones from the side asked.
		shape, vals := s.bounds()
		stmts := []string{b.plan.d.BackfillSetFill(b.plan.t, shape, set, from == FromOld)}
		if from == FromNew {
			stmts = append(stmts, b.plan.d.BackfillSetRewrite(b.plan.t, shape, set))
		}
		for _, stmt := range stmts {
			if stmt == "" {
				continue
			}
			res, err := tx.ExecContext(ctx, stmt, vals...)
			if err != nil {
				return 0, err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return 0, err
			}
			changed += n
		}
	} else if changed, err = b.repairMove(ctx, tx, into, s, from); err != nil {
		return 0, err
	}
	return changed, tx.Commit()
}
