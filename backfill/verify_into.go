package backfill

import (
	"context"
	"fmt"
	"strings"

	"github.com/schemashift/schemashift/internal/ident"
)

// bisectRows is the size below which a differing chunk is compared row by
// row.
const bisectRows = 64

// intoSides holds the two sides of a move: the source projection, as the
// target's column types, and the target.
type intoSides struct {
	target    *plan    // the target table, keyed by the columns the source key is copied to
	srcRow    string   // ROW(CAST(expr AS type), …)
	dstRow    string   // ROW(col, …)
	keyAlias  []string // k1, k2 …
	srcKeys   string   // source key columns AS k1, …
	dstKeys   string   // target key columns AS k1, …
	columns   []string // target column names, in Into.Columns order
	sensitive func(string) bool
}

func (b *Backfill) intoSides(ctx context.Context) (*intoSides, error) {
	into := b.job.Into
	if into == nil {
		into = b.job.Check // a Go-mode job's SQL description
	}
	// The target key copies the source key, column for column.
	var targetKey []string
	for _, k := range b.plan.keyCols {
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
		targetKey = append(targetKey, found)
	}
	target, err := resolve(ctx, b.db, Job{Table: into.Table, Key: targetKey})
	if err != nil {
		return nil, err
	}
	s := &intoSides{target: target}
	var src, dst []string
	for _, a := range into.Columns {
		var typ string
		if err := b.db.GetContext(ctx, &typ, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute
			WHERE attrelid = $1::regclass AND attname = $2 AND attnum > 0 AND NOT attisdropped`, target.table.Quoted(), a.Column); err != nil {
			return nil, fmt.Errorf("resolve column %q of %s: %w", a.Column, into.Table, err)
		}
		c, _ := ident.Quote(a.Column)
		src = append(src, "CAST(("+a.Expr+") AS "+typ+")")
		dst = append(dst, c)
		s.columns = append(s.columns, a.Column)
	}
	s.srcRow = "ROW(" + strings.Join(src, ", ") + ")"
	s.dstRow = "ROW(" + strings.Join(dst, ", ") + ")"
	var sk, dk []string
	for i := range b.plan.keyCols {
		alias := fmt.Sprintf("k%d", i+1)
		s.keyAlias = append(s.keyAlias, alias)
		q, _ := ident.Quote(b.plan.keyCols[i])
		sk = append(sk, q+" AS "+alias)
		q, _ = ident.Quote(targetKey[i])
		dk = append(dk, q+" AS "+alias)
	}
	s.srcKeys, s.dstKeys = strings.Join(sk, ", "), strings.Join(dk, ", ")
	return s, nil
}

type checksum struct {
	Rows int64  `db:"rows"`
	Sum  string `db:"sum"`
}

func (b *Backfill) checksums(ctx context.Context, s *intoSides, sp span) (src, dst checksum, err error) {
	a := &args{}
	q := "SELECT count(*) AS rows, coalesce(sum(hashtextextended(" + s.srcRow + "::text, 0)), 0)::text AS sum FROM " +
		b.plan.table.Quoted() + " WHERE " + b.plan.where(a, sp, nil)
	if err = b.db.GetContext(ctx, &src, q, a.vals...); err != nil {
		return src, dst, fmt.Errorf("checksum source: %w", err)
	}
	a = &args{}
	q = "SELECT count(*) AS rows, coalesce(sum(hashtextextended(" + s.dstRow + "::text, 0)), 0)::text AS sum FROM " +
		s.target.table.Quoted() + " WHERE " + s.target.where(a, sp, nil)
	if err = b.db.GetContext(ctx, &dst, q, a.vals...); err != nil {
		return src, dst, fmt.Errorf("checksum target: %w", err)
	}
	return src, dst, nil
}

func (b *Backfill) verifyInto(ctx context.Context, o VerifyOptions, rep *Report) error {
	s, err := b.intoSides(ctx)
	if err != nil {
		return fmt.Errorf("verify %q: %w", b.job.Name, err)
	}
	s.sensitive = func(c string) bool { return redact(o.Sensitive, c, "") == Redacted }
	var lo Key
	for {
		hi, err := b.plan.boundary(ctx, b.db, lo, o.ChunkRows)
		if err != nil {
			return fmt.Errorf("find verification boundary: %w", err)
		}
		sp := span{Lo: lo, Hi: hi}
		if hi == nil {
			// The last chunk also covers target rows past the last source key.
			sp.Hi = nil
		}
		src, dst, err := b.checksums(ctx, s, sp)
		if err != nil {
			return err
		}
		rep.Chunks++
		rep.Compared += src.Rows
		if src != dst {
			if err := b.bisect(ctx, s, o, sp, src, dst, rep); err != nil {
				return err
			}
		}
		if hi == nil {
			return nil
		}
		lo = hi
	}
}

// bisect narrows a differing span down to its divergent rows.
func (b *Backfill) bisect(ctx context.Context, s *intoSides, o VerifyOptions, sp span, src, dst checksum, rep *Report) error {
	if max(src.Rows, dst.Rows) <= bisectRows {
		return b.diffRows(ctx, s, o, sp, rep)
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
		return fmt.Errorf("bisect: %w", err)
	}
	if mid == nil {
		return b.diffRows(ctx, s, o, sp, rep)
	}
	for _, half := range []span{{Lo: sp.Lo, Hi: mid}, {Lo: mid, Hi: sp.Hi}} {
		hs, hd, err := b.checksums(ctx, s, half)
		if err != nil {
			return err
		}
		rep.Chunks++
		if hs != hd {
			if err := b.bisect(ctx, s, o, half, hs, hd, rep); err != nil {
				return err
			}
		}
	}
	return nil
}

// diffRows lists the rows of a small span that differ, joining both sides
// on the key.
func (b *Backfill) diffRows(ctx context.Context, s *intoSides, o VerifyOptions, sp span, rep *Report) error {
	a := &args{}
	srcWhere := b.plan.where(a, sp, nil)
	dstWhere := s.target.where(a, sp, nil)
	keys := strings.Join(s.keyAlias, ", ")
	var keyText []string
	for _, k := range s.keyAlias {
		keyText = append(keyText, k+"::text")
	}
	q := "SELECT " + strings.Join(keyText, ", ") + ", s.r, d.r FROM " +
		"(SELECT " + s.srcKeys + ", " + s.srcRow + "::text AS r FROM " + b.plan.table.Quoted() + " WHERE " + srcWhere + ") s" +
		" FULL JOIN (SELECT " + s.dstKeys + ", " + s.dstRow + "::text AS r FROM " + s.target.table.Quoted() + " WHERE " + dstWhere + ") d" +
		" USING (" + keys + ") WHERE s.r IS DISTINCT FROM d.r ORDER BY " + keys
	rows, err := b.db.QueryContext(ctx, q, a.vals...)
	if err != nil {
		return fmt.Errorf("list divergent rows: %w", err)
	}
	defer rows.Close()
	nk := len(s.keyAlias)
	for rows.Next() {
		vals := make([]*string, nk+2)
		dest := make([]any, len(vals))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		rep.Divergent++
		if len(rep.Diverged) >= o.MaxKeys {
			continue
		}
		d := Divergence{Key: make(Key, nk)}
		for i := range nk {
			d.Key[i] = *vals[i]
		}
		d.Fields = []Field{{Column: "(" + strings.Join(s.columns, ", ") + ")", Want: text(vals[nk]), Got: text(vals[nk+1])}}
		for _, c := range s.columns {
			if s.sensitive(c) {
				d.Fields[0].Want, d.Fields[0].Got = Redacted, Redacted
			}
		}
		rep.Diverged = append(rep.Diverged, d)
	}
	return rows.Err()
}

func (b *Backfill) recheckInto(ctx context.Context, keys []Key, rep *Report) error {
	s, err := b.intoSides(ctx)
	if err != nil {
		return err
	}
	a := &args{}
	srcWhere := b.plan.where(a, span{}, keys)
	dstWhere := s.target.where(a, span{}, keys)
	aliases := strings.Join(s.keyAlias, ", ")
	return b.db.GetContext(ctx, &rep.Divergent, "SELECT count(*) FROM "+
		"(SELECT "+s.srcKeys+", "+s.srcRow+"::text AS r FROM "+b.plan.table.Quoted()+" WHERE "+srcWhere+") s"+
		" FULL JOIN (SELECT "+s.dstKeys+", "+s.dstRow+"::text AS r FROM "+s.target.table.Quoted()+" WHERE "+dstWhere+") d"+
		" USING ("+aliases+") WHERE s.r IS DISTINCT FROM d.r", a.vals...)
}
