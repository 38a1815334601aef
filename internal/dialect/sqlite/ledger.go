package sqlite

import (
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialect/common"
)

// LedgerSchema implements [dialect.LedgerQueries]: the ledger's tables
// in SQLite's types (integer keys, timestamps and JSON as text, times
// in [dialect.TimeFormat] by default).
func (Dialect) LedgerSchema() []string {
	return []string{
		// 1: migrations, events, instances.
		`CREATE TABLE schemashift_migrations (
			migration       text PRIMARY KEY,
			definition_hash text NOT NULL,
			phase           text NOT NULL DEFAULT 'planned',
			stage           text NOT NULL DEFAULT 'off',
			version         bigint NOT NULL DEFAULT 1,
			phase_since     timestamp NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
			matched_base    bigint NOT NULL DEFAULT 0,
			mismatched_base bigint NOT NULL DEFAULT 0,
			created_at      timestamp NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
			updated_at      timestamp NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
		);
		CREATE TABLE schemashift_events (
			id         integer PRIMARY KEY AUTOINCREMENT,
			migration  text NOT NULL,
			kind       text NOT NULL,
			accepted   boolean NOT NULL,
			actor      text NOT NULL,
			from_phase text NOT NULL DEFAULT '',
			to_phase   text NOT NULL DEFAULT '',
			from_stage text NOT NULL DEFAULT '',
			to_stage   text NOT NULL DEFAULT '',
			version    bigint,
			reason     text NOT NULL DEFAULT '',
			at         timestamp NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
		);
		CREATE INDEX schemashift_events_migration ON schemashift_events (migration, id);
		CREATE TABLE schemashift_instances (
			instance_id     text NOT NULL,
			migration       text NOT NULL,
			service         text NOT NULL,
			build_version   text NOT NULL,
			first_seen      timestamp NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
			last_seen       timestamp NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
			stage_seen      text NOT NULL DEFAULT '{}',
			min_stage       text NOT NULL DEFAULT '',
			max_stage       text NOT NULL DEFAULT '',
			last_old_call   timestamp,
			old_calls       bigint NOT NULL DEFAULT 0,
			matched         bigint NOT NULL DEFAULT 0,
			mismatched      bigint NOT NULL DEFAULT 0,
			PRIMARY KEY (instance_id, migration)
		);`,
		// 2: the plan's definition, for processes without its code.
		`ALTER TABLE schemashift_migrations ADD COLUMN definition text`,
		// 3: guardrails: calls and errors per path, baselines, trips.
		// One column per ALTER: SQLite adds no more.
		`ALTER TABLE schemashift_instances ADD COLUMN old_total bigint NOT NULL DEFAULT 0;
		ALTER TABLE schemashift_instances ADD COLUMN old_errors bigint NOT NULL DEFAULT 0;
		ALTER TABLE schemashift_instances ADD COLUMN new_total bigint NOT NULL DEFAULT 0;
		ALTER TABLE schemashift_instances ADD COLUMN new_errors bigint NOT NULL DEFAULT 0;
		ALTER TABLE schemashift_migrations ADD COLUMN base_old_total bigint NOT NULL DEFAULT 0;
		ALTER TABLE schemashift_migrations ADD COLUMN base_old_errors bigint NOT NULL DEFAULT 0;
		ALTER TABLE schemashift_migrations ADD COLUMN base_new_total bigint NOT NULL DEFAULT 0;
		ALTER TABLE schemashift_migrations ADD COLUMN base_new_errors bigint NOT NULL DEFAULT 0;
		ALTER TABLE schemashift_migrations ADD COLUMN tripped text NOT NULL DEFAULT ''`,
		// 4: the query-plan watch.
		`CREATE TABLE schemashift_query_plans (
			id        integer PRIMARY KEY AUTOINCREMENT,
			migration text NOT NULL,
			query     text NOT NULL,
			moment    text NOT NULL,
			shape     text NOT NULL,
			changes   text NOT NULL DEFAULT '[]',
			at        timestamp NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
		);
		CREATE INDEX schemashift_query_plans_migration ON schemashift_query_plans (migration, query, id)`,
		// 5: latency histograms per path, for the latency guardrail.
		`ALTER TABLE schemashift_instances ADD COLUMN latency text NOT NULL DEFAULT '{"old": [], "new": []}';
		ALTER TABLE schemashift_migrations ADD COLUMN base_latency text NOT NULL DEFAULT '{"old": [], "new": []}'`,
		// 6: shadow reads each instance dropped (a reader full, or closed).
		`ALTER TABLE schemashift_instances ADD COLUMN shadow_drops bigint NOT NULL DEFAULT 0`,
	}
}

// LedgerAdditions implements [dialect.LedgerQueries]: common's, with
// times as timestamp.
func (Dialect) LedgerAdditions() []dialect.LedgerAddition { return common.LedgerAdditions("timestamp") }

// LockMigration implements [dialect.LedgerQueries]: the write
// transaction already excludes every other writer.
func (Dialect) LockMigration() string {
	return `SELECT ` + common.MigrationColumns + ` FROM schemashift_migrations WHERE migration = $1`
}

// SetMigration implements [dialect.LedgerQueries].
func (Dialect) SetMigration() string {
	return `UPDATE schemashift_migrations SET phase = $2, stage = $3, version = version + 1,
			phase_since = $13, updated_at = $13, matched_base = $4, mismatched_base = $5,
			base_old_total = $6, base_old_errors = $7, base_new_total = $8, base_new_errors = $9, tripped = $10,
			base_latency = json($12)
		WHERE migration = $1 AND version = $11 RETURNING ` + common.MigrationColumns
}
