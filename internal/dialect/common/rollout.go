package common

// Rollout is [dialect.RolloutQueries] as both databases accept it.
type Rollout struct{}

// LastQueryPlan implements [dialect.RolloutQueries].
func (Rollout) LastQueryPlan() string {
	return `SELECT (SELECT CAST(shape AS text) FROM schemashift_query_plans WHERE migration = $1 AND query = $2
			ORDER BY id DESC LIMIT 1)`
}

// RecordQueryPlan implements [dialect.RolloutQueries].
func (Rollout) RecordQueryPlan() string {
	return `INSERT INTO schemashift_query_plans (migration, query, moment, shape, changes, at)
			VALUES ($1, $2, $3, $4, $5, $6)`
}

// QueryPlans implements [dialect.RolloutQueries].
func (Rollout) QueryPlans() string {
	return `SELECT query, moment, CAST(shape AS text) AS shape, CAST(changes AS text) AS changes, at
		FROM schemashift_query_plans WHERE migration = $1 ORDER BY id`
}

// BackfillVerification implements [dialect.RolloutQueries].
func (Rollout) BackfillVerification() string {
	return `SELECT verify_status, status,
		coalesce(verify_started_at >= finished_at, false) AS current FROM schemashift_backfills WHERE job = $1`
}

// RecordApproval implements [dialect.RolloutQueries].
func (Rollout) RecordApproval() string {
	return `INSERT INTO schemashift_approvals (migration, to_phase, forced, version, kind, actor, reason, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`
}

// Approvals implements [dialect.RolloutQueries].
func (Rollout) Approvals() string {
	return `SELECT to_phase, forced, version, kind, actor, reason, at FROM schemashift_approvals
		WHERE migration = $1 AND version = $2 ORDER BY at, actor, kind, forced`
}

// RecordCheckRun implements [dialect.RolloutQueries].
func (Rollout) RecordCheckRun() string {
	return `INSERT INTO schemashift_check_runs (seq, migration, check_name, phase, passed, detail, duration_ns, actor, at)
		SELECT coalesce(max(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8 FROM schemashift_check_runs`
}

// LastCheckRuns implements [dialect.RolloutQueries].
func (Rollout) LastCheckRuns() string {
	return `SELECT check_name, phase, passed, detail, duration_ns, actor, at FROM schemashift_check_runs r
		WHERE migration = $1 AND seq = (SELECT max(seq) FROM schemashift_check_runs
			WHERE migration = r.migration AND check_name = r.check_name)
		ORDER BY check_name`
}

// CheckEnd implements [dialect.RolloutQueries] (SQLite adds the end of
// its read-only mode).
func (Rollout) CheckEnd() []string {
	return []string{`ROLLBACK TO SAVEPOINT schemashift_check`, `RELEASE SAVEPOINT schemashift_check`}
}
