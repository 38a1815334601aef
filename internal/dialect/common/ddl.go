package common

import "github.com/schemashift/schemashift/internal/dialect"

// DDL holds the statements of [dialect.DDLQueries] every supported
// database accepts as they are: all of it but DDLStepsSchema, whose
// types and default differ.
type DDL struct{}

// DDLStepsColumns implements [dialect.DDLQueries]. A row from before
// object and created were recorded has created NULL: its object is not
// known to be this migration's, so a revert keeps it.
func (DDL) DDLStepsColumns() []dialect.AddedColumn {
	return []dialect.AddedColumn{
		{Name: "note", Add: `ALTER TABLE schemashift_ddl_steps ADD COLUMN note text NOT NULL DEFAULT ''`},
		{Name: "object", Add: `ALTER TABLE schemashift_ddl_steps ADD COLUMN object text NOT NULL DEFAULT ''`},
		{Name: "created", Add: `ALTER TABLE schemashift_ddl_steps ADD COLUMN created boolean`},
		{Name: "pending", Add: `ALTER TABLE schemashift_ddl_steps ADD COLUMN pending boolean NOT NULL DEFAULT false`},
	}
}

// DDLNamesSchema implements [dialect.DDLQueries].
func (DDL) DDLNamesSchema() string {
	return `CREATE TABLE IF NOT EXISTS schemashift_ddl_names (
	migration text NOT NULL,
	name      text NOT NULL,
	schema    text NOT NULL,
	PRIMARY KEY (migration, name)
)`
}

// DDLNotes implements [dialect.DDLQueries].
func (DDL) DDLNotes() string {
	return `SELECT direction, op, step, statement, skipped, note FROM schemashift_ddl_steps
		WHERE migration = $1 AND note <> '' ORDER BY applied_at, op, step`
}

// DDLForgetDirection implements [dialect.DDLQueries].
func (DDL) DDLForgetDirection() string {
	return `DELETE FROM schemashift_ddl_steps WHERE migration = $1 AND direction = $2`
}

// DDLForgetNames implements [dialect.DDLQueries].
func (DDL) DDLForgetNames() string {
	return `DELETE FROM schemashift_ddl_names WHERE migration = $1`
}

// DDLStepCreated implements [dialect.DDLQueries].
func (DDL) DDLStepCreated() string {
	return `SELECT created FROM schemashift_ddl_steps
		WHERE migration = $1 AND direction = $2 AND op = $3 AND step = $4 AND NOT pending`
}

// DDLForgetStep implements [dialect.DDLQueries].
func (DDL) DDLForgetStep() string {
	return `DELETE FROM schemashift_ddl_steps WHERE migration = $1 AND direction = $2 AND op = $3 AND step = $4`
}

// DDLPendingCreated implements [dialect.DDLQueries].
func (DDL) DDLPendingCreated() string {
	return `SELECT EXISTS (SELECT 1 FROM schemashift_ddl_steps
		WHERE migration = $1 AND direction = $2 AND op = $3 AND step = $4 AND pending AND created)`
}

// DDLResolvedName implements [dialect.DDLQueries].
func (DDL) DDLResolvedName() string {
	return `SELECT schema FROM schemashift_ddl_names WHERE migration = $1 AND name = $2`
}

// DDLResolveName implements [dialect.DDLQueries].
func (DDL) DDLResolveName() string {
	return `INSERT INTO schemashift_ddl_names (migration, name, schema) VALUES ($1, $2, $3)
		ON CONFLICT (migration, name) DO NOTHING`
}

// DDLRecordStep implements [dialect.DDLQueries].
func (DDL) DDLRecordStep() string {
	return `INSERT INTO schemashift_ddl_steps (migration, direction, op, step, statement, skipped, note, object, created, pending)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (migration, direction, op, step) DO UPDATE SET skipped = excluded.skipped, note = excluded.note,
			object = excluded.object, created = excluded.created, pending = excluded.pending
		WHERE schemashift_ddl_steps.pending`
}

// DDLDisownOthers implements [dialect.DDLQueries].
func (DDL) DDLDisownOthers() string {
	return `UPDATE schemashift_ddl_steps SET created = false
		WHERE direction = 'up' AND object = $1 AND created AND NOT (migration = $2 AND op = $3 AND step = $4)`
}

// DDLForgetDropped implements [dialect.DDLQueries].
func (DDL) DDLForgetDropped() string {
	return `DELETE FROM schemashift_ddl_steps WHERE migration = $1 AND direction = 'up' AND (object = $2 OR object = '')
		AND op IN (SELECT op FROM schemashift_ddl_steps WHERE migration = $1 AND direction = 'up' AND object = $2)`
}

// DDLDisownDropped implements [dialect.DDLQueries].
func (DDL) DDLDisownDropped() string {
	return `UPDATE schemashift_ddl_steps SET created = false WHERE direction = 'up' AND object = $1 AND created`
}

// DDLMade implements [dialect.DDLQueries].
func (DDL) DDLMade() string {
	return `SELECT
			EXISTS (SELECT 1 FROM schemashift_ddl_steps WHERE direction = 'up' AND object = $2 AND created AND NOT pending AND (migration = $1 OR $3)) AS ours,
			EXISTS (SELECT 1 FROM schemashift_ddl_steps WHERE direction = 'up' AND object = $2 AND created AND pending AND migration = $1) AS pending,
			EXISTS (SELECT 1 FROM schemashift_ddl_steps WHERE direction = 'up' AND migration = $1 AND created IS NULL AND NOT pending) AS legacy`
}
