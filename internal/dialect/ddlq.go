package dialect

// DDLQueries are the statements of package ddl's executor on its own
// tables: schemashift_ddl_steps, the record of every step it ran (what
// it made, what it skipped and why, the intent of a build that cannot run
// in a transaction), and schemashift_ddl_names, the schema each table a
// migration names without one was resolved to (where the database has a
// search path). Parameters are listed in order, $1 first.
type DDLQueries interface {
	// DDLStepsSchema makes the steps table, unless it is there.
	DDLStepsSchema() string
	// DDLStepsColumns are the columns added to the steps table after its
	// first release, each with the statement that adds it to a table
	// without it.
	DDLStepsColumns() []AddedColumn
	// DDLNamesSchema makes the names table, unless it is there.
	DDLNamesSchema() string
	// DDLNotes reads the steps of a migration that have a note, in the
	// order they ran: $1 the migration.
	DDLNotes() string
	// DDLForgetDirection deletes a migration's steps of one direction:
	// $1 the migration, $2 the direction.
	DDLForgetDirection() string
	// DDLForgetNames deletes a migration's resolved names: $1 the
	// migration.
	DDLForgetNames() string
	// DDLStepCreated reads whether a step, recorded and not pending, made
	// its object (NULL where an older executor did not record it): $1 the
	// migration, $2 the direction, $3 the op, $4 the step.
	DDLStepCreated() string
	// DDLForgetStep deletes a step's record: $1 the migration, $2 the
	// direction, $3 the op, $4 the step.
	DDLForgetStep() string
	// DDLPendingCreated reads whether a step is recorded as the pending
	// intent of making its object: $1 the migration, $2 the direction, $3
	// the op, $4 the step.
	DDLPendingCreated() string
	// DDLResolvedName reads the schema a migration's table name was
	// resolved to: $1 the migration, $2 the name.
	DDLResolvedName() string
	// DDLResolveName records the schema a migration's table name resolved
	// to, unless one is recorded already (the first resolution wins): $1
	// the migration, $2 the name, $3 the schema.
	DDLResolveName() string
	// DDLRecordStep records a step, or completes the pending record of
	// it (a record that is not pending stays as it is): $1 the migration,
	// $2 the direction, $3 the op, $4 the step, $5 the statement, $6
	// skipped, $7 the note, $8 the object's key, $9 created (NULL, true or
	// false), $10 pending.
	DDLRecordStep() string
	// DDLDisownOthers voids every other apply's record of making the
	// object of a key: $1 the key, and the step that keeps it, $2 its
	// migration, $3 its op, $4 its step.
	DDLDisownOthers() string
	// DDLForgetDropped deletes, of a migration's apply, the record of
	// the step that made a dropped object and of its op's steps that make
	// nothing: $1 the migration, $2 the dropped object's key.
	DDLForgetDropped() string
	// DDLDisownDropped voids every record of making a dropped object: $1
	// its key.
	DDLDisownDropped() string
	// DDLMade reads who made the object of a key, as three booleans:
	// ours (a migration's apply made it and is recorded done: $1's, or
	// any migration's when $3 is true), pending (only $1's intent of
	// making it is recorded), legacy ($1 has a step of an older executor,
	// which did not record what it made). $1 the migration, $2 the key,
	// $3 whether any migration's record counts.
	DDLMade() string
}

// AddedColumn is a column added to a table of schemashift's after the
// table's first release, and the statement that adds it.
type AddedColumn struct {
	Name, Add string
}
