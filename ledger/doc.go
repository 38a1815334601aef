// Package ledger is where each migration stands and why, in the
// application's own database: the one place that reads and writes the
// migrations' rows, their audit trail and their stored plans.
//
// [Ensure] creates the ledger's tables, or upgrades them, under one
// versioned schema that holds every schemashift_ table (the fleet's
// heartbeats and the recorded query plans included): schemashift_migrations,
// one row per migration with its [Phase], stage and version;
// schemashift_events, the append-only audit trail of [Event]s. [Check]
// reads the schema's version and writes nothing: a reader that may only
// SELECT the ledger (the CLI's status, audit and reports) checks with it,
// and is told to run `schemashift init` (an Ensure) when the ledger is
// missing or older than its build.
//
// A migration's row is read by [Read] (or [Lock], in the transaction of a
// transition): its [Status] and the baseline its gates count from, the
// fleet's totals when the phase began, in one [Row]. [Get] and [List]
// return the statuses, [Audit] the trail. A transition is one [Set] of a
// [Move]: a compare-and-set on the row's version together with the event
// that records it, so that of two coordinators moving a migration at once
// exactly one wins. [Record] appends any other event, [Trip] holds a
// guardrail's trip on the row, and [ContractBegun] reads a contract's
// recorded intent.
//
// A plan is stored as a [Definition], its hash and its document, entered
// by [Add] and read back by [ReadDefinition] and [Definitions]; the
// document's form is the plan's, which the ledger keeps unread. [Stages]
// is what the ledger's flag provider serves.
//
// Every time the ledger stores is one a caller passes (an event's At, a
// move's At), a time of the caller's clock as a bind parameter, never the
// database's now().
//
// # Databases and transactions
//
// Every function takes a [DB], the three context methods a pool or a
// transaction of database/sql or sqlx has (*sql.DB, *sqlx.DB, *sql.Tx,
// *sqlx.Tx). Given a transaction, what a function writes commits or rolls
// back with the caller's work, and what it reads is what that transaction
// sees: an [Ensure], an [Add] or a [Record] in a transaction rolled back
// leaves nothing. [Lock] and [Set] are meant for a transaction (the row's
// lock lasts as long as it). [Ensure], given a pool, runs a transaction of
// its own. The database is told from the handle's driver (a *sql.Tx by a
// probe that changes nothing); a driver of no supported database is
// refused with an error wrapping the dialects' unknown-driver error, a nil
// handle with [ErrInvalidArgument]. The functions hold nothing between
// calls: they are safe for concurrent use as far as the handle is (a pool
// is; a transaction is the caller's, to use from one goroutine and to
// end).
package ledger
