package common

import "github.com/schemashift/schemashift/internal/dialect"

// SunsetAddition is the ledger's table of the migrations seen overdue
// against their sunset with late callers (rollout's deadlines), with
// times of the database's type timestamp: one row per migration, so
// that its audit event is recorded once, whoever sees it first.
func SunsetAddition(timestamp string) dialect.LedgerAddition {
	return dialect.LedgerAddition{Table: "schemashift_sunset_overdue", DDL: `CREATE TABLE IF NOT EXISTS schemashift_sunset_overdue (
			migration text PRIMARY KEY,
			sunset_at ` + timestamp + ` NOT NULL,
			noted_at  ` + timestamp + ` NOT NULL
		)`}
}

// SunsetNoted implements [dialect.RolloutQueries].
func (Rollout) SunsetNoted() string {
	return `SELECT count(*) FROM schemashift_sunset_overdue WHERE migration = $1`
}

// NoteSunset implements [dialect.RolloutQueries].
func (Rollout) NoteSunset() string {
	return `INSERT INTO schemashift_sunset_overdue (migration, sunset_at, noted_at) VALUES ($1, $2, $3)
		ON CONFLICT (migration) DO NOTHING`
}
