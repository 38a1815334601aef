package dialect

// ScheduleQueries are the statements of package rollout's scheduled
// advances: a table of the ledger's additions (schemashift_schedules), of
// one row per schedule. Times are [Stamp]s. A row's columns, as the
// reads return them: id, migration, to_phase, version, due_at, until_at,
// actor, reason, confirm, state, claimed_until (NULL for none), outcome,
// created_at, updated_at.
type ScheduleQueries interface {
	// InsertSchedule enters a pending schedule: $1 id, $2 migration, $3
	// to phase, $4 the migration's version it is of, $5 due, $6 until,
	// $7 actor, $8 reason, $9 confirm, $10 the time.
	InsertSchedule() string
	// ReadSchedule reads schedule $1.
	ReadSchedule() string
	// ListSchedules reads the schedules of migration $1 ('' for every
	// migration's), the last $2 by due time, latest first.
	ListSchedules() string
	// DueSchedules reads the schedules due at $1: pending, or claimed
	// by a runner whose claim ran out, by due time.
	DueSchedules() string
	// ClaimSchedule claims schedule $1 for a runner until $2, at $3:
	// one row changed when it was pending or its claim had run out,
	// none otherwise (another runner holds it, or it is over).
	ClaimSchedule() string
	// SettleSchedule moves schedule $1 from state $5 to state $2 with
	// outcome $3, at $4, its claim cleared: one row changed, or none when
	// it was not in state $5.
	SettleSchedule() string
}
