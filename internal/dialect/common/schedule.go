package common

import "github.com/schemashift/schemashift/internal/dialect"

// Schedules is [dialect.ScheduleQueries] as both databases accept it.
type Schedules struct{}

// ScheduleAddition is the ledger's table of scheduled advances, with
// times of the database's type timestamp, and the index the runners'
// reads of what is due take.
func ScheduleAddition(timestamp string) dialect.LedgerAddition {
	return dialect.LedgerAddition{Table: "schemashift_schedules", DDL: `CREATE TABLE IF NOT EXISTS schemashift_schedules (
			id            text PRIMARY KEY,
			migration     text NOT NULL,
			to_phase      text NOT NULL,
			version       bigint NOT NULL,
			due_at        ` + timestamp + ` NOT NULL,
			until_at      ` + timestamp + ` NOT NULL,
			actor         text NOT NULL,
			reason        text NOT NULL,
			confirm       boolean NOT NULL,
			state         text NOT NULL,
			claimed_until ` + timestamp + `,
			outcome       text NOT NULL DEFAULT '',
			created_at    ` + timestamp + ` NOT NULL,
			updated_at    ` + timestamp + ` NOT NULL
		);
		CREATE INDEX IF NOT EXISTS schemashift_schedules_due ON schemashift_schedules (state, due_at);
		CREATE INDEX IF NOT EXISTS schemashift_schedules_migration ON schemashift_schedules (migration, due_at)`}
}

const scheduleColumns = `id, migration, to_phase, version, due_at, until_at, actor, reason, confirm, state, claimed_until, outcome,
	created_at, updated_at`

// InsertSchedule implements [dialect.ScheduleQueries].
func (Schedules) InsertSchedule() string {
	return `INSERT INTO schemashift_schedules (id, migration, to_phase, version, due_at, until_at, actor, reason, confirm, state,
		created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $10)`
}

// ReadSchedule implements [dialect.ScheduleQueries].
func (Schedules) ReadSchedule() string {
	return `SELECT ` + scheduleColumns + ` FROM schemashift_schedules WHERE id = $1`
}

// ListSchedules implements [dialect.ScheduleQueries].
func (Schedules) ListSchedules() string {
	return `SELECT ` + scheduleColumns + ` FROM schemashift_schedules WHERE $1 = '' OR migration = $1
		ORDER BY due_at DESC, id LIMIT $2`
}

// DueSchedules implements [dialect.ScheduleQueries].
func (Schedules) DueSchedules() string {
	return `SELECT ` + scheduleColumns + ` FROM schemashift_schedules
		WHERE (state = 'pending' OR (state = 'running' AND claimed_until < $1)) AND due_at <= $1 ORDER BY due_at, id`
}

// ClaimSchedule implements [dialect.ScheduleQueries].
func (Schedules) ClaimSchedule() string {
	return `UPDATE schemashift_schedules SET state = 'running', claimed_until = $2, updated_at = $3
		WHERE id = $1 AND (state = 'pending' OR (state = 'running' AND claimed_until < $3))`
}

// SettleSchedule implements [dialect.ScheduleQueries].
func (Schedules) SettleSchedule() string {
	return `UPDATE schemashift_schedules SET state = $2, outcome = $3, claimed_until = NULL, updated_at = $4
		WHERE id = $1 AND state = $5`
}
