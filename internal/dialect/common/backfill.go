package common

import (
	"slices"
	"strconv"
	"strings"

	"github.com/schemashift/schemashift/internal/dialect"
)

// Backfill is the part of [dialect.BackfillQueries] whose statements every
// supported database accepts as written: those on the checkpoint tables
// that lock nothing. Its zero value is ready; it holds no state and is
// safe for concurrent use.
type Backfill struct{}

// BackfillRegister implements [dialect.BackfillQueries].
func (Backfill) BackfillRegister() string {
	return `INSERT INTO schemashift_backfills (job, definition_hash, table_name, total_estimate, started_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (job) DO NOTHING`
}

// BackfillDefinition implements [dialect.BackfillQueries].
func (Backfill) BackfillDefinition() string {
	return `SELECT definition_hash, status FROM schemashift_backfills WHERE job = $1`
}

// BackfillStart implements [dialect.BackfillQueries].
func (Backfill) BackfillStart() string {
	return `UPDATE schemashift_backfills SET status = CASE WHEN status = 'failed' THEN 'running' ELSE status END,
		error = CASE WHEN status = 'failed' THEN '' ELSE error END, runs = runs + 1, updated_at = $2 WHERE job = $1`
}

// BackfillFail implements [dialect.BackfillQueries].
func (Backfill) BackfillFail() string {
	return `UPDATE schemashift_backfills SET status = 'failed', error = $2, updated_at = $3
			WHERE job = $1 AND status = 'running'`
}

// BackfillSetStatus implements [dialect.BackfillQueries].
func (Backfill) BackfillSetStatus(from int) string {
	in := make([]string, from)
	for i := range in {
		in[i] = "$" + strconv.Itoa(4+i)
	}
	return `UPDATE schemashift_backfills SET status = $2, updated_at = $3
		WHERE job = $1 AND status IN (` + strings.Join(in, ", ") + `)`
}

// BackfillCountLeased implements [dialect.BackfillQueries].
func (Backfill) BackfillCountLeased() string {
	return `SELECT count(*) FROM schemashift_backfill_chunks WHERE job = $1 AND status = 'leased'`
}

// BackfillDone implements [dialect.BackfillQueries].
func (Backfill) BackfillDone() string {
	return `UPDATE schemashift_backfills SET status = 'done', finished_at = $2, updated_at = $2
			WHERE job = $1`
}

// BackfillExhausted implements [dialect.BackfillQueries].
func (Backfill) BackfillExhausted() string {
	return `UPDATE schemashift_backfills SET exhausted = true, updated_at = $2 WHERE job = $1`
}

// BackfillAddChunk implements [dialect.BackfillQueries].
func (Backfill) BackfillAddChunk() string {
	return `INSERT INTO schemashift_backfill_chunks (job, seq, lo, hi, status, worker, lease_until, scanned, started_at)
		VALUES ($1, $2, $3, $4, 'leased', $5, $6, $7, $8)`
}

// BackfillAdvance implements [dialect.BackfillQueries].
func (Backfill) BackfillAdvance() string {
	return `UPDATE schemashift_backfills SET frontier = $2, exhausted = $3, next_seq = next_seq + 1,
		chunk_size = $4, updated_at = $5 WHERE job = $1`
}

// BackfillBoundTail implements [dialect.BackfillQueries].
func (Backfill) BackfillBoundTail() string {
	return `UPDATE schemashift_backfill_chunks SET hi = $4, scanned = $5
		WHERE job = $1 AND seq = $2 AND worker = $3 AND status = 'leased' AND hi IS NULL`
}

// BackfillReopen implements [dialect.BackfillQueries].
func (Backfill) BackfillReopen() string {
	return `UPDATE schemashift_backfills SET frontier = $2, exhausted = false, updated_at = $3
		WHERE job = $1 AND exhausted`
}

// BackfillIdle implements [dialect.BackfillQueries].
func (Backfill) BackfillIdle() string {
	return `SELECT b.status, b.exhausted,
			EXISTS (SELECT 1 FROM schemashift_backfill_chunks c WHERE c.job = b.job AND c.status = 'leased') AS leased,
			EXISTS (SELECT 1 FROM schemashift_backfill_chunks c WHERE c.job = b.job AND c.status = 'leased'
				AND (c.lease_until < $3 OR c.worker = $2)) AS claimable
		FROM schemashift_backfills b WHERE b.job = $1`
}

// BackfillFinishChunk implements [dialect.BackfillQueries].
func (Backfill) BackfillFinishChunk(open bool) string {
	q := `UPDATE schemashift_backfill_chunks SET status = 'done', changed = $4, finished_at = $5
		WHERE job = $1 AND seq = $2 AND worker = $3 AND status = 'leased'`
	if open {
		q += ` AND hi IS NULL`
	}
	return q
}

// BackfillRenew implements [dialect.BackfillQueries].
func (Backfill) BackfillRenew() string {
	return `UPDATE schemashift_backfill_chunks SET lease_until = $4
		WHERE job = $1 AND seq = $2 AND worker = $3 AND status = 'leased'`
}

// BackfillRelease implements [dialect.BackfillQueries].
func (Backfill) BackfillRelease() string {
	return `UPDATE schemashift_backfill_chunks SET lease_until = $4, attempts = attempts - 1
		WHERE job = $1 AND seq = $2 AND worker = $3 AND status = 'leased'`
}

// BackfillBeat implements [dialect.BackfillQueries].
func (Backfill) BackfillBeat() string {
	return `UPDATE schemashift_backfills SET
		alive_worker = CASE WHEN alive_until > $2 THEN alive_worker ELSE $3 END,
		alive_until = CASE WHEN alive_until > $2 THEN alive_until ELSE $2 END
		WHERE job = $1`
}

// BackfillRetried implements [dialect.BackfillQueries].
func (Backfill) BackfillRetried() string {
	return `UPDATE schemashift_backfills SET retries = retries + 1 WHERE job = $1`
}

// BackfillThrottled implements [dialect.BackfillQueries].
func (Backfill) BackfillThrottled() string {
	return `UPDATE schemashift_backfills SET throttled_ms = throttled_ms + $2 WHERE job = $1`
}

// BackfillThrottle implements [dialect.BackfillQueries].
func (Backfill) BackfillThrottle() string {
	return `UPDATE schemashift_backfills SET throttle = $2 WHERE job = $1`
}

// BackfillPace implements [dialect.BackfillQueries].
func (Backfill) BackfillPace() string {
	return `UPDATE schemashift_backfills SET foreground = $2, pace = $3 WHERE job = $1`
}

// BackfillWindow implements [dialect.BackfillQueries].
func (Backfill) BackfillWindow() string {
	return `UPDATE schemashift_backfills SET run_window = $2 WHERE job = $1`
}

// BackfillState implements [dialect.BackfillQueries].
func (Backfill) BackfillState() string {
	return `SELECT b.table_name, b.status, b.frontier, b.total_estimate, b.chunk_size, b.throttle, b.foreground, b.pace, b.run_window,
			b.verify_status, b.verify_divergent, b.error, b.started_at, b.updated_at, b.finished_at, b.runs, b.retries, b.throttled_ms,
			coalesce(sum(c.scanned) FILTER (WHERE c.status = 'done'), 0) AS done,
			coalesce(sum(c.changed) FILTER (WHERE c.status = 'done'), 0) AS changed,
			count(c.seq) FILTER (WHERE c.status = 'done') AS n_done,
			count(c.seq) FILTER (WHERE c.status = 'leased') AS n_leased,
			count(c.seq) FILTER (WHERE c.attempts > 1) AS n_redone,
			b.alive_until, b.alive_worker, max(c.lease_until) AS last_lease,
			(SELECT l.worker FROM schemashift_backfill_chunks l WHERE l.job = b.job AND l.status = 'leased'
				ORDER BY l.lease_until DESC LIMIT 1) AS leased_worker
		FROM schemashift_backfills b LEFT JOIN schemashift_backfill_chunks c ON c.job = b.job
		WHERE b.job = $1 GROUP BY b.job`
}

// BackfillVerifyStart implements [dialect.BackfillQueries].
func (Backfill) BackfillVerifyStart() string {
	return `UPDATE schemashift_backfills SET verify_status = 'running', verify_detail = $2,
		verify_started_at = $3 WHERE job = $1`
}

// BackfillVerifyRecord implements [dialect.BackfillQueries].
func (Backfill) BackfillVerifyRecord() string {
	return `UPDATE schemashift_backfills SET verify_status = $2, verify_divergent = $3,
		verify_detail = $4, verified_at = $6, updated_at = $6
		WHERE job = $1 AND verify_status = 'running' AND verify_detail = $5`
}

// BackfillExplain implements [dialect.BackfillQueries].
func (Backfill) BackfillExplain(stmt string) string { return "EXPLAIN " + stmt }

// BackfillUpgrade is the DDL of a dialect's [dialect.BackfillQueries]
// BackfillSchema: create (the statements that create the tables, each
// IF NOT EXISTS) followed by an ALTER TABLE schemashift_backfills ADD
// COLUMN of each of added (column definitions, in the order releases
// added them) whose column have lacks; "" when have holds the last and
// runs (schemashift_backfill_runs, the last table added) exists.
func BackfillUpgrade(create string, added, have []string, runs bool) string {
	name := func(def string) string { return strings.Fields(def)[0] }
	if runs && slices.Contains(have, name(added[len(added)-1])) {
		return ""
	}
	ddl := create
	for _, c := range added {
		if !slices.Contains(have, name(c)) {
			ddl += "\nALTER TABLE schemashift_backfills ADD COLUMN " + c + ";"
		}
	}
	return ddl
}

// BackfillParams are the parameters $first … $first+n-1, and the number
// of the next one.
func BackfillParams(first, n int) ([]string, int) {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = "$" + strconv.Itoa(first+i)
	}
	return ps, first + n
}

// BackfillNulls is the predicate that every one of cols is NULL, each
// qualified by prefix ("" or an alias and a dot).
func BackfillNulls(prefix string, cols []string) string {
	nulls := make([]string, len(cols))
	for i, c := range cols {
		nulls[i] = prefix + c + " IS NULL"
	}
	return "(" + strings.Join(nulls, " AND ") + ")"
}

// BackfillCountWhere counts the rows where base and cond hold; none where
// cond is "" (the job cannot tell).
func BackfillCountWhere(base, cond string) string {
	if cond == "" {
		return "0"
	}
	return "count(*) FILTER (WHERE " + base + " AND " + cond + ")"
}

// BackfillKind is the CASE naming a divergent row's kind: 'unfilled'
// where unfilled holds, else 'drifted' where drifted does ("": never),
// else 'unverified'.
func BackfillKind(unfilled, drifted string) string {
	kind := "CASE WHEN " + unfilled + " THEN 'unfilled'"
	if drifted != "" {
		kind += " WHEN " + drifted + " THEN 'drifted'"
	}
	return kind + " ELSE 'unverified' END"
}

// BackfillAliases are the names prefix1 … prefixN of n columns of a
// subquery, and each of cols AS its name (where cols is not nil).
func BackfillAliases(prefix string, n int, cols []string) (names, as []string) {
	for i := range n {
		names = append(names, prefix+strconv.Itoa(i+1))
		if cols != nil {
			as = append(as, cols[i]+" AS "+names[i])
		}
	}
	return names, as
}

// BackfillEquals is the predicate that each of a's columns equals b's,
// each side qualified by its alias.
func BackfillEquals(aliasA string, a []string, aliasB string, b []string) string {
	on := make([]string, len(a))
	for i := range a {
		on[i] = aliasA + "." + a[i] + " = " + aliasB + "." + b[i]
	}
	return strings.Join(on, " AND ")
}

// BackfillUnfilledGo is the predicate, over the walked table aliased
// schemashift_s (key: its key columns, quoted), of a Go-mode job's rows
// that no one has filled: g's Fills all NULL, or no row of g's Check
// table, aliased schemashift_d, copies the row's key.
func BackfillUnfilledGo(g dialect.BackfillGo, key []string) string {
	if g.Check == "" {
		return BackfillNulls("schemashift_s.", g.Fills)
	}
	return "NOT EXISTS (SELECT 1 FROM " + g.Check + " AS schemashift_d WHERE " + BackfillEquals("schemashift_d", g.CheckKey, "schemashift_s", key) + ")"
}

// BackfillJobExists implements [dialect.BackfillQueries].
func (Backfill) BackfillJobExists() string {
	return `SELECT count(*) FROM schemashift_backfills WHERE job = $1`
}

// BackfillHistory implements [dialect.BackfillQueries].
func (Backfill) BackfillHistory(limited bool) string {
	q := `SELECT seq, scanned, changed, attempts, started_at, finished_at FROM schemashift_backfill_chunks
		WHERE job = $1 AND status = 'done' AND finished_at IS NOT NULL ORDER BY finished_at DESC, seq DESC`
	if limited {
		q += ` LIMIT $2`
	}
	return q
}
