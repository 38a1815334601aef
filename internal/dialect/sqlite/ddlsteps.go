package sqlite

// DDLStepsSchema implements [dialect.DDLQueries], in SQLite's types: the
// time a step ran as text in UTC, as schemashift's other tables keep it.
func (Dialect) DDLStepsSchema() string {
	return `CREATE TABLE IF NOT EXISTS schemashift_ddl_steps (
	migration  text NOT NULL,
	direction  text NOT NULL,
	op         integer NOT NULL,
	step       integer NOT NULL,
	statement  text NOT NULL,
	skipped    boolean NOT NULL DEFAULT false,
	note       text NOT NULL DEFAULT '',
	applied_at timestamp NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
	object     text NOT NULL DEFAULT '',
	created    boolean,
	pending    boolean NOT NULL DEFAULT false,
	PRIMARY KEY (migration, direction, op, step)
)`
}
