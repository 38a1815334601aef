package dialect

// BackfillQueries are the whole statements of package backfill: on its
// checkpoint tables (schemashift_backfills, schemashift_backfill_chunks)
// and on the tables a job walks and fills. Each method returns one
// statement; its doc says the bind parameters it takes, in order. Like all
// of [Dialect], it is safe for concurrent use.
//
// A statement built from a job's parts takes them as SQL already: names
// quoted (by package backfill, which checks them), expressions as the
// job's author wrote them. A statement over a span of keys takes, where
// its doc says "the span's bounds", the key values of [BackfillSpan].Lo
// (when it has one), then those of Hi, one text per key column.
//
// The kinds of divergent rows a verification reads back are 'unfilled',
// 'drifted', 'unverified' and 'orphan'.
type BackfillQueries interface {
	// BackfillSchema is the DDL that creates the checkpoint tables and
	// adds to schemashift_backfills the columns later releases added that
	// have (the names of its columns now; none when it does not exist)
	// lacks, and creates schemashift_backfill_runs unless runs (it
	// exists): "" when have holds the last column added and runs, and the
	// tables are current. No parameters.
	BackfillSchema(have []string, runs bool) string

	// BackfillRegister inserts a job's row unless one of its name exists:
	// job, definition hash, table, row estimate, now (started and updated).
	BackfillRegister() string
	// BackfillDefinition reads a job's definition_hash and status: job.
	BackfillDefinition() string
	// BackfillStart counts a Run of the job, making a failed job running
	// again: job, now.
	BackfillStart() string
	// BackfillFail fails a running job: job, error, now.
	BackfillFail() string
	// BackfillSetStatus moves a job to a status from one of from
	// statuses: job, the new status, now, then each status moved from.
	BackfillSetStatus(from int) string
	// BackfillStatus reads a job's status, its row locked to the end of
	// the transaction: job.
	BackfillStatus() string
	// BackfillClaimJob reads, its row locked to the end of the
	// transaction, a job's status, frontier, exhausted and next_seq: job.
	BackfillClaimJob() string
	// BackfillTakeLease takes over the job's first chunk whose lease ran
	// out by now, or that worker held, passing over chunks another
	// transaction holds, and returns its seq, lo, hi, attempts and
	// scanned: job, worker, now, the new lease's end.
	BackfillTakeLease() string
	// BackfillCountLeased counts a job's leased chunks: job.
	BackfillCountLeased() string
	// BackfillDone marks a job done: job, now.
	BackfillDone() string
	// BackfillExhausted records that a job's walk is over: job, now.
	BackfillExhausted() string
	// BackfillAddChunk inserts a leased chunk: job, seq, lo, hi, worker,
	// lease end, rows scanned, now.
	BackfillAddChunk() string
	// BackfillAdvance moves a job's frontier past a chunk it added: job,
	// frontier, exhausted, chunk size, now.
	BackfillAdvance() string
	// BackfillChunkLease reads a chunk's worker, status, upper key and
	// rows scanned, its row locked to the end of the transaction: job,
	// seq.
	BackfillChunkLease() string
	// BackfillChunkCheck reads, with no lock, a job's status and one of
	// its chunks' worker, status, upper key and rows scanned (NULL when
	// the chunk has no row), in one statement: job, seq.
	BackfillChunkCheck() string
	// BackfillBoundTail gives worker's leased open-ended tail chunk an
	// upper key (NULL: it stays open) and its rows scanned: job, seq,
	// worker, hi, scanned.
	BackfillBoundTail() string
	// BackfillReopen moves an exhausted job's frontier to the upper key
	// given to its tail, its walk no longer over: job, frontier, now.
	BackfillReopen() string
	// BackfillIdle reads a job's status and exhausted, whether it has
	// leased chunks (leased) and whether one of them can be claimed by
	// worker (claimable): job, worker, now.
	BackfillIdle() string
	// BackfillFinishChunk marks worker's leased chunk done, one still
	// open-ended when open is set (a tail cut since by another attempt
	// at it is not the span this one walked): job, seq, worker, rows
	// changed, now.
	BackfillFinishChunk(open bool) string
	// BackfillRenew extends worker's lease on a chunk: job, seq, worker,
	// the lease's new end.
	BackfillRenew() string
	// BackfillRelease gives back worker's lease on a chunk, uncounting
	// its attempt: job, seq, worker, now.
	BackfillRelease() string
	// BackfillBeat moves a job's heartbeat forward, never back: job,
	// until when, worker.
	BackfillBeat() string
	// BackfillRetried counts a retry: job.
	BackfillRetried() string
	// BackfillThrottled adds to the time a job waited on throttles: job,
	// milliseconds.
	BackfillThrottled() string
	// BackfillThrottle records why a job is throttled: job, reason.
	BackfillThrottle() string
	// BackfillPace records what a job's latency budget reads the
	// foreground by and how its pace stands: job, source, pace.
	BackfillPace() string
	// BackfillWindow records where a job stands among its run windows:
	// job, the text.
	BackfillWindow() string
	// BackfillForegroundStats reads the database's counters of its
	// transactions (xacts: commits and rollbacks) and of the time its
	// sessions spent running statements (active_ms, milliseconds), both
	// since the statistics were last reset: no parameters. "" where the
	// database keeps none.
	BackfillForegroundStats() string
	// BackfillRunLoad writes what a run counted of its own transactions
	// and of its statements' time (never less than the row holds), and
	// reads the other runs' (any job's), whose load the statistics show
	// too: run, job, xacts, active_us (microseconds), how long from now
	// the row is kept (milliseconds); rows of run, xacts, active_us. ""
	// where BackfillForegroundStats is.
	BackfillRunLoad() string
	// BackfillRunsGone removes the runs' rows kept past their time,
	// without waiting on any: no parameters. "" where BackfillRunLoad is.
	BackfillRunsGone() string
	// BackfillState reads a job's row with its chunks' sums: job.
	BackfillState() string
	// BackfillJobExists counts a job's rows (0 or 1): job.
	BackfillJobExists() string
	// BackfillHistory reads a job's finished chunks (seq, scanned,
	// changed, attempts, started_at, finished_at), the last finished
	// first: job, and the most to read when limited.
	BackfillHistory(limited bool) string
	// BackfillVerifyStart records that a verification started: job, its
	// run's name, now.
	BackfillVerifyStart() string
	// BackfillVerifyRecord records a verification's outcome unless another
	// started since: job, status, divergent rows, detail, its run's name,
	// now.
	BackfillVerifyRecord() string

	// BackfillBoundary reads, as text, the key of the row at an offset
	// into span s of t, in key order: the span's bounds, the offset.
	BackfillBoundary(t BackfillTable, s BackfillSpan) string
	// BackfillCount counts the rows of span s of t: the span's bounds.
	BackfillCount(t BackfillTable, s BackfillSpan) string
	// BackfillExplain is stmt explained, not run: stmt's parameters.
	BackfillExplain(stmt string) string

	// BackfillSetChunk fills the rows of span s of t that no one has
	// written, whose new columns differ from set's expressions: the
	// span's bounds.
	BackfillSetChunk(t BackfillTable, s BackfillSpan, set BackfillSet) string
	// BackfillSetTally counts the rows of span s of t (rows) and those
	// whose new columns differ from set's expressions (differs): the
	// span's bounds.
	BackfillSetTally(t BackfillTable, s BackfillSpan, set BackfillSet) string
	// BackfillSetKinds counts the differing rows of span s of t (differs),
	// and of them the unfilled ones, those written through the new path
	// (new_path) and the drifted ones: the span's bounds.
	BackfillSetKinds(t BackfillTable, s BackfillSpan, set BackfillSet) string
	// BackfillSetList lists divergent rows of span s of t in key order:
	// their key as text, their kind, then, for each of set's columns, its
	// expression and its value as text: the span's bounds, how many rows.
	BackfillSetList(t BackfillTable, s BackfillSpan, set BackfillSet) string
	// BackfillSetFill fills the unfilled rows of span s of t, and the
	// drifted ones too when drifted is set: the span's bounds.
	BackfillSetFill(t BackfillTable, s BackfillSpan, set BackfillSet, drifted bool) string
	// BackfillSetRewrite rewrites the old columns of the drifted rows of
	// span s of t as Down of their new ones ("" without Down): the span's
	// bounds.
	BackfillSetRewrite(t BackfillTable, s BackfillSpan, set BackfillSet) string

	// BackfillInto inserts the rows of span s of t into table into, its
	// columns cols set to exprs, reading the source rows locked, and
	// leaving a target row that exists (by its conflict key) as it is:
	// the span's bounds.
	BackfillInto(t BackfillTable, s BackfillSpan, into string, cols, exprs, conflict []string) string
	// BackfillRules reads whether a table has rules, which refuse its
	// UPDATE inside BackfillTimed's WITH: the table's quoted name. ""
	// where BackfillTimed is.
	BackfillRules() string
	// BackfillTimed is stmt, a BackfillSetChunk or BackfillInto, made to
	// answer one row: the rows it changed (changed) and how long it ran
	// by the database's own clock (micros), from the receipt of the
	// message that runs it to the end of its own work, which is never
	// more than the database counts of the session as active: its
	// statement's parameters. "" where the database keeps no such count.
	BackfillTimed(stmt string) string
	// BackfillGoRows reads, locked, the key and g's columns of the rows of
	// span s of t that no one has filled: the span's bounds.
	BackfillGoRows(t BackfillTable, s BackfillSpan, g BackfillGo) string
	// BackfillLock locks the rows of span s of t in key order: the span's
	// bounds. "" where a write transaction already excludes every other
	// writer.
	BackfillLock(t BackfillTable, s BackfillSpan) string

	// BackfillSourceChecksum reads the rows (rows) of span s of source and
	// a checksum (sum) of them as m's target would hold them: the span's
	// bounds. "" where the database cannot hash rows: compare them in
	// place (BackfillMoveTally, BackfillMoveList) there.
	BackfillSourceChecksum(source BackfillTable, s BackfillSpan, m BackfillMove) string
	// BackfillTargetChecksum reads the rows (rows) of span s of m's target
	// and a checksum (sum) of them: the span's bounds. "" where
	// BackfillSourceChecksum is.
	BackfillTargetChecksum(s BackfillSpan, m BackfillMove) string
	// BackfillMoveTally counts the rows of span s of source (rows), those
	// whose target row is missing or differs (differs), and of them the
	// missing ones (unfilled), those written through the new path
	// (new_path) and the drifted ones: the span's bounds.
	BackfillMoveTally(source BackfillTable, s BackfillSpan, m BackfillMove) string
	// BackfillMoveOrphans counts the target rows of span s that have no
	// source row: the span's bounds.
	BackfillMoveOrphans(source BackfillTable, s BackfillSpan, m BackfillMove) string
	// BackfillMoveList lists divergent rows of span s in key order: the
	// target's key values, then as text the key, whether the source and
	// the target have the row ('1', or NULL), the source's values, the
	// target's values, and the kind: the span's bounds (of the source),
	// again (of the target), how many rows.
	BackfillMoveList(source BackfillTable, s BackfillSpan, m BackfillMove) string
	// BackfillMoveRepair rewrites from the source the drifted target rows
	// of span s ("" when m tells no drifted row, or the target has no
	// column outside its key): the span's bounds.
	BackfillMoveRepair(source BackfillTable, s BackfillSpan, m BackfillMove) string
	// BackfillMoveRewrite rewrites the old columns of the drifted source
	// rows of span s as Down of their target rows ("" without Down): the
	// span's bounds.
	BackfillMoveRewrite(source BackfillTable, s BackfillSpan, m BackfillMove) string
}

// BackfillTable is a table a backfill walks or fills, as SQL: a plain
// value.
type BackfillTable struct {
	Name  string   // quoted, schema-qualified when it was named so
	Key   []string // the key columns, quoted, in index order
	Types []string // each key column's type, as the catalog names it
}

// BackfillSpan is which bounds a span of keys has: the keys after Lo
// (exclusive) up to Hi (inclusive), each open when absent. A plain value.
type BackfillSpan struct{ Lo, Hi bool }

// BackfillSet is a job that fills new columns of the table it walks: a
// plain value.
type BackfillSet struct {
	Columns []string // the new columns, quoted
	Exprs   []string // each one's expression of the old columns
	// Down is each old column as an expression of the new ones: a row
	// whose old columns equal them was written through the new path.
	Down []BackfillDown
	// Derived: the new path writes what Exprs compute, so that a filled
	// row that differs drifted.
	Derived bool
}

// BackfillDown is an old column as an expression of the new shape: a
// plain value.
type BackfillDown struct {
	Column string // quoted
	Expr   string
	Type   string // the column's type, as the catalog names it
}

// BackfillGo is what a Go-mode job reads and how it tells a row no one
// has filled: a plain value.
type BackfillGo struct {
	Columns []string // the columns read besides the key, quoted
	// Fills are the columns it fills, quoted: a row where all are NULL is
	// unfilled. Without Check.
	Fills []string
	// Check is the table it moves rows to, quoted, and CheckKey the
	// column of it that copies each key column: a row without a row
	// there is unfilled.
	Check    string
	CheckKey []string
	// Timed, where not "", names a column to read besides, each row's
	// time from the receipt of the message that runs the statement to
	// the row's read, in microseconds, by the database's clock (see
	// BackfillTimed); the dialects whose BackfillTimed is "" leave it
	// out.
	Timed string
}

// BackfillMove is a job that moves rows into another table, as
// verification compares the two: a plain value.
type BackfillMove struct {
	// Target is the table moved to, keyed by the columns that copy the
	// source's key columns, in their order.
	Target  BackfillTable
	Columns []string // the target's columns the job sets, quoted
	Exprs   []string // each one's expression of the source row
	Types   []string // each column's type, as the catalog names it
	// Down is each of the source's old columns as an expression of the
	// target's: a row whose old columns equal them was written through
	// the new path.
	Down []BackfillDown
	// Derived: the new path writes what Exprs compute.
	Derived bool
}
