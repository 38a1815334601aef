package postgres

// DDLStepsSchema implements [dialect.DDLQueries].
func (Dialect) DDLStepsSchema() string {
	return `CREATE TABLE IF NOT EXISTS schemashift_ddl_steps (
	migration  text NOT NULL,
	direction  text NOT NULL,
	op         integer NOT NULL,
	step       integer NOT NULL,
	statement  text NOT NULL,
	skipped    boolean NOT NULL DEFAULT false,
	note       text NOT NULL DEFAULT '',
	applied_at timestamptz NOT NULL DEFAULT now(),
	object     text NOT NULL DEFAULT '',
	created    boolean,
	pending    boolean NOT NULL DEFAULT false,
	PRIMARY KEY (migration, direction, op, step)
)`
}
