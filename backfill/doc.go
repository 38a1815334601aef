// Package backfill fills the new shape of a migrating table from the old
// one, in chunks, without blocking the foreground and without losing a
// write made while it runs.
//
// A [Job] walks a table in primary-key order (keyset pagination: each
// chunk's upper key is found, never assumed, so gaps and composite, UUID and
// text keys all work) and says what each chunk does:
//
//   - Set: one UPDATE per chunk, same table:
//     UPDATE t SET new = expr(old) WHERE key in chunk AND new… IS NULL AND new IS DISTINCT FROM expr(old)
//   - Into: one INSERT … SELECT … FOR UPDATE … ON CONFLICT DO NOTHING per
//     chunk, into another table;
//   - Func: Go code over the chunk's rows that no one has filled, read FOR
//     UPDATE in the transaction the code writes in.
//
// # What the backfill may touch
//
// A value written through the new path is never overwritten from the old
// shape. The new shape often holds more than the old one can express
// ("Mary Ann" "Smith Jones" is full_name "Mary Ann Smith Jones", which
// splits back as "Mary" "Ann Smith Jones"), so a backfill that rewrote
// every row whose new shape differs from its transform of the old one
// would destroy exactly the writes the new code made. Instead, each mode
// fills only rows no one has written since the expand:
//
//   - Set: rows whose Set columns are all NULL. Those columns must be
//     nullable without a default (New refuses NOT NULL ones); a write
//     through the new path sets at least one of them.
//   - Into: source rows with no target row; a target row that exists is
//     left as it is.
//   - Func: rows whose [Job].Fills columns are all NULL, or, for a move,
//     source rows with no row in [Job].Check's table. Func itself should
//     insert without overwriting (ON CONFLICT DO NOTHING): at stage
//     complete the new path writes without the source row's lock.
//
// Each is race-safe against dual writes: a row written while its chunk runs
// is either locked by the chunk (the writer waits, then wins) or re-read by
// the chunk after the writer commits and found filled, so the chunk never
// writes over it, nor writes a value computed from a stale row.
//
// [Backfill.Verify] tells the rows that differ apart ([Kind]), as far as
// the job declares how a row written through the new path looks:
//
//   - Down (old = down(new)): a row whose old columns equal Down of its new
//     ones was written through the new path and is consistent; one where
//     neither direction holds was changed behind the adapters' back
//     ([Drifted]).
//   - Derived: the new path writes exactly what the job computes, so any
//     filled row that differs has [Drifted].
//   - Neither: a filled row that differs cannot be told from a new-path
//     write; it is reported [Unverified], fails the verification, and is
//     never repaired. Declare Down for a transform that does not invert.
//
// A repair ([VerifyOptions].Repair) fills [Unfilled] rows and rewrites
// [Drifted] ones from the side written last: the old shape by default (a
// legacy job writes it), or the new one ([VerifyOptions].RepairFrom =
// [FromNew], which rewrites the old columns as Down of the new ones). Which
// side a bypassing writer wrote is the operator's knowledge; no row keeps
// when each of its columns was written. Every such row is repaired, in
// transactions of at most [RepairBatch] rows, each row checked again under
// its lock, so a write through the new path that lands meanwhile is kept. Target rows whose
// source row is gone ([Orphan]) are reported, never deleted.
//
// Progress lives in the application's database: schemashift_backfills
// holds each job (definition hash, status, frontier, estimate, throttle
// state, verification result) and schemashift_backfill_chunks each chunk
// (its key span, the worker leasing it, attempts, rows). A chunk's rows and
// its "done" mark commit in one transaction, so a job killed at any point
// redoes at most the chunks in flight, and several workers — goroutines
// ([WithWorkers]) or processes — share a job through leases, each chunk
// committed exactly once. A lease is short and renewed by its live worker
// while the chunk runs, so a dead worker's chunk is taken over within one
// lease. The last chunk, the tail, is open-ended (every row past the
// walk's frontier, rows inserted since included); a tail taken over from
// a dead worker, or given back by a pause, is counted again first, and
// one that inserts meanwhile grew past a chunk is cut to one, the walk
// going on past it, so that no statement holds the row locks of however
// many rows arrived while the job waited. A running job with no live
// worker reads [Stalled] in [State],
// naming the worker last seen and since when. A job whose definition
// changed is refused ([ErrDefinitionChanged]). [Pause], [Resume] and
// [Cancel] work from any process and take effect before a claimed chunk's
// statement runs; [State] reads a job's [Progress] without running it.
// [WithRate] holds from the first row and on every row walked: a worker
// waits on the limiter before it claims, never holding a lease, and no
// chunk it claims is larger than one second's rows. An attempt at a
// chunk that walks more than was reserved for it waits for the rest
// under its lease, holding no row lock: a chunk retaken from a dead
// worker (which keeps the rows it was claimed with, whatever their
// number), each retry of a chunk, and a retaken tail that rows inserted
// since its claim have grown.
//
// Leases, heartbeats, stalls and the job's stamps (started, finished,
// verification started) are times of one clock, [WithClock] (time.Now by
// default), read once per decision and passed to the database as a
// parameter; never the database's now(). A test moves its clock past a
// lease instead of waiting one out. Durations (rate limit, backoff,
// throttle waits, chunk timing) are real time.
//
// Chunks take a lock_timeout and a statement_timeout of their own; lock
// timeouts, deadlocks, serialization failures and lost connections are
// retried with jittered backoff.
//
// # Pace
//
// Out of the box no chunk holds its row locks long enough to stall a
// foreground write past [DefaultMaxLockHold] (50ms; [WithMaxLockHold]
// sets it): the first chunk is small ([DefaultChunkSize] rows), the size
// adapts towards a target chunk time below the bound, never grows past
// [DefaultMaxChunk], and a chunk that runs past the bound cuts the next
// ones at once. The bound is also the default lock timeout. On
// PostgreSQL a backfill also works flat out, by default, while the
// database's statistics show no foreground, and, once they show one,
// paces itself to keep [DefaultThroughputKept] (85%) of its throughput,
// a throughput budget whose first reference is taken as the foreground
// arrives (see [WithDutyCycle]). Each Run writes its own load in
// schemashift_backfill_runs, and each takes every other backfill's off the
// statistics: several processes on one job do not pace for one another.
// A single worker looks for the next
// chunk's boundary while its chunk runs.
//
// How fast to go is best stated as what the foreground may lose:
// [WithLatencyBudget] takes a [LatencyBudget] (its latency within 1.5× of
// a baseline measured before the first chunk, say, and at least 90% of
// its throughput) and a controller finds the fastest pace that keeps it,
// following the load as it changes (the baseline is measured again, the
// workers at rest, every eighth window). Its [ForegroundSignal] is, by
// preference, the application's own latencies ([ForegroundRecorder],
// fed from a dual-path adapter's observer, or the fleet's heartbeats:
// rollout's FleetForeground), else a probe query timed
// ([ProbeForeground]), else the database's statistics; which one, and
// the pace, show in [Progress].Foreground and [Progress].Pace, on the
// board and in the CLI's progress line. By hand instead, [WithRate] caps
// rows per second, [WithDutyCycle] rests between chunks, and [Signal]s
// ([ReplicationLag], [LatencyProbe]) hold the backfill back while the
// database or the foreground suffers.
//
// # Run windows
//
// [WithRunWindows] keeps a backfill to the hours it may run in ("01:00-05:00
// UTC", "Mon-Fri 22:00-02:00 Europe/Paris", read by [ParseWindow] into a
// [Window]): outside every window the workers claim no chunk, the chunk
// in flight finishing, and wait for the next opening by [WithClock]'s
// clock; [Progress].Window, the throttle reason, the board and the CLI
// say which, and until when.
//
// # Benchmarks
//
// scripts/bench-backfill (BenchmarkBackfillUnderLoad) builds a users
// table of a million rows per contender on a throwaway cluster, runs a
// foreground of pgbench in a separate process (4 clients, a point read
// and a point update per transaction), and prints, for no backfill, the
// single UPDATE, the defaults, a latency budget (1.5× p99, 10% of the
// throughput) read from the database's statistics and from the
// foreground's own latencies, and fixed 1,000-row batches with no pause:
// rows/s, the foreground's tx/s kept, its p99 against the run with no
// backfill, and its longest transaction, over each contender's own
// window. It is not
// part of go test ./...: benchmarks run only when asked for.
//
// Replicas and the log are protected by signals that re-check often
// rather than sleep out what they read: a throttled worker reads a
// replication lag again within [LagRecheck]'s interval (500ms), so the
// backfill resumes as soon as the lag is back under its limit. A lag that
// cannot be known throttles as a lag over the limit does: [ReplicationLag]
// (the primary's pg_stat_replication) takes a replica that has not
// reported, has gone silent past [LagStaleAfter] while behind, or is
// missing from [LagReplicas] or [LagReplicaNames] as unknown, and passes a
// replica that has replayed all the primary's log; [ReplicationLagOnStandby]
// reads the lag on a standby itself, zero once it has replayed all it
// received, unknown when it does not stream, and refuses a database that
// is not in recovery ([ErrNotStandby]). [WithWALRate] caps the log the
// server writes, in bytes per second averaged over one second, from its
// log position's advance. All three are PostgreSQL only: on SQLite, [New]
// refuses them with an error wrapping errors.ErrUnsupported. Each is shown,
// while it holds workers, as the job's throttle reason ([State]).
//
// [Backfill.Verify] compares the two shapes inside the database, chunk by
// chunk: same-table jobs count the rows whose new columns differ from
// their expressions; moves to another table compare row counts and
// checksums and bisect a differing chunk down to its rows. Divergent rows
// are counted by kind, the first of them listed with sensitive columns
// redacted. The outcome is recorded with when the verification started: a
// rollout's gate counts only one that passed without repairing anything,
// started after the job last finished.
//
// # SQLite
//
// Every mode, checkpoint, lease, control and verification works on SQLite
// (a pool from the sqlite package). SQLite serializes writers: a chunk's
// transaction holds the database's write lock from BEGIN to COMMIT, which
// is what keeps it race-safe against dual writes there, and which makes a
// foreground writer wait for the chunk; a wait longer than the
// connection's busy_timeout is retried like a lock timeout. What SQLite
// lacks is PostgreSQL only: lock and statement timeouts are ignored
// ([WithLockTimeout], [WithStatementTimeout]), [ReplicationLag] is refused,
// verification splits the table by walking its key (no planner
// histogram), and a move to another table is verified by joining the two
// tables rather than by checksums (SQLite has no hash function).
//
// # Databases and transactions
//
// What only runs statements takes a [DB], the three context methods a
// pool or a transaction of database/sql or sqlx has (*sql.DB, *sqlx.DB,
// *sql.Tx, *sqlx.Tx): [EnsureSchema], [Pause], [Resume], [Cancel], and
// the reads [State] and [StateAt].
// Given a transaction, what they write commits or rolls back with the
// caller's work (a Pause in a transaction takes hold when it commits).
// What runs transactions and leases of its own takes a [Pool], *sql.DB or
// *sqlx.DB: [New] and [ReplicationLag]. The database is told from the
// handle's driver (a *sql.Tx by a harmless probe); a driver of no
// supported database is refused with an error, never taken for
// PostgreSQL.
package backfill
