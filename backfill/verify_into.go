package backfill

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/schemashift/schemashift/internal/ident"
)

// bisectRows is the size below which a differing chunk is compared row by
// row.
const bisectRows = 64

// intoSides holds the two sides of a move: the source projection, as the
// target's column types, and the target, with what verifying compares of
// each, rendered once.
type intoSides struct {
	target   *plan    // the target table, keyed by the columns the source key is copied to
	srcExprs []string // each column's expression, as the target column's type
	dstCols  []string // the target columns, quoted
	srcText  string   // the text of ROW(CAST(expr AS type), …)
	dstText  string   // the text of ROW(col, …)
	// hashed: the database hashes rows, so chunks compare by the checksums
	// srcSum and dstSum; where it cannot (SQLite), rows compare in place.
	hashed         bool
	srcSum, dstSum string
	keyAlias       []string // k1, k2 …
	srcKeys        string   // source key columns AS k1, …
	dstKeys        string   // target key columns AS k1, …
	columns        []string // target column names, in Into.Columns order
	sensitive      func(string) bool
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
	d := b.plan.d
	target, err := resolve(ctx, d, b.db, Job{Table: into.Table, Key: targetKey})
	if err != nil {
		return nil, err
	}
	s := &intoSides{target: target}
	for _, a := range into.Columns {
		col, ok := target.column(a.Column)
		if !ok {
			return nil, fmt.Errorf("resolve column %q of %s: no such column", a.Column, into.Table)
		}
		c, _ := ident.Quote(a.Column)
		s.srcExprs = append(s.srcExprs, d.AsColumn("("+a.Expr+")", col.Type))
		s.dstCols = append(s.dstCols, c)
		s.columns = append(s.columns, a.Column)
	}
	s.srcText, s.dstText = d.Text(d.Row(s.srcExprs...)), d.Text(d.Row(s.dstCols...))
	s.srcSum, s.hashed = d.RowChecksum(s.srcExprs...)
	s.dstSum, _ = d.RowChecksum(s.dstCols...)
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
	q := "SELECT count(*) AS rows, " + s.srcSum + " AS sum FROM " +
		b.plan.table.Quoted() + " WHERE " + b.plan.where(a, sp, nil)
	if err = b.db.GetContext(ctx, &src, q, a.vals...); err != nil {
		return src, dst, fmt.Errorf("checksum source: %w", err)
	}
	a = &args{}
	q = "SELECT count(*) AS rows, " + s.dstSum + " AS sum FROM " +
		s.target.table.Quoted() + " WHERE " + s.target.where(a, sp, nil)
	if err = b.db.GetContext(ctx, &dst, q, a.vals...); err != nil {
		return src, dst, fmt.Errorf("checksum target: %w", err)
	}
	return src, dst, nil
}

func (b *Backfill) verifyInto(ctx context.Context, s *intoSides, o VerifyOptions, rep *Report) error {
	s.sensitive = func(c string) bool { return redact(o.Sensitive, c, "") == Redacted }
	if !s.hashed {
		return b.compareInto(ctx, s, o, rep)
	}
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
		keyText = append(keyText, b.plan.d.Text(k))
	}
	q := "SELECT " + strings.Join(keyText, ", ") + ", s.r, d.r FROM " +
		"(SELECT " + s.srcKeys + ", " + s.srcText + " AS r FROM " + b.plan.table.Quoted() + " WHERE " + srcWhere + ") s" +
		" FULL JOIN (SELECT " + s.dstKeys + ", " + s.dstText + " AS r FROM " + s.target.table.Quoted() + " WHERE " + dstWhere + ") d" +
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

func (b *Backfill) recheckInto(ctx context.Context, s *intoSides, keys []Key, rep *Report) error {
	if !s.hashed {
		c, err := b.compareRows(ctx, s, span{}, keys)
		rep.Divergent = c.Divergent + c.Orphans
		return err
	}
	a := &args{}
	srcWhere := b.plan.where(a, span{}, keys)
	dstWhere := s.target.where(a, span{}, keys)
	aliases := strings.Join(s.keyAlias, ", ")
	return b.db.GetContext(ctx, &rep.Divergent, "SELECT count(*) FROM "+
		"(SELECT "+s.srcKeys+", "+s.srcText+" AS r FROM "+b.plan.table.Quoted()+" WHERE "+srcWhere+") s"+
		" FULL JOIN (SELECT "+s.dstKeys+", "+s.dstText+" AS r FROM "+s.target.table.Quoted()+" WHERE "+dstWhere+") d"+
		" USING ("+aliases+") WHERE s.r IS DISTINCT FROM d.r", a.vals...)
}

// compareInto verifies a move where the database cannot hash rows
// (SQLite): the source rows of each span are looked up in the target by
// key and compared in the database, column by column, with the comparison
// the chunk statement's upsert makes; target rows without a source row are
// counted apart. That finds the divergent rows in the same pass, so
// nothing is bisected. Hashing the rows' text instead would not do:
// SQLite's text of a value depends on how it is stored (12.0 computed, 12
// in a numeric column), where its comparison does not.
func (b *Backfill) compareInto(ctx context.Context, s *intoSides, o VerifyOptions, rep *Report) error {
	return b.eachSpan(ctx, o.ChunkRows, func(sp span) error {
		c, err := b.compareRows(ctx, s, sp, nil)
		if err != nil {
			return fmt.Errorf("compare chunk: %w", err)
		}
		rep.Chunks++
		rep.Compared += c.Rows
		rep.Divergent += c.Divergent + c.Orphans
		if room := o.MaxKeys - len(rep.Diverged); c.Divergent+c.Orphans > 0 && room > 0 {
			return b.listInto(ctx, s, o, sp, room, rep)
		}
		return nil
	})
}

// compared counts what [Backfill.compareRows] found.
type compared struct {
	Rows      int64 `db:"rows"`      // source rows
	Divergent int64 `db:"divergent"` // source rows whose target row is missing or differs
	Orphans   int64 `db:"-"`         // target rows without a source row, counted apart
}

// compareRows compares the rows of a span (or of keys) in place, as
// [Backfill.compareInto] describes.
func (b *Backfill) compareRows(ctx context.Context, s *intoSides, sp span, keys []Key) (compared, error) {
	var c compared
	a := &args{}
	if err := b.db.GetContext(ctx, &c, "SELECT count(*) AS rows, count(*) FILTER (WHERE "+s.differs()+") AS divergent "+
		b.sourceSide(s, a, sp, keys), a.vals...); err != nil {
		return c, err
	}
	a = &args{}
	err := b.db.GetContext(ctx, &c.Orphans, "SELECT count(*) "+b.targetOnly(s, a, sp, keys), a.vals...)
	return c, err
}

// sourceSide is the FROM clause of the source rows of a span (or of keys)
// as the target would hold them, s(k1 …, v1 …), each beside its target
// row, d, when there is one. The target is joined as a table, so that the
// lookup goes through its key's index.
func (b *Backfill) sourceSide(s *intoSides, a *args, sp span, keys []Key) string {
	vals := make([]string, len(s.srcExprs))
	for i, e := range s.srcExprs {
		vals[i] = e + " AS v" + strconv.Itoa(i+1)
	}
	on := make([]string, len(s.keyAlias))
	for i, k := range s.keyAlias {
		q, _ := ident.Quote(s.target.keyCols[i])
		on[i] = "d." + q + " = s." + k
	}
	return "FROM (SELECT " + s.srcKeys + ", " + strings.Join(vals, ", ") + " FROM " + b.plan.table.Quoted() +
		" WHERE " + b.plan.where(a, sp, keys) + ") s LEFT JOIN " + s.target.table.Quoted() + " AS d ON " + strings.Join(on, " AND ")
}

// targetOnly is the FROM … WHERE of the target rows of a span (or of
// keys), d, that have no source row.
func (b *Backfill) targetOnly(s *intoSides, a *args, sp span, keys []Key) string {
	on := make([]string, len(s.keyAlias))
	for i := range s.keyAlias {
		sq, _ := ident.Quote(b.plan.keyCols[i])
		dq, _ := ident.Quote(s.target.keyCols[i])
		on[i] = "s." + sq + " = d." + dq
	}
	return "FROM " + s.target.table.Quoted() + " AS d WHERE " + s.target.where(a, sp, keys) +
		" AND NOT EXISTS (SELECT 1 FROM " + b.plan.table.Quoted() + " AS s WHERE " + strings.Join(on, " AND ") + ")"
}

// differs is true for a source row, in sourceSide, whose target row is
// missing or differs.
func (s *intoSides) differs() string {
	sv := make([]string, len(s.srcExprs))
	for i := range sv {
		sv[i] = "s.v" + strconv.Itoa(i+1)
	}
	q, _ := ident.Quote(s.target.keyCols[0])
	dv := make([]string, len(s.dstCols))
	for i, c := range s.dstCols {
		dv[i] = "d." + c
	}
	return "d." + q + " IS NULL OR (" + strings.Join(dv, ", ") + ") IS DISTINCT FROM (" + strings.Join(sv, ", ") + ")"
}

// listInto lists up to room divergent rows of a span in key order, each
// side shown as a row value's text, (v1,v2,…), or NULL where the side has
// no row.
func (b *Backfill) listInto(ctx context.Context, s *intoSides, o VerifyOptions, sp span, room int, rep *Report) error {
	n, nk := len(s.srcExprs), len(s.keyAlias)
	// Each part selects: the keys (to order by), the keys as text, whether
	// each side has the row, each side's values as text.
	var src, dst []string
	for i, k := range s.keyAlias {
		q, _ := ident.Quote(s.target.keyCols[i])
		src = append(src, "s."+k)
		dst = append(dst, "d."+q)
	}
	for i := range nk {
		src = append(src, b.plan.d.Text(src[i]))
		dst = append(dst, b.plan.d.Text(dst[i]))
	}
	q, _ := ident.Quote(s.target.keyCols[0])
	src = append(src, "1", b.plan.d.Text("d."+q))
	dst = append(dst, "NULL", "1")
	for i := range n {
		src = append(src, b.plan.d.Text("s.v"+strconv.Itoa(i+1)))
		dst = append(dst, "NULL")
	}
	for _, c := range s.dstCols {
		src = append(src, b.plan.d.Text("d."+c))
		dst = append(dst, b.plan.d.Text("d."+c))
	}
	order := make([]string, nk)
	for i := range order {
		order[i] = strconv.Itoa(i + 1)
	}
	a := &args{}
	query := "SELECT " + strings.Join(src, ", ") + " " + b.sourceSide(s, a, sp, nil) + " WHERE " + s.differs() +
		" UNION ALL SELECT " + strings.Join(dst, ", ") + " " + b.targetOnly(s, a, sp, nil) +
		" ORDER BY " + strings.Join(order, ", ")
	query += " LIMIT " + a.add(room)
	rows, err := b.db.QueryContext(ctx, query, a.vals...)
	if err != nil {
		return fmt.Errorf("list divergent rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		keys := make([]any, nk)
		vals := make([]*string, 2*nk+2+2*n)
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
		d := Divergence{Key: make(Key, nk)}
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
		want, got := side(vals[at], vals[at+2:at+2+n]), side(vals[at+1], vals[at+2+n:])
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
