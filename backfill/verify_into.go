package backfill

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/jmoiron/sqlx"

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
	// hashed: the database hashes rows, so chunks compare by the checksums
	// srcSum and dstSum; where it cannot (SQLite), rows compare in place.
	hashed         bool
	srcSum, dstSum string
	keyAlias       []string // schemashift_k1, … (prefixed: the target's own columns stay unambiguous)
	srcKeys        string   // source key columns AS schemashift_k1, …
	columns        []string // target column names, in Into.Columns order
	sensitive      func(string) bool
	// olds are the source's old columns Down names, AS schemashift_o1 …,
	// for the s side of sourceSide; newPath and drifted are the
	// predicates, over sourceSide, of a row written through the new path
	// and of one changed behind the adapters' back ("" when the job cannot
	// tell).
	olds             []string
	newPath, drifted string
	sets             []string // SET target column = s.schemashift_vN, for the target's columns outside its key
}

func (b *Backfill) intoSides(ctx context.Context) (*intoSides, error) {
	into := b.job.move() // a Go-mode job's Check is its SQL description
	// The target key copies the source key, column for column.
	targetKey, err := b.plan.moveKey(into)
	if err != nil {
		return nil, err
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
		if !contains(targetKey, a.Column) {
			s.sets = append(s.sets, c+" = s.schemashift_v"+strconv.Itoa(len(s.srcExprs)))
		}
	}
	if len(b.job.Down) > 0 {
		for i, a := range b.job.Down {
			q, _ := ident.Quote(a.Column)
			s.olds = append(s.olds, q+" AS schemashift_o"+strconv.Itoa(i+1))
		}
		old, down, err := b.plan.downRow(b.job.Down, func(_ string, i int) string { return "s.schemashift_o" + strconv.Itoa(i) })
		if err != nil {
			return nil, err
		}
		s.newPath = old + " IS NOT DISTINCT FROM " + down
		s.drifted = old + " IS DISTINCT FROM " + down
	} else if b.job.Derived {
		s.drifted = "true"
	}
	s.srcSum, s.hashed = d.RowChecksum(s.srcExprs...)
	s.dstSum, _ = d.RowChecksum(s.dstCols...)
	var sk []string
	for i := range b.plan.keyCols {
		alias := fmt.Sprintf("schemashift_k%d", i+1)
		s.keyAlias = append(s.keyAlias, alias)
		q, _ := ident.Quote(b.plan.keyCols[i])
		sk = append(sk, q+" AS "+alias)
	}
	s.srcKeys = strings.Join(sk, ", ")
	return s, nil
}

type checksum struct {
	Rows int64  `db:"rows"`
	Sum  string `db:"sum"`
}

func (b *Backfill) checksums(ctx context.Context, s *intoSides, sp span) (src, dst checksum, err error) {
	a := &args{}
	q := "SELECT count(*) AS rows, " + s.srcSum + " AS sum FROM " +
		b.plan.table.Quoted() + " WHERE " + b.plan.where(a, sp)
	if err = b.db.GetContext(ctx, &src, q, a.vals...); err != nil {
		return src, dst, fmt.Errorf("checksum source: %w", err)
	}
	a = &args{}
	q = "SELECT count(*) AS rows, " + s.dstSum + " AS sum FROM " +
		s.target.table.Quoted() + " WHERE " + s.target.where(a, sp)
	if err = b.db.GetContext(ctx, &dst, q, a.vals...); err != nil {
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
	missing, differs := s.missing(), s.differsValues()
	filled := "NOT " + missing + " AND " + differs
	a := &args{}
	if err := b.db.GetContext(ctx, &t, "SELECT count(*) AS rows, count(*) FILTER (WHERE "+s.differs()+") AS differs"+
		", count(*) FILTER (WHERE "+missing+") AS unfilled, "+countWhere(filled, s.newPath)+" AS new_path, "+
		countWhere(filled, s.drifted)+" AS drifted "+b.sourceSide(s, a, sp), a.vals...); err != nil {
		return t, err
	}
	a = &args{}
	err := b.db.GetContext(ctx, &t.Orphans, "SELECT count(*) "+b.targetOnly(s, a, sp), a.vals...)
	return t, err
}

// sourceSide is the FROM clause of the source rows of a span as the
// target would hold them, s(schemashift_k1 …, schemashift_v1 …, and the
// old columns Down names, schemashift_o1 …),
// each beside its target row, d, when there is one. The target is joined
// as a table, so that the lookup goes through its key's index.
func (b *Backfill) sourceSide(s *intoSides, a *args, sp span) string {
	return "FROM " + b.sourceRows(s, a, sp) + " s LEFT JOIN " + s.target.table.Quoted() + " AS d ON " + s.joinOn()
}

// sourceRows is the subquery of sourceSide's s side.
func (b *Backfill) sourceRows(s *intoSides, a *args, sp span) string {
	vals := make([]string, len(s.srcExprs))
	for i, e := range s.srcExprs {
		vals[i] = e + " AS schemashift_v" + strconv.Itoa(i+1)
	}
	return "(SELECT " + strings.Join(append(append([]string{s.srcKeys}, vals...), s.olds...), ", ") + " FROM " + b.plan.table.Quoted() +
		" WHERE " + b.plan.where(a, sp) + ")"
}

// joinOn matches a target row, d, to its source row, s.
func (s *intoSides) joinOn() string {
	on := make([]string, len(s.keyAlias))
	for i, k := range s.keyAlias {
		q, _ := ident.Quote(s.target.keyCols[i])
		on[i] = "d." + q + " = s." + k
	}
	return strings.Join(on, " AND ")
}

// targetOnly is the FROM … WHERE of the target rows of a span, d, that
// have no source row.
func (b *Backfill) targetOnly(s *intoSides, a *args, sp span) string {
	on := make([]string, len(s.keyAlias))
	for i := range s.keyAlias {
		sq, _ := ident.Quote(b.plan.keyCols[i])
		dq, _ := ident.Quote(s.target.keyCols[i])
		on[i] = "s." + sq + " = d." + dq
	}
	return "FROM " + s.target.table.Quoted() + " AS d WHERE " + s.target.where(a, sp) +
		" AND NOT EXISTS (SELECT 1 FROM " + b.plan.table.Quoted() + " AS s WHERE " + strings.Join(on, " AND ") + ")"
}

// missing is true for a source row, in sourceSide, without a target row.
func (s *intoSides) missing() string {
	q, _ := ident.Quote(s.target.keyCols[0])
	return "d." + q + " IS NULL"
}

// differsValues is true for a source row, in sourceSide, whose target
// row's values differ from the source's (false where it has none).
func (s *intoSides) differsValues() string {
	sv := make([]string, len(s.srcExprs))
	for i := range sv {
		sv[i] = "s.schemashift_v" + strconv.Itoa(i+1)
	}
	dv := make([]string, len(s.dstCols))
	for i, c := range s.dstCols {
		dv[i] = "d." + c
	}
	return "(" + strings.Join(dv, ", ") + ") IS DISTINCT FROM (" + strings.Join(sv, ", ") + ")"
}

// differs is true for a source row, in sourceSide, whose target row is
// missing or differs.
func (s *intoSides) differs() string {
	return s.missing() + " OR " + s.differsValues()
}

// divergent is the predicate, over sourceSide, of the divergent source
// rows (not those written through the new path), and the SQL of each
// one's Kind.
func (s *intoSides) divergent() (where, kind string) {
	where = "(" + s.differs() + ")"
	if s.newPath != "" {
		where = "(" + s.missing() + " OR (" + s.differsValues() + " AND NOT (" + s.newPath + ")))"
	}
	kind = "CASE WHEN " + s.missing() + " THEN 'unfilled'"
	if s.drifted != "" {
		kind += " WHEN " + s.drifted + " THEN 'drifted'"
	}
	return where, kind + " ELSE 'unverified' END"
}

// repairMove repairs a move's rows of one span in tx: it locks the source
// rows, fills the missing target rows (as the chunk does, never
// overwriting one), then rewrites from the source the target rows that
// drifted, checked again as they are now.
func (b *Backfill) repairMove(ctx context.Context, tx *sqlx.Tx, s *intoSides, sp span, from Side) (int64, error) {
	if err := b.plan.lockSpan(ctx, tx, sp); err != nil {
		return 0, err
	}
	changed, err := b.fill(ctx, tx, sp)
	if err != nil {
		return 0, err
	}
	if s.drifted == "" || len(s.sets) == 0 {
		return changed, nil
	}
	if from == FromNew {
		n, err := b.rewriteOld(ctx, tx, s, sp)
		return changed + n, err
	}
	a := &args{}
	res, err := tx.ExecContext(ctx, "UPDATE "+s.target.table.Quoted()+" AS d SET "+strings.Join(s.sets, ", ")+
		" FROM "+b.sourceRows(s, a, sp)+" AS s WHERE "+s.joinOn()+" AND "+s.differsValues()+" AND "+s.drifted, a.vals...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return changed + n, err
}

// rewriteOld rewrites, in tx, the old columns of the drifted source rows
// of sp as Down of their target rows (the source rows are locked).
func (b *Backfill) rewriteOld(ctx context.Context, tx *sqlx.Tx, s *intoSides, sp span) (int64, error) {
	downs, err := b.plan.downExprs(b.job.Down)
	if err != nil {
		return 0, err
	}
	sel := make([]string, 0, len(s.keyAlias)+len(downs))
	for _, k := range s.keyAlias {
		sel = append(sel, "s."+k)
	}
	var sets []string
	for i, e := range downs {
		alias := "schemashift_n" + strconv.Itoa(i+1)
		sel = append(sel, e+" AS "+alias)
		q, _ := ident.Quote(b.job.Down[i].Column)
		sets = append(sets, q+" = x."+alias)
	}
	on := make([]string, len(s.keyAlias))
	for i, k := range s.keyAlias {
		q, _ := ident.Quote(b.plan.keyCols[i])
		on[i] = "schemashift_u." + q + " = x." + k
	}
	a := &args{}
	res, err := tx.ExecContext(ctx, "UPDATE "+b.plan.table.Quoted()+" AS schemashift_u SET "+strings.Join(sets, ", ")+
		" FROM (SELECT "+strings.Join(sel, ", ")+" "+b.sourceSide(s, a, sp)+" WHERE NOT "+s.missing()+" AND "+s.differsValues()+
		" AND "+s.drifted+") AS x WHERE "+strings.Join(on, " AND "), a.vals...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
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
	src = append(src, "'1'", b.plan.d.Text("d."+q))
	dst = append(dst, "NULL", "'1'")
	for i := range n {
		src = append(src, b.plan.d.Text("s.schemashift_v"+strconv.Itoa(i+1)))
		dst = append(dst, "NULL")
	}
	for _, c := range s.dstCols {
		src = append(src, b.plan.d.Text("d."+c))
		dst = append(dst, b.plan.d.Text("d."+c))
	}
	divergent, kind := s.divergent()
	src, dst = append(src, kind), append(dst, "'"+string(Orphan)+"'")
	order := make([]string, nk)
	for i := range order {
		order[i] = strconv.Itoa(i + 1)
	}
	a := &args{}
	query := "SELECT " + strings.Join(src, ", ") + " " + b.sourceSide(s, a, sp) + " WHERE " + divergent +
		" UNION ALL SELECT " + strings.Join(dst, ", ") + " " + b.targetOnly(s, a, sp) +
		" ORDER BY " + strings.Join(order, ", ")
	query += " LIMIT " + a.add(room)
	rows, err := b.db.QueryContext(ctx, query, a.vals...)
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
