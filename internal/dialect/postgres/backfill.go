package postgres

import (
	"slices"
	"strconv"
	"strings"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialect/common"
)

// The statements of [dialect.BackfillQueries] that PostgreSQL spells its
// own way: row values as ROW(…), parameters cast to the key's types,
// text as ::text, values as a column's type by CAST, FOR UPDATE locks,
// SKIP LOCKED, and checksums by hashtextextended. The rest are
// [common.Backfill]'s.

// backfillTables create the checkpoint tables as first released;
// backfillAdded are the columns added to schemashift_backfills since, in
// the order they were added.
const backfillTables = `CREATE TABLE IF NOT EXISTS schemashift_backfills (
	job             text PRIMARY KEY,
	definition_hash text NOT NULL,
	table_name      text NOT NULL,
	status          text NOT NULL DEFAULT 'running',
	frontier        jsonb,
	exhausted       boolean NOT NULL DEFAULT false,
	next_seq        bigint NOT NULL DEFAULT 1,
	total_estimate  bigint,
	chunk_size      integer,
	throttle        text NOT NULL DEFAULT '',
	verify_status   text NOT NULL DEFAULT '',
	verify_divergent bigint,
	verify_detail   text NOT NULL DEFAULT '',
	verified_at     timestamptz,
	error           text NOT NULL DEFAULT '',
	started_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now(),
	finished_at     timestamptz
);
CREATE TABLE IF NOT EXISTS schemashift_backfill_chunks (
	job         text NOT NULL REFERENCES schemashift_backfills (job) ON DELETE CASCADE,
	seq         bigint NOT NULL,
	lo          jsonb,
	hi          jsonb,
	status      text NOT NULL,
	worker      text NOT NULL,
	lease_until timestamptz NOT NULL,
	attempts    integer NOT NULL DEFAULT 1,
	scanned     bigint NOT NULL DEFAULT 0,
	changed     bigint NOT NULL DEFAULT 0,
	started_at  timestamptz NOT NULL DEFAULT now(),
	finished_at timestamptz,
	PRIMARY KEY (job, seq)
);
CREATE INDEX IF NOT EXISTS schemashift_backfill_chunks_leased
	ON schemashift_backfill_chunks (job, lease_until) WHERE status = 'leased';
CREATE TABLE IF NOT EXISTS schemashift_backfill_runs (
	run         text PRIMARY KEY,
	job         text NOT NULL,
	xacts       bigint NOT NULL DEFAULT 0,
	active_us   bigint NOT NULL DEFAULT 0,
	alive_until timestamptz NOT NULL
);`

var backfillAdded = []string{
	"runs bigint NOT NULL DEFAULT 0",
	"retries bigint NOT NULL DEFAULT 0",
	"throttled_ms bigint NOT NULL DEFAULT 0",
	"verify_started_at timestamptz",
	"alive_until timestamptz",
	"alive_worker text NOT NULL DEFAULT ''",
	"foreground text NOT NULL DEFAULT ''",
	"pace text NOT NULL DEFAULT ''",
	"run_window text NOT NULL DEFAULT ''",
}

// BackfillSchema implements [dialect.BackfillQueries].
func (Dialect) BackfillSchema(have []string, runs bool) string {
	return common.BackfillUpgrade(backfillTables, backfillAdded, have, runs)
}

// BackfillStatus implements [dialect.BackfillQueries].
func (Dialect) BackfillStatus() string {
	return `SELECT status FROM schemashift_backfills WHERE job = $1 FOR UPDATE`
}

// BackfillClaimJob implements [dialect.BackfillQueries].
func (Dialect) BackfillClaimJob() string {
	return `SELECT status, frontier, exhausted, next_seq FROM schemashift_backfills
		WHERE job = $1 FOR UPDATE`
}

// BackfillChunkLease implements [dialect.BackfillQueries].
func (Dialect) BackfillChunkLease() string {
	return `SELECT worker, status, hi, scanned FROM schemashift_backfill_chunks WHERE job = $1 AND seq = $2 FOR UPDATE`
}

// BackfillChunkCheck implements [dialect.BackfillQueries].
func (Dialect) BackfillChunkCheck() string {
	return `SELECT j.status AS job_status, c.worker, c.status, c.hi, c.scanned
		FROM schemashift_backfills AS j
		LEFT JOIN schemashift_backfill_chunks AS c ON c.job = j.job AND c.seq = $2
		WHERE j.job = $1`
}

// BackfillTakeLease implements [dialect.BackfillQueries].
func (Dialect) BackfillTakeLease() string {
	return `UPDATE schemashift_backfill_chunks AS c
		SET worker = $2, lease_until = $4, attempts = c.attempts + 1, started_at = $3
		WHERE (c.job, c.seq) = (SELECT job, seq FROM schemashift_backfill_chunks
			WHERE job = $1 AND status = 'leased' AND (lease_until < $3 OR worker = $2)
			ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING seq, lo, hi, attempts, scanned`
}

// span is the predicate of s over t's key, its parameters numbered from
// first, and the number of the next.
func span(t dialect.BackfillTable, s dialect.BackfillSpan, first int) (string, int) {
	key := "ROW(" + strings.Join(t.Key, ", ") + ")"
	bound := func() string {
		ps, next := common.BackfillParams(first, len(t.Key))
		for i, p := range ps {
			ps[i] = p + "::" + t.Types[i]
		}
		first = next
		return "ROW(" + strings.Join(ps, ", ") + ")"
	}
	var conds []string
	if s.Lo {
		conds = append(conds, key+" > "+bound())
	}
	if s.Hi {
		conds = append(conds, key+" <= "+bound())
	}
	if len(conds) == 0 {
		return "true", first
	}
	return strings.Join(conds, " AND "), first
}

// keyText is t's key columns as text, aliased schemashift_k1 …, so that
// an ORDER BY names the columns and not this text.
func keyText(t dialect.BackfillTable) string {
	texts := make([]string, len(t.Key))
	for i, k := range t.Key {
		texts[i] = k + "::text AS schemashift_k" + strconv.Itoa(i+1)
	}
	return strings.Join(texts, ", ")
}

// BackfillBoundary implements [dialect.BackfillQueries].
func (Dialect) BackfillBoundary(t dialect.BackfillTable, s dialect.BackfillSpan) string {
	where, next := span(t, s, 1)
	return "SELECT " + keyText(t) + " FROM " + t.Name + " WHERE " + where +
		" ORDER BY " + strings.Join(t.Key, ", ") + " LIMIT 1 OFFSET $" + strconv.Itoa(next)
}

// BackfillCount implements [dialect.BackfillQueries].
func (Dialect) BackfillCount(t dialect.BackfillTable, s dialect.BackfillSpan) string {
	where, _ := span(t, s, 1)
	return "SELECT count(*) FROM " + t.Name + " WHERE " + where
}

// setShape is what a Set job's statements compare: the new columns
// against their expressions (differs), the rows no one has written
// (unfilled), and, with Down or Derived, the rows written through the new
// path (newPath) and those changed behind the adapters' back (drifted).
type setShape struct {
	differs, unfilled, newPath, drifted string
	sets, downSets                      []string
}

func setShapeOf(set dialect.BackfillSet) setShape {
	var sh setShape
	exprs := make([]string, len(set.Exprs))
	for i, c := range set.Columns {
		exprs[i] = "(" + set.Exprs[i] + ")"
		sh.sets = append(sh.sets, c+" = "+exprs[i])
	}
	sh.differs = "ROW(" + strings.Join(set.Columns, ", ") + ") IS DISTINCT FROM ROW(" + strings.Join(exprs, ", ") + ")"
	sh.unfilled = common.BackfillNulls("", set.Columns)
	if len(set.Down) > 0 {
		old, down := make([]string, len(set.Down)), make([]string, len(set.Down))
		for i, d := range set.Down {
			old[i], down[i] = d.Column, "CAST(("+d.Expr+") AS "+d.Type+")"
			sh.downSets = append(sh.downSets, d.Column+" = "+down[i])
		}
		row := "ROW(" + strings.Join(old, ", ") + ")"
		sh.newPath = row + " IS NOT DISTINCT FROM ROW(" + strings.Join(down, ", ") + ")"
		sh.drifted = row + " IS DISTINCT FROM ROW(" + strings.Join(down, ", ") + ")"
		// A new-path write may set every new column NULL; Down tells it
		// from a row no one wrote, where it holds.
		sh.unfilled = "(" + sh.unfilled + " AND " + sh.drifted + ")"
	} else if set.Derived {
		sh.drifted = "true"
	}
	return sh
}

// BackfillSetChunk implements [dialect.BackfillQueries].
func (Dialect) BackfillSetChunk(t dialect.BackfillTable, s dialect.BackfillSpan, set dialect.BackfillSet) string {
	sh := setShapeOf(set)
	where, _ := span(t, s, 1)
	return "UPDATE " + t.Name + " SET " + strings.Join(sh.sets, ", ") +
		" WHERE " + where + " AND " + sh.unfilled + " AND " + sh.differs
}

// BackfillSetTally implements [dialect.BackfillQueries].
func (Dialect) BackfillSetTally(t dialect.BackfillTable, s dialect.BackfillSpan, set dialect.BackfillSet) string {
	where, _ := span(t, s, 1)
	return "SELECT count(*) AS rows, count(*) FILTER (WHERE " + setShapeOf(set).differs + ") AS differs FROM " +
		t.Name + " WHERE " + where
}

// BackfillSetKinds implements [dialect.BackfillQueries].
func (Dialect) BackfillSetKinds(t dialect.BackfillTable, s dialect.BackfillSpan, set dialect.BackfillSet) string {
	sh := setShapeOf(set)
	where, _ := span(t, s, 1)
	filled := "NOT " + sh.unfilled
	return "SELECT count(*) AS differs, count(*) FILTER (WHERE " + sh.unfilled + ") AS unfilled, " +
		common.BackfillCountWhere(filled, sh.newPath) + " AS new_path, " + common.BackfillCountWhere(filled, sh.drifted) + " AS drifted FROM " +
		t.Name + " WHERE " + where + " AND " + sh.differs
}

// BackfillSetList implements [dialect.BackfillQueries].
func (Dialect) BackfillSetList(t dialect.BackfillTable, s dialect.BackfillSpan, set dialect.BackfillSet) string {
	sh := setShapeOf(set)
	var pairs []string
	for i, c := range set.Columns {
		pairs = append(pairs, "("+set.Exprs[i]+")::text", c+"::text")
	}
	divergent := sh.differs
	if sh.newPath != "" {
		divergent += " AND (" + sh.unfilled + " OR NOT (" + sh.newPath + "))"
	}
	where, next := span(t, s, 1)
	return "SELECT " + keyText(t) + ", " + common.BackfillKind(sh.unfilled, sh.drifted) + ", " + strings.Join(pairs, ", ") + " FROM " + t.Name +
		" WHERE " + where + " AND " + divergent + " ORDER BY " + strings.Join(t.Key, ", ") + " LIMIT $" + strconv.Itoa(next)
}

// BackfillSetFill implements [dialect.BackfillQueries].
func (Dialect) BackfillSetFill(t dialect.BackfillTable, s dialect.BackfillSpan, set dialect.BackfillSet, drifted bool) string {
	sh := setShapeOf(set)
	cond := sh.unfilled
	if drifted && sh.drifted != "" {
		cond = "(" + sh.unfilled + " OR " + sh.drifted + ")"
	}
	where, _ := span(t, s, 1)
	return "UPDATE " + t.Name + " SET " + strings.Join(sh.sets, ", ") + " WHERE " + where + " AND " + sh.differs + " AND " + cond
}

// BackfillSetRewrite implements [dialect.BackfillQueries].
func (Dialect) BackfillSetRewrite(t dialect.BackfillTable, s dialect.BackfillSpan, set dialect.BackfillSet) string {
	sh := setShapeOf(set)
	if len(sh.downSets) == 0 {
		return ""
	}
	where, _ := span(t, s, 1)
	return "UPDATE " + t.Name + " SET " + strings.Join(sh.downSets, ", ") + " WHERE " + where + " AND " + sh.differs +
		" AND NOT " + sh.unfilled + " AND " + sh.drifted
}

// BackfillInto implements [dialect.BackfillQueries].
func (Dialect) BackfillInto(t dialect.BackfillTable, s dialect.BackfillSpan, into string, cols, exprs, conflict []string) string {
	sel := make([]string, len(exprs))
	for i, e := range exprs {
		sel[i] = "(" + e + ")"
	}
	where, _ := span(t, s, 1)
	return "INSERT INTO " + into + " (" + strings.Join(cols, ", ") + ")" +
		" SELECT " + strings.Join(sel, ", ") + " FROM " + t.Name +
		" WHERE " + where + " ORDER BY " + strings.Join(t.Key, ", ") + " FOR UPDATE" +
		" ON CONFLICT (" + strings.Join(conflict, ", ") + ") DO NOTHING"
}

// BackfillRules implements [dialect.BackfillQueries]: pg_rewrite's rules
// on the table, but a view's own (_RETURN).
func (Dialect) BackfillRules() string {
	return `SELECT EXISTS (SELECT FROM pg_rewrite WHERE ev_class = to_regclass($1) AND rulename <> '_RETURN')`
}

// BackfillTimed implements [dialect.BackfillQueries]. The statement runs
// as a data-modifying WITH, which runs to its end before the count over
// it is read; statement_timestamp() is the receipt of the Execute
// message (of the Query, on the simple protocol), after the Bind that
// planned it: the planning of a statement over many partitions, which
// the client sees but pg_stat_database's active_time does not count,
// is left out.
func (Dialect) BackfillTimed(stmt string) string {
	return "WITH schemashift_w AS (" + stmt + " RETURNING 1) SELECT count(*) AS changed," +
		" " + statementMicros + " AS micros FROM schemashift_w"
}

// statementMicros is how long the statement has run, in microseconds,
// by the database's clock: from the receipt of the message that runs it
// (after the Bind that planned it, on the extended protocol).
const statementMicros = "CAST(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000000 AS bigint)"

// BackfillGoRows implements [dialect.BackfillQueries].
func (Dialect) BackfillGoRows(t dialect.BackfillTable, s dialect.BackfillSpan, g dialect.BackfillGo) string {
	where, _ := span(t, s, 1)
	keys := strings.Join(t.Key, ", ")
	cols := append([]string{keys}, g.Columns...)
	if g.Timed != "" {
		cols = append(cols, statementMicros+" AS "+g.Timed)
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + t.Name + " AS schemashift_s" +
		" WHERE " + where + " AND " + common.BackfillUnfilledGo(g, t.Key) + " ORDER BY " + keys + " FOR UPDATE"
}

// BackfillLock implements [dialect.BackfillQueries].
func (Dialect) BackfillLock(t dialect.BackfillTable, s dialect.BackfillSpan) string {
	where, _ := span(t, s, 1)
	return "SELECT 1 FROM " + t.Name + " WHERE " + where + " ORDER BY " + strings.Join(t.Key, ", ") + " FOR UPDATE"
}

// moveShape is what a move's verification compares, over the source rows
// of a span beside their target rows (see sourceSide).
type moveShape struct {
	src                      []string // each column's expression, as the target column's type
	olds                     []string // the old columns Down names, AS schemashift_o1 …
	newPath, drifted         string
	keyAlias                 []string // schemashift_k1 …
	srcKeys                  []string // the source key AS schemashift_k1 …
	sets                     []string // target column = s.schemashift_vN, outside the target's key
	missing, differsValues   string
	differs                  string
	sourceVals, targetValues []string
}

func moveShapeOf(source dialect.BackfillTable, m dialect.BackfillMove) moveShape {
	var sh moveShape
	for i, c := range m.Columns {
		sh.src = append(sh.src, "CAST(("+m.Exprs[i]+") AS "+m.Types[i]+")")
		if !slices.Contains(m.Target.Key, c) {
			sh.sets = append(sh.sets, c+" = s.schemashift_v"+strconv.Itoa(i+1))
		}
	}
	if len(m.Down) > 0 {
		var olds, old, down []string
		for _, d := range m.Down {
			olds, down = append(olds, d.Column), append(down, "CAST(("+d.Expr+") AS "+d.Type+")")
		}
		old, sh.olds = common.BackfillAliases("schemashift_o", len(olds), olds)
		for i := range old {
			old[i] = "s." + old[i]
		}
		row := "ROW(" + strings.Join(old, ", ") + ")"
		sh.newPath = row + " IS NOT DISTINCT FROM ROW(" + strings.Join(down, ", ") + ")"
		sh.drifted = row + " IS DISTINCT FROM ROW(" + strings.Join(down, ", ") + ")"
	} else if m.Derived {
		sh.drifted = "true"
	}
	sh.keyAlias, sh.srcKeys = common.BackfillAliases("schemashift_k", len(source.Key), source.Key)
	sh.missing = "d." + m.Target.Key[0] + " IS NULL"
	sh.sourceVals, _ = common.BackfillAliases("s.schemashift_v", len(m.Columns), nil)
	for _, c := range m.Columns {
		sh.targetValues = append(sh.targetValues, "d."+c)
	}
	sh.differsValues = "(" + strings.Join(sh.targetValues, ", ") + ") IS DISTINCT FROM (" + strings.Join(sh.sourceVals, ", ") + ")"
	sh.differs = sh.missing + " OR " + sh.differsValues
	return sh
}

// sourceRows is the subquery of the source rows of s, as the target would
// hold them: s(schemashift_k1 …, schemashift_v1 …, schemashift_o1 …).
func (sh moveShape) sourceRows(source dialect.BackfillTable, s dialect.BackfillSpan, first int) (string, int) {
	vals := make([]string, len(sh.src))
	for i, e := range sh.src {
		vals[i] = e + " AS schemashift_v" + strconv.Itoa(i+1)
	}
	where, next := span(source, s, first)
	return "(SELECT " + strings.Join(append(append(append([]string(nil), sh.srcKeys...), vals...), sh.olds...), ", ") + " FROM " + source.Name +
		" WHERE " + where + ")", next
}

// sourceSide is the FROM clause of the source rows of s, each beside its
// target row, d, when there is one (joined as a table, so that the lookup
// goes through its key's index).
func (sh moveShape) sourceSide(source dialect.BackfillTable, s dialect.BackfillSpan, m dialect.BackfillMove, first int) (string, int) {
	rows, next := sh.sourceRows(source, s, first)
	return "FROM " + rows + " s LEFT JOIN " + m.Target.Name + " AS d ON " + common.BackfillEquals("d", m.Target.Key, "s", sh.keyAlias), next
}

// targetOnly is the FROM … WHERE of the target rows of s, d, without a
// source row.
func targetOnly(source dialect.BackfillTable, s dialect.BackfillSpan, m dialect.BackfillMove, first int) (string, int) {
	where, next := span(m.Target, s, first)
	return "FROM " + m.Target.Name + " AS d WHERE " + where +
		" AND NOT EXISTS (SELECT 1 FROM " + source.Name + " AS s WHERE " + common.BackfillEquals("s", source.Key, "d", m.Target.Key) + ")", next
}

// BackfillSourceChecksum implements [dialect.BackfillQueries].
func (Dialect) BackfillSourceChecksum(source dialect.BackfillTable, s dialect.BackfillSpan, m dialect.BackfillMove) string {
	where, _ := span(source, s, 1)
	return "SELECT count(*) AS rows, " + checksum(moveShapeOf(source, m).src) + " AS sum FROM " + source.Name + " WHERE " + where
}

// BackfillTargetChecksum implements [dialect.BackfillQueries].
func (Dialect) BackfillTargetChecksum(s dialect.BackfillSpan, m dialect.BackfillMove) string {
	where, _ := span(m.Target, s, 1)
	return "SELECT count(*) AS rows, " + checksum(m.Columns) + " AS sum FROM " + m.Target.Name + " WHERE " + where
}

// checksum is the text of the sum of a hash of each row value of exprs.
func checksum(exprs []string) string {
	return "coalesce(sum(hashtextextended(ROW(" + strings.Join(exprs, ", ") + ")::text, 0)), 0)::text"
}

// BackfillMoveTally implements [dialect.BackfillQueries].
func (Dialect) BackfillMoveTally(source dialect.BackfillTable, s dialect.BackfillSpan, m dialect.BackfillMove) string {
	sh := moveShapeOf(source, m)
	filled := "NOT " + sh.missing + " AND " + sh.differsValues
	from, _ := sh.sourceSide(source, s, m, 1)
	return "SELECT count(*) AS rows, count(*) FILTER (WHERE " + sh.differs + ") AS differs" +
		", count(*) FILTER (WHERE " + sh.missing + ") AS unfilled, " + common.BackfillCountWhere(filled, sh.newPath) + " AS new_path, " +
		common.BackfillCountWhere(filled, sh.drifted) + " AS drifted " + from
}

// BackfillMoveOrphans implements [dialect.BackfillQueries].
func (Dialect) BackfillMoveOrphans(source dialect.BackfillTable, s dialect.BackfillSpan, m dialect.BackfillMove) string {
	from, _ := targetOnly(source, s, m, 1)
	return "SELECT count(*) " + from
}

// BackfillMoveList implements [dialect.BackfillQueries].
func (Dialect) BackfillMoveList(source dialect.BackfillTable, s dialect.BackfillSpan, m dialect.BackfillMove) string {
	sh := moveShapeOf(source, m)
	nk := len(sh.keyAlias)
	var src, dst []string
	for i, k := range sh.keyAlias {
		src, dst = append(src, "s."+k), append(dst, "d."+m.Target.Key[i])
	}
	for i := range nk {
		src, dst = append(src, src[i]+"::text"), append(dst, dst[i]+"::text")
	}
	src = append(src, "'1'", "d."+m.Target.Key[0]+"::text")
	dst = append(dst, "NULL", "'1'")
	for _, v := range sh.sourceVals {
		src, dst = append(src, v+"::text"), append(dst, "NULL")
	}
	for _, v := range sh.targetValues {
		src, dst = append(src, v+"::text"), append(dst, v+"::text")
	}
	where := "(" + sh.differs + ")"
	if sh.newPath != "" {
		where = "(" + sh.missing + " OR (" + sh.differsValues + " AND NOT (" + sh.newPath + ")))"
	}
	src, dst = append(src, common.BackfillKind(sh.missing, sh.drifted)), append(dst, "'orphan'")
	order := make([]string, nk)
	for i := range order {
		order[i] = strconv.Itoa(i + 1)
	}
	from, next := sh.sourceSide(source, s, m, 1)
	only, next := targetOnly(source, s, m, next)
	return "SELECT " + strings.Join(src, ", ") + " " + from + " WHERE " + where +
		" UNION ALL SELECT " + strings.Join(dst, ", ") + " " + only +
		" ORDER BY " + strings.Join(order, ", ") + " LIMIT $" + strconv.Itoa(next)
}

// BackfillMoveRepair implements [dialect.BackfillQueries].
func (Dialect) BackfillMoveRepair(source dialect.BackfillTable, s dialect.BackfillSpan, m dialect.BackfillMove) string {
	sh := moveShapeOf(source, m)
	if sh.drifted == "" || len(sh.sets) == 0 {
		return ""
	}
	rows, _ := sh.sourceRows(source, s, 1)
	return "UPDATE " + m.Target.Name + " AS d SET " + strings.Join(sh.sets, ", ") +
		" FROM " + rows + " AS s WHERE " + common.BackfillEquals("d", m.Target.Key, "s", sh.keyAlias) + " AND " + sh.differsValues + " AND " + sh.drifted
}

// BackfillMoveRewrite implements [dialect.BackfillQueries].
func (Dialect) BackfillMoveRewrite(source dialect.BackfillTable, s dialect.BackfillSpan, m dialect.BackfillMove) string {
	sh := moveShapeOf(source, m)
	if len(m.Down) == 0 {
		return ""
	}
	sel := make([]string, 0, len(sh.keyAlias)+len(m.Down))
	for _, k := range sh.keyAlias {
		sel = append(sel, "s."+k)
	}
	var sets []string
	for i, d := range m.Down {
		alias := "schemashift_n" + strconv.Itoa(i+1)
		sel = append(sel, "CAST(("+d.Expr+") AS "+d.Type+") AS "+alias)
		sets = append(sets, d.Column+" = x."+alias)
	}
	from, _ := sh.sourceSide(source, s, m, 1)
	return "UPDATE " + source.Name + " AS schemashift_u SET " + strings.Join(sets, ", ") +
		" FROM (SELECT " + strings.Join(sel, ", ") + " " + from + " WHERE NOT " + sh.missing + " AND " + sh.differsValues +
		" AND " + sh.drifted + ") AS x WHERE " + common.BackfillEquals("schemashift_u", source.Key, "x", sh.keyAlias)
}

// BackfillRunLoad implements [dialect.BackfillQueries], in one
// statement (one transaction in the statistics): the run's row written,
// its counts never moved back (a run's two writers, its loop and its
// readings, may commit out of the order they counted in), the others'
// read. Times are the server's, so that runs on machines whose clocks
// differ agree.
func (Dialect) BackfillRunLoad() string {
	return `WITH mine AS (
		INSERT INTO schemashift_backfill_runs AS r (run, job, xacts, active_us, alive_until)
		VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond')
		ON CONFLICT (run) DO UPDATE SET job = EXCLUDED.job, xacts = GREATEST(r.xacts, EXCLUDED.xacts),
			active_us = GREATEST(r.active_us, EXCLUDED.active_us), alive_until = EXCLUDED.alive_until
		RETURNING run
	)
	SELECT run, xacts, active_us FROM schemashift_backfill_runs WHERE run <> $1`
}

// BackfillRunsGone implements [dialect.BackfillQueries]: a statement of
// its own, which never waits (rows another holds are skipped) and holds
// no row another waits on in turn, so that it cannot deadlock with the
// writes; "the rows kept past their time, removed".
func (Dialect) BackfillRunsGone() string {
	return `DELETE FROM schemashift_backfill_runs WHERE run IN (
		SELECT run FROM schemashift_backfill_runs WHERE alive_until < now() FOR UPDATE SKIP LOCKED)`
}

// BackfillForegroundStats implements [dialect.BackfillQueries] from
// pg_stat_database (active_time: PostgreSQL 14 and later).
func (Dialect) BackfillForegroundStats() string {
	return `SELECT xact_commit + xact_rollback AS xacts, active_time AS active_ms
		FROM pg_stat_database WHERE datname = current_database()`
}
