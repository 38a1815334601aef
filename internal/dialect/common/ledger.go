package common

import "github.com/schemashift/schemashift/internal/dialect"

// Ledger is the part of [dialect.LedgerQueries] both databases accept as
// it is: all of it but LedgerSchema, LockMigration and SetMigration.
type Ledger struct{}

// MigrationColumns are the columns a migration's row is read with (by
// ReadMigration, LockMigration, ListMigrations, and returned by
// SetMigration), its latency baseline as text, for the dialects' own
// statements to read the same row.
const MigrationColumns = `migration, phase, stage, version, phase_since, updated_at, matched_base, mismatched_base,
	base_old_total, base_old_errors, base_new_total, base_new_errors, tripped, CAST(base_latency AS text) AS base_latency`

// CreateLedgerVersion implements [dialect.LedgerQueries].
func (Ledger) CreateLedgerVersion() string {
	return `CREATE TABLE IF NOT EXISTS schemashift_ledger_schema (version integer NOT NULL)`
}

// LedgerVersion implements [dialect.LedgerQueries].
func (Ledger) LedgerVersion() string {
	return `SELECT coalesce(max(version), 0) FROM schemashift_ledger_schema`
}

// ClearLedgerVersion implements [dialect.LedgerQueries].
func (Ledger) ClearLedgerVersion() string { return `DELETE FROM schemashift_ledger_schema` }

// InsertLedgerVersion implements [dialect.LedgerQueries].
func (Ledger) InsertLedgerVersion() string {
	return `INSERT INTO schemashift_ledger_schema VALUES ($1)`
}

// EnsureSavepoint implements [dialect.LedgerQueries].
func (Ledger) EnsureSavepoint() string { return `SAVEPOINT schemashift_ensure` }

// EnsureRollback implements [dialect.LedgerQueries].
func (Ledger) EnsureRollback() string { return `ROLLBACK TO SAVEPOINT schemashift_ensure` }

// EnsureRelease implements [dialect.LedgerQueries].
func (Ledger) EnsureRelease() string { return `RELEASE SAVEPOINT schemashift_ensure` }

// ReadMigration implements [dialect.LedgerQueries].
func (Ledger) ReadMigration() string {
	return `SELECT ` + MigrationColumns + ` FROM schemashift_migrations WHERE migration = $1`
}

// ListMigrations implements [dialect.LedgerQueries].
func (Ledger) ListMigrations() string {
	return `SELECT ` + MigrationColumns + ` FROM schemashift_migrations ORDER BY migration`
}

// Audit implements [dialect.LedgerQueries].
func (Ledger) Audit() string {
	return `SELECT * FROM (SELECT id, migration, kind, accepted, actor, from_phase, to_phase, from_stage, to_stage, version, reason, at
		FROM schemashift_events WHERE $1 = '' OR migration = $1 ORDER BY id DESC LIMIT $2) e ORDER BY id`
}

// AddMigration implements [dialect.LedgerQueries].
func (Ledger) AddMigration() string {
	return `INSERT INTO schemashift_migrations (migration, definition_hash, definition, phase_since, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4, $4) ON CONFLICT (migration) DO NOTHING`
}

// ReadDefinition implements [dialect.LedgerQueries].
func (Ledger) ReadDefinition() string {
	return `SELECT migration, definition_hash, CAST(definition AS text) AS definition
		FROM schemashift_migrations WHERE migration = $1`
}

// ListDefinitions implements [dialect.LedgerQueries].
func (Ledger) ListDefinitions() string {
	return `SELECT migration, definition_hash, CAST(definition AS text) AS definition
		FROM schemashift_migrations ORDER BY migration`
}

// StoreDocument implements [dialect.LedgerQueries].
func (Ledger) StoreDocument() string {
	return `UPDATE schemashift_migrations SET definition = $2 WHERE migration = $1 AND definition IS NULL`
}

// ListStages implements [dialect.LedgerQueries].
func (Ledger) ListStages() string { return `SELECT migration, stage FROM schemashift_migrations` }

// RecordEvent implements [dialect.LedgerQueries].
func (Ledger) RecordEvent() string {
	return `INSERT INTO schemashift_events (migration, kind, accepted, actor, from_phase, to_phase, from_stage, to_stage, version, reason, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
}

// TripMigration implements [dialect.LedgerQueries].
func (Ledger) TripMigration() string {
	return `UPDATE schemashift_migrations SET tripped = $2 WHERE migration = $1 AND tripped = ''`
}

// ContractIntent implements [dialect.LedgerQueries].
func (Ledger) ContractIntent() string {
	return `SELECT at FROM schemashift_events
		WHERE migration = $1 AND kind = 'contracting' AND accepted AND version = $2 AND at >= $3 ORDER BY id LIMIT 1`
}

// LedgerAdditions are the ledger's additions outside its versions
// ([dialect.LedgerQueries]), with times of the database's type timestamp:
// the heartbeats' samples, for the charts over time. seq numbers an
// instance's samples of a migration (a clock that stands still stamps
// two alike), so that the row cap prunes a range of the key, and the
// index on at makes the age prune one. The histograms are JSON as text,
// their trailing zeros cut: a tenth of what jsonb keeps of them. And the
// approvals of the rollout's policies.
func LedgerAdditions(timestamp string) []dialect.LedgerAddition {
	return []dialect.LedgerAddition{{Table: "schemashift_heartbeat_samples", DDL: `CREATE TABLE IF NOT EXISTS schemashift_heartbeat_samples (
			migration   text NOT NULL,
			instance_id text NOT NULL,
			seq         bigint NOT NULL,
			at          ` + timestamp + ` NOT NULL,
			old_calls   bigint NOT NULL DEFAULT 0,
			old_errors  bigint NOT NULL DEFAULT 0,
			new_calls   bigint NOT NULL DEFAULT 0,
			new_errors  bigint NOT NULL DEFAULT 0,
			matched     bigint NOT NULL DEFAULT 0,
			mismatched  bigint NOT NULL DEFAULT 0,
			latency     text NOT NULL DEFAULT '{"old": [], "new": []}',
			PRIMARY KEY (migration, instance_id, seq)
		);
		CREATE INDEX IF NOT EXISTS schemashift_heartbeat_samples_at ON schemashift_heartbeat_samples (migration, instance_id, at)`},
		// The approvals of a migration's advances, and the requests for
		// them (rollout's policies), each of one version of the
		// migration: one row per actor, kind and advance.
		{Table: "schemashift_approvals", DDL: `CREATE TABLE IF NOT EXISTS schemashift_approvals (
			migration text NOT NULL,
			to_phase  text NOT NULL,
			forced    boolean NOT NULL,
			version   bigint NOT NULL,
			kind      text NOT NULL,
			actor     text NOT NULL,
			reason    text NOT NULL,
			at        ` + timestamp + ` NOT NULL,
			PRIMARY KEY (migration, version, to_phase, forced, kind, actor)
		)`},
		AggregateAddition(timestamp),
		checkRuns(timestamp), SunsetAddition(timestamp), ScheduleAddition(timestamp)}
}

// checkRuns is the addition of the milestone checks' runs: one row per
// run, numbered in the order recorded (a clock that stands still stamps
// two alike), the index finding each check's last. The number is not a
// key: two coordinators recording at once may draw the same one, and
// neither run may be refused for it (the reader keeps one of them).
func checkRuns(timestamp string) dialect.LedgerAddition {
	return dialect.LedgerAddition{Table: "schemashift_check_runs", DDL: `CREATE TABLE IF NOT EXISTS schemashift_check_runs (
			seq         bigint NOT NULL,
			migration   text NOT NULL,
			check_name  text NOT NULL,
			phase       text NOT NULL,
			passed      boolean NOT NULL,
			detail      text NOT NULL DEFAULT '',
			duration_ns bigint NOT NULL DEFAULT 0,
			actor       text NOT NULL DEFAULT '',
			at          ` + timestamp + ` NOT NULL
		);
		CREATE INDEX IF NOT EXISTS schemashift_check_runs_last ON schemashift_check_runs (migration, check_name, seq)`}
}
