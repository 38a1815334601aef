package common

import "github.com/schemashift/schemashift/internal/dialect"

// Aggregates is the part of [dialect.AggregateQueries] both databases
// accept as it is: all of it but ReadOnly, which each database does its
// own way.
type Aggregates struct{}

// AggregateAddition is the ledger's table of the aggregates' snapshots
// taken at the expand, with times of the database's type timestamp: one
// row per migration, aggregate and group (” for an aggregate not
// grouped), its value as the database spelt it in text, so that a sum
// of decimals is kept exactly.
func AggregateAddition(timestamp string) dialect.LedgerAddition {
	return dialect.LedgerAddition{Table: "schemashift_aggregate_snapshots", DDL: `CREATE TABLE IF NOT EXISTS schemashift_aggregate_snapshots (
			migration text NOT NULL,
			aggregate text NOT NULL,
			group_key text NOT NULL,
			value     text NOT NULL,
			taken_at  ` + timestamp + ` NOT NULL,
			PRIMARY KEY (migration, aggregate, group_key)
		)`}
}

// AggregateStatement implements [dialect.AggregateQueries].
func (Aggregates) AggregateStatement(kind, value, table, group string) string {
	var agg string
	switch kind {
	case "sum":
		agg = "CAST(coalesce(sum(" + value + "), 0) AS text)"
	case "count distinct":
		agg = "CAST(count(DISTINCT " + value + ") AS text)"
	default:
		agg = "CAST(count(" + value + ") AS text)"
	}
	if group == "" {
		return "SELECT " + agg + " FROM " + table
	}
	return "SELECT CAST(" + group + " AS text), CASE WHEN " + group + " IS NULL THEN 1 ELSE 0 END, " + agg +
		" FROM " + table + " GROUP BY " + group
}

// ClearAggregateSnapshot implements [dialect.AggregateQueries].
func (Aggregates) ClearAggregateSnapshot() string {
	return `DELETE FROM schemashift_aggregate_snapshots WHERE migration = $1`
}

// InsertAggregateSnapshot implements [dialect.AggregateQueries].
func (Aggregates) InsertAggregateSnapshot() string {
	return `INSERT INTO schemashift_aggregate_snapshots (migration, aggregate, group_key, value, taken_at) VALUES ($1, $2, $3, $4, $5)`
}

// ReadAggregateSnapshot implements [dialect.AggregateQueries].
func (Aggregates) ReadAggregateSnapshot() string {
	return `SELECT aggregate, group_key, value, taken_at FROM schemashift_aggregate_snapshots
		WHERE migration = $1 ORDER BY aggregate, group_key`
}

// LastAggregateComparison implements [dialect.AggregateQueries].
func (Aggregates) LastAggregateComparison() string {
	return `SELECT reason, accepted, at FROM schemashift_events
		WHERE migration = $1 AND kind = 'aggregates' ORDER BY id DESC LIMIT 1`
}
