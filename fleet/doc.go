// Package fleet is what the running services report and what is read of
// them: one [Instance] per service instance, whose heartbeat
// ([Instance.Beat], every interval after [Instance.Start]) stores in
// schemashift_instances which stages it evaluated and when, its calls to
// the old path, its calls and errors per path with their latencies (a
// [Latency] of two [Histogram]s), its shadow comparisons and the shadow
// reads it dropped. [Instance.Observer] feeds it from the dualwrite
// adapters and the flags.
//
// The reads are those the coordinator's gates and guardrails, the board
// and the reports make: [Read] returns the [Fleet] live at a time (seen
// within an age-out before it), with the old builds that do not know the
// migration ([Fleet].Unaware); [Sum] adds up every instance's [Totals],
// whose [Totals.Since] a baseline is the shadow [Consistency] of a
// phase; [Latencies] adds up the histograms; [InstancesPerService]
// counts the live instances of each service.
//
// Each heartbeat also stores its window, per migration, as a [Sample] in
// schemashift_heartbeat_samples (in the transaction of its totals: calls
// and errors per path, comparisons, the window's histograms), and prunes
// the instance's samples to a retention ([WithSampleRetention]: 7 days
// by default, and a row cap) with two range deletes. [Samples] reads them
// back as a [History] per instance, for charts over time;
// [History.Every] merges them into steps, and [History.Consistency] is
// the fleet's shadow consistency per step.
//
// The reads take a [DB], a pool or a transaction of database/sql or sqlx
// (*sql.DB, *sqlx.DB, *sql.Tx, *sqlx.Tx): in a transaction they see what
// it sees. They hold nothing and are safe for concurrent use as far as
// the handle is. An [Instance] takes a [Pool], *sql.DB or *sqlx.DB, since
// each heartbeat is a transaction of its own; it holds the pool until it
// is closed, and the caller closes the pool after it. A handle of no
// supported database is refused ([NewInstance] with [ErrInvalidArgument]).
//
// Every time a heartbeat stores is a time of its clock ([WithClock]),
// read once per heartbeat and passed as a parameter; every read is at a
// time the caller gives. The heartbeat's interval is real time. The
// tables are created by ledger.Ensure, the one versioned schema of
// every schemashift_ table.
package fleet
