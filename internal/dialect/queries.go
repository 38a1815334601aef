package dialect

// The queriers: each method returns one whole statement of a package's,
// in its database's SQL, for the package to run with the bind parameters
// its doc comment lists, in that order ($1 first). A statement built
// from the caller's parts takes them as SQL already (quoted names,
// column lists), never values. Package internal/dialect/common holds the
// statements every supported database accepts as they are; a dialect
// embeds them and writes out whole the ones it spells differently.

import "time"

// LedgerQueries are the statements of package ledger: its versioned
// schema, the migrations' rows, the audit trail and stored plans.
type LedgerQueries interface {
	// LedgerSchema is the ledger's schema, in this database's types: an
	// entry per version, each upgrading the one before by one (entry 0
	// makes version 1). Entries only ever come at its end; one may hold
	// several statements, separated by semicolons.
	LedgerSchema() []string
	// LedgerAdditions are tables outside the versions: what builds of
	// the version before them neither read nor write, so that adding
	// them leaves the version as it is and those builds keep working
	// beside it (a version newer than a build's stops the build). Each
	// statement is idempotent (IF NOT EXISTS) and may hold several,
	// separated by semicolons.
	LedgerAdditions() []LedgerAddition
	// CreateLedgerVersion makes the table that holds the ledger schema's
	// version, unless it is there.
	CreateLedgerVersion() string
	// LedgerVersion reads the ledger schema's version (0 for none): one
	// row, one column.
	LedgerVersion() string
	// ClearLedgerVersion deletes the recorded version.
	ClearLedgerVersion() string
	// InsertLedgerVersion records a version: $1 the version.
	InsertLedgerVersion() string
	// EnsureSavepoint, EnsureRollback and EnsureRelease set, roll back to
	// and release the savepoint an Ensure in a caller's transaction
	// works under.
	EnsureSavepoint() string
	EnsureRollback() string
	EnsureRelease() string
	// ReadMigration reads a migration's row (the columns of
	// common.MigrationColumns): $1 the migration.
	ReadMigration() string
	// LockMigration is ReadMigration, the row locked until the
	// transaction ends.
	LockMigration() string
	// ListMigrations reads every migration's row, by name.
	ListMigrations() string
	// Audit reads the audit trail, oldest first, of the last $2 events of
	// migration $1 ($1 '' for every migration's).
	Audit() string
	// AddMigration enters a migration at phase planned, nothing where a
	// row of its name is there: $1 the migration, $2 its definition hash,
	// $3 its document (JSON text, or NULL), $4 its time (a [Stamp]: the
	// phase's start, the row's creation and update).
	AddMigration() string
	// ReadDefinition reads a migration's name, definition hash and
	// document as text: $1 the migration.
	ReadDefinition() string
	// ListDefinitions is ReadDefinition of every migration, by name.
	ListDefinitions() string
	// StoreDocument sets a migration's document where it has none: $1
	// the migration, $2 the document (JSON text).
	StoreDocument() string
	// ListStages reads every migration's name and stage.
	ListStages() string
	// RecordEvent appends an event to the audit trail: $1 migration, $2
	// kind, $3 accepted, $4 actor, $5 from phase, $6 to phase, $7 from
	// stage, $8 to stage, $9 version (or NULL), $10 reason, $11 time (a
	// [Stamp]).
	RecordEvent() string
	// SetMigration is the compare-and-set of a migration's row on its
	// version, returning the row as it is then (the columns of
	// ReadMigration; no row when the version moved): $1 migration, $2
	// phase, $3 stage, $4 matched, $5 mismatched, $6 old calls, $7 old
	// errors, $8 new calls, $9 new errors (the baseline), $10 the trip
	// ('' for none), $11 the version read, $12 the latency baseline
	// (JSON text), $13 the time (a [Stamp]: the phase's start and the
	// row's update).
	SetMigration() string
	// TripMigration records a guardrail's trip on a migration's row
	// unless it holds one: $1 the migration, $2 why.
	TripMigration() string
	// ContractIntent reads the time of the first accepted "contracting"
	// event of migration $1 at version $2, at or after $3 (a [Stamp]).
	ContractIntent() string
}

// FleetQueries are the statements of package fleet: the instances'
// heartbeats and the reads of the fleet.
type FleetQueries interface {
	// ReadInstances reads the instances of migration $1 last seen after
	// $2 (a [Stamp]), by service and id, their stages seen as JSON text.
	ReadInstances() string
	// ReadUnaware reads the instances of no migration last seen after $2
	// (a [Stamp]) of the services of migration $1's instances that do not
	// report $1, by service and id.
	ReadUnaware() string
	// InstancesPerService counts the distinct instances of any migration
	// last seen after $1 (a [Stamp]), per service.
	InstancesPerService() string
	// SumHeartbeats sums what the instances of migration $1 reported:
	// matched, mismatched, old_total, old_errors, new_total, new_errors.
	SumHeartbeats() string
	// ReadLatencies reads the latency histograms (JSON text) of every
	// instance of migration $1.
	ReadLatencies() string
	// BeatInstance records an instance's own heartbeat (its row of
	// migration ''): $1 id, $2 service, $3 build, $4 the time (a [Stamp]).
	BeatInstance() string
	// BeatMigration adds one heartbeat's window to an instance's row of
	// a migration: $1 id, $2 migration, $3 service, $4 build, $5 the
	// stages seen and when (a JSON object, merged over the row's), $6 the
	// lowest and $7 the highest stage ('' for none), $8 old-path calls
	// (the last old call is the heartbeat's time when more than 0), $9
	// matched, $10 mismatched, $11 old calls, $12 old errors, $13 new
	// calls, $14 new errors, $15 the latency histograms (JSON text, in
	// place of the row's), $16 shadow reads dropped, $17 the time (a
	// [Stamp]).
	BeatMigration() string
	// LockLatency reads an instance's latency histograms (JSON text) of
	// a migration and locks its row until the transaction ends: $1 id, $2
	// migration.
	LockLatency() string
	// InsertSample records one heartbeat's window of an instance's
	// migration as a sample, numbered one past the instance's last
	// sample of it: $1 migration, $2 id, $3 the time (a [Stamp]), $4 old
	// calls, $5 old errors, $6 new calls, $7 new errors, $8 matched, $9
	// mismatched, $10 the window's latency histograms (JSON text, kept
	// as text).
	InsertSample() string
	// PruneSamplesBefore deletes an instance's samples of a migration
	// stamped before a time, a range of the index on at: $1 migration,
	// $2 id, $3 the time (a [Stamp]).
	PruneSamplesBefore() string
	// PruneSamplesOver deletes an instance's samples of a migration but
	// its last ones, a range of the key: $1 migration, $2 id, $3 how many
	// are kept.
	PruneSamplesOver() string
	// ReadSamples reads the samples of migration $1 stamped after $2 and
	// at or before $3 (both a [Stamp]), by instance, time and number:
	// instance_id, at, old_calls, old_errors, new_calls, new_errors,
	// matched, mismatched, latency (JSON text).
	ReadSamples() string
}

// RolloutQueries are the statements of package rollout's coordinator:
// the query-plan watch and the verification gate's read.
type RolloutQueries interface {
	// LastQueryPlan reads the last recorded shape (JSON text, or NULL
	// when there is none) of query $2 of migration $1: one row.
	LastQueryPlan() string
	// RecordQueryPlan records a query's plan: $1 migration, $2 query, $3
	// the moment ("before expand", …), $4 its shape and $5 its changes
	// (JSON text), $6 the time (a [Stamp]).
	RecordQueryPlan() string
	// QueryPlans reads the recorded plans of migration $1, oldest first:
	// query, moment, shape and changes as text, at.
	QueryPlans() string
	// BackfillVerification reads job $1's verify_status and status, and
	// whether its verification started after it last finished (current).
	BackfillVerification() string
	// RecordApproval records an approval (or a request for approvals),
	// nothing where the same actor made the same one at the same
	// version: $1 migration, $2 the phase it approves the advance into,
	// $3 whether the advance is forced, $4 the migration's version, $5
	// kind ('approval' or 'request'), $6 actor, $7 reason, $8 time (a
	// [Stamp]).
	RecordApproval() string
	// Approvals reads the approvals and requests of migration $1 at
	// version $2, oldest first: to_phase, forced, version, kind, actor,
	// reason, at.
	Approvals() string
	// CheckBegin are the statements that open a milestone check's
	// subtransaction in the ledger's transaction: a savepoint, read-only
	// (the database refuses every write in it), with a statement timeout
	// where the database has one.
	CheckBegin(timeout time.Duration) []string
	// CheckEnd are the statements that roll a check's subtransaction back
	// and leave it, restoring what CheckBegin set.
	CheckEnd() []string
	// RecordCheckRun records one run of a milestone check, numbered one
	// past the last run recorded: $1 migration, $2 check, $3 phase, $4
	// passed, $5 detail, $6 duration in nanoseconds, $7 actor, $8 the
	// time (a [Stamp]).
	RecordCheckRun() string
	// LastCheckRuns reads the last recorded run of each check of
	// migration $1, by check: check_name, phase, passed, detail,
	// duration_ns, actor, at (two runs recorded at once may both be
	// last).
	LastCheckRuns() string
	// SunsetNoted counts the rows (0 or 1) saying migration $1 was seen
	// overdue with late callers.
	SunsetNoted() string
	// NoteSunset records that migration $1 was seen overdue with late
	// callers, nothing where it was already: $2 its sunset, $3 the time
	// (both a [Stamp]). One row affected: this one recorded it.
	NoteSunset() string
}

// LedgerAddition is a table of the ledger outside its versions (see
// [LedgerQueries.LedgerAdditions]), and the statement that makes it.
type LedgerAddition struct {
	Table, DDL string
}
