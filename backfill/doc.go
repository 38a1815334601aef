// Package backfill fills the new shape of a migrating table from the old
// one, in chunks, without blocking the foreground and without losing a
// write made while it runs.
//
// A [Job] walks a table in primary-key order (keyset pagination: each
// chunk's upper key is found, never assumed, so gaps and composite, UUID and
// text keys all work) and says what each chunk does:
//
//   - Set: one UPDATE per chunk, same table:
//     UPDATE t SET new = expr(old) WHERE key in chunk AND new IS DISTINCT FROM expr(old)
//   - Into: one INSERT … SELECT … FOR UPDATE … ON CONFLICT DO UPDATE per
//     chunk, into another table;
//   - Func: Go code over the chunk's rows, read FOR UPDATE in the
//     transaction the code writes in.
//
// Each is race-safe against dual writes: a row written while its chunk runs
// is either locked by the chunk (the writer waits, then wins) or re-read by
// the chunk after the writer commits, so the chunk never writes a value
// computed from a stale row.
//
// Progress lives in the application's database: schemashift_backfills
// holds each job (definition hash, status, frontier, estimate, throttle
// state, verification result) and schemashift_backfill_chunks each chunk
// (its key span, the worker leasing it, attempts, rows). A chunk's rows and
// its "done" mark commit in one transaction, so a job killed at any point
// redoes at most the chunks in flight, and several workers — goroutines
// ([WithWorkers]) or processes — share a job through leases, each chunk
// committed exactly once. A job whose definition changed is refused
// ([ErrDefinitionChanged]). [Pause], [Resume] and [Cancel] work from any
// process; [State] reads a job's [Progress] without running it.
//
// Chunks take a lock_timeout and a statement_timeout of their own; lock
// timeouts, deadlocks, serialization failures and lost connections are
// retried with jittered backoff. The chunk size adapts towards a target
// chunk time; [WithRate] caps rows per second, [WithDutyCycle] rests between
// chunks, and [Signal]s ([ReplicationLag], [LatencyProbe]) hold the backfill
// back while the database or the foreground suffers.
//
// [Backfill.Verify] compares the two shapes inside the database, chunk by
// chunk: same-table jobs count the rows whose new columns differ from their
// expressions; moves to another table compare row counts and checksums and
// bisect a differing chunk down to its rows. Divergent rows are listed with
// sensitive columns redacted, and can be repaired by re-running the chunk
// statement over exactly those keys.
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
package backfill
