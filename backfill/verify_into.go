package backfill

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
)

// bisectRows is the size below which a differing chunk is compared row by
// row.
const bisectRows = 64

// intoSides holds the two sides of a move: the target, and the parts the
// dialect writes verification's statements of.
type intoSides struct {
	target *plan                // the target table, keyed by the columns the source key is copied to
	m      dialect.BackfillMove // what is compared, quoted
	// hashed: the database hashes rows, so chunks compare by checksums;
	// where it cannot (SQLite), rows compare in place.
	hashed    bool
	columns   []string // target column names, in Into.Columns order
	sensitive func(string) bool
}

func (b *Backfill) intoSides(ctx context.Context) (*intoSides, error) {
	into := b.job.move() // a Go-mode job's Check is its SQL description
	// The target key copies the source key, column for column.
	targetKey, err := b.plan.moveKey(into)
	if err != nil {
		return nil, err
	}
	target, err := resolve(ctx, b.plan.d, b.db, Job{Table: into.Table, Key: targetKey})
	if err != nil {
		return nil, err
	}
	s := &intoSides{target: target, m: dialect.BackfillMove{Target: target.t, Derived: b.job.Derived}}
	for _, a := range into.Columns {
		col, ok := target.column(a.Column)
		if !ok {
			return nil, fmt.Errorf("resolve column %q of %s: no such column", a.Column, into.Table)
		}
		c, _ := ident.Quote(a.Column)
		s.m.Columns, s.m.Exprs, s.m.Types = append(s.m.Columns, c), append(s.m.Exprs, a.Expr), append(s.m.Types, col.Type)
		s.columns = append(s.columns, a.Column)
	}
	if s.m.Down, err = b.plan.down(b.job.Down); err != nil {
		return nil, err
	}
	s.hashed = b.plan.d.BackfillSourceChecksum(b.plan.t, dialect.BackfillSpan{}, s.m) != ""
	return s, nil
}

type checksum struct {
	Rows int64  `db:"rows"`
	Sum  string `db:"sum"`
}

func (b *Backfill) checksums(ctx context.Context, s *intoSides, sp span) (src, dst checksum, err error) {
	shape, vals := sp.bounds()
	if err = b.db.GetContext(ctx, &src, b.plan.d.BackfillSourceChecksum(b.plan.t, shape, s.m), vals...); err != nil {
		return src, dst, fmt.Errorf("checksum source: %w", err)
	}
	if err = b.db.GetContext(ctx, &dst, b.plan.d.BackfillTargetChecksum(shape, s.m), vals...); err != nil {
		return src, dst, fmt.Errorf("checksum target: %w", err)
	}
	return src, dst, nil
}

func (b *Backfill) verifyInto(ctx context.Context, s *intoSides, o VerifyOptions, rep *Report) ([]counted, error) {
	s.sensitive = func(c string) bool { return redact(o.Sensitive, c, "") == Redacted }
	if !s.hashed {
		return b.compareInto(ctx, s, o, rep)
	}
	var out []counted
	var lo Key
	for {
		hi, err := b.plan.boundary(ctx, b.db, lo, o.ChunkRows)
		if err != nil {
			return nil, fmt.Errorf("find verification boundary: %w", err)
		}
		// The last chunk, open-ended, also covers target rows past the last
		// source key.
		sp := span{Lo: lo, Hi: hi}
		src, dst, err := b.checksums(ctx, s, sp)
		if err != nil {
			return nil, err
		}
		rep.Chunks++
		rep.Compared += src.Rows
		if src != dst {
			if out, err = b.bisect(ctx, s, o, sp, src, dst, rep, out); err != nil {
				return nil, err
			}
		}
		if hi == nil {
			return out, nil
		}
		lo = hi
	}
}

// bisect narrows a differing span down to spans of a few rows, and counts
// and lists those by kind; it appends them to out.
func (b *Backfill) bisect(ctx context.Context, s *intoSides, o VerifyOptions, sp span, src, dst checksum, rep *Report, out []counted) ([]counted, error) {
	if max(src.Rows, dst.Rows) <= bisectRows {
		return b.leaf(ctx, s, o, sp, rep, out)
	}
	// Split where the larger side has its middle row.
	var mid Key
	var err error
	if src.Rows >= dst.Rows {
		mid, err = b.plan.boundary(ctx, b.db, sp.Lo, int(src.Rows/2))
	} else {
		mid, err = s.target.boundary(ctx, b.db, sp.Lo, int(dst.Rows/2))
	}
	if err != nil {
		return nil, fmt.Errorf("bisect: %w", err)
	}
	if mid == nil {
		return b.leaf(ctx, s, o, sp, rep, out)
	}
	for _, half := range []span{{Lo: sp.Lo, Hi: mid}, {Lo: mid, Hi: sp.Hi}} {
		hs, hd, err := b.checksums(ctx, s, half)
		if err != nil {
			return nil, err
		}
		rep.Chunks++
		if hs != hd {
			if out, err = b.bisect(ctx, s, o, half, hs, hd, rep, out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// leaf counts a small differing span's rows by kind and lists its
// divergent ones.
func (b *Backfill) leaf(ctx context.Context, s *intoSides, o VerifyOptions, sp span, rep *Report, out []counted) ([]counted, error) {
	t, err := b.tallyInto(ctx, s, sp)
	if err != nil {
		return nil, fmt.Errorf("classify rows: %w", err)
	}
	t.Rows = 0 // counted with the chunk's checksum
	rep.add(t)
	if room := o.MaxKeys - len(rep.Diverged); t.divergent() > 0 && room > 0 {
		if err := b.listInto(ctx, s, o, sp, room, rep); err != nil {
			return nil, err
		}
	}
	return append(out, counted{span: sp, tally: t}), nil
}

// compareInto verifies a move where the database cannot hash rows
// (SQLite): the source rows of each span are looked up in the target by
// key and compared in the database, column by column; target rows without
// a source row are counted apart. That finds the divergent rows in the
// same pass, so nothing is bisected. Hashing the rows' text instead would
// not do: SQLite's text of a value depends on how it is stored (12.0
// computed, 12 in a numeric column), where its comparison does not.
func (b *Backfill) compareInto(ctx context.Context, s *intoSides, o VerifyOptions, rep *Report) ([]counted, error) {
	var out []counted
	err := b.eachSpan(ctx, o.ChunkRows, func(sp span) error {
		t, err := b.tallyInto(ctx, s, sp)
		if err != nil {
			return fmt.Errorf("compare chunk: %w", err)
		}
		rep.Chunks++
		rep.Compared += t.Rows
		rep.add(t)
		out = append(out, counted{span: sp, tally: t})
		if room := o.MaxKeys - len(rep.Diverged); t.divergent() > 0 && room > 0 {
			return b.listInto(ctx, s, o, sp, room, rep)
		}
		return nil
	})
	return out, err
}

// tallyInto counts a span's source rows by kind, in place, as
// [Backfill.compareInto] describes, and its target rows without a source
// row as orphans.
func (b *Backfill) tallyInto(ctx context.Context, s *intoSides, sp span) (tally, error) {
	var t tally
	shape, vals := sp.bounds()
	if err := b.db.GetContext(ctx, &t, b.plan.d.BackfillMoveTally(b.plan.t, shape, s.m), vals...); err != nil {
		return t, err
	}
	err := b.db.GetContext(ctx, &t.Orphans, b.plan.d.BackfillMoveOrphans(b.plan.t, shape, s.m), vals...)
	return t, err
}

// repairMove repairs a move's rows of one span in tx: it locks the source
// rows, fills the missing target rows (as the chunk does, never
// overwriting one), then rewrites the target rows that drifted from the
// source (or, from the new side, the source's old columns from the
// target), checked again as they are now.
func (b *Backfill) repairMove(ctx context.Context, tx *sqlx.Tx, s *intoSides, sp span, from Side) (int64, error) {
	if err := b.plan.lockSpan(ctx, tx, sp); err != nil {
		return 0, err
	}
	changed, _, err := b.fill(ctx, tx, sp, 0)
	if err != nil {
		return 0, err
	}
	shape, vals := sp.bounds()
	stmt := b.plan.d.BackfillMoveRepair(b.plan.t, shape, s.m)
	if stmt == "" { // no drifted row can be told, or nothing to rewrite
		return changed, nil
	}
	if from == FromNew {
		stmt = b.plan.d.BackfillMoveRewrite(b.plan.t, shape, s.m)
	}
	res, err := tx.ExecContext(ctx, stmt, vals...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return changed + n, err
}

// listInto lists up to room divergent rows of a span in key order, each
// side shown as a row value's text, (v1,v2,…), or NULL where the side has
// no row.
func (b *Backfill) listInto(ctx context.Context, s *intoSides, o VerifyOptions, sp span, room int, rep *Report) error {
	n, nk := len(s.m.Columns), len(b.plan.keyCols)
	shape, bound := sp.bounds()
	args := append(append(append([]any(nil), bound...), bound...), room)
	rows, err := b.db.QueryContext(ctx, b.plan.d.BackfillMoveList(b.plan.t, shape, s.m), args...)
	if err != nil {
		return fmt.Errorf("list divergent rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		keys := make([]any, nk)
		vals := make([]*string, 2*nk+2+2*n+1)
		dest := make([]any, len(vals))
		for i := range vals {
			if i < nk {
				dest[i] = &keys[i]
			} else {
				dest[i] = &vals[i]
			}
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		d := Divergence{Key: make(Key, nk), Kind: Kind(text(vals[len(vals)-1]))}
		for i := range nk {
			d.Key[i] = *vals[nk+i]
		}
		side := func(present *string, vs []*string) string {
			if present == nil {
				return text(nil)
			}
			return recordText(vs)
		}
		at := 2 * nk
		want, got := side(vals[at], vals[at+2:at+2+n]), side(vals[at+1], vals[at+2+n:len(vals)-1])
		d.Fields = []Field{{Column: "(" + strings.Join(s.columns, ", ") + ")", Want: want, Got: got}}
		for _, c := range s.columns {
			if s.sensitive(c) {
				d.Fields[0].Want, d.Fields[0].Got = Redacted, Redacted
			}
		}
		rep.Diverged = append(rep.Diverged, d)
	}
	return rows.Err()
}

// recordText writes values the way PostgreSQL writes a row value's text,
// so that a divergent row reads the same on either database: NULL as
// nothing, and a value quoted when it is empty or holds a delimiter, a
// quote, a backslash or a space.
func recordText(vals []*string) string {
	var sb strings.Builder
	sb.WriteByte('(')
	for i, v := range vals {
		if i > 0 {
			sb.WriteByte(',')
		}
		if v == nil {
			continue
		}
		if *v != "" && !strings.ContainsAny(*v, "\"\\(),") && !strings.ContainsFunc(*v, unicode.IsSpace) {
			sb.WriteString(*v)
			continue
		}
		sb.WriteByte('"')
		for _, r := range *v {
			if r == '"' || r == '\\' {
				sb.WriteRune(r)
			}
			sb.WriteRune(r)
		}
		sb.WriteByte('"')
	}
	sb.WriteByte(')')
	return sb.String()
}
