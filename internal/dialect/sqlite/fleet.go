package sqlite

// BeatMigration implements [dialect.FleetQueries]: the parameters need
// no casts (a column's affinity applies), and the stages seen merge with
// json_patch.
func (Dialect) BeatMigration() string {
	return `INSERT INTO schemashift_instances AS i (instance_id, migration, service, build_version, stage_seen,
			min_stage, max_stage, last_old_call, old_calls, matched, mismatched, old_total, old_errors, new_total, new_errors, latency, shadow_drops,
			first_seen, last_seen)
		VALUES ($1, $2, $3, $4, json($5),
			$6, $7, CASE WHEN $8 > 0 THEN $17 END, $8, $9, $10, $11, $12, $13, $14, json($15), $16,
			$17, $17)
		ON CONFLICT (instance_id, migration) DO UPDATE SET last_seen = EXCLUDED.last_seen,
			service = EXCLUDED.service, build_version = EXCLUDED.build_version,
			stage_seen = json_patch(i.stage_seen, EXCLUDED.stage_seen),
			min_stage = CASE WHEN EXCLUDED.min_stage = '' THEN i.min_stage ELSE EXCLUDED.min_stage END,
			max_stage = CASE WHEN EXCLUDED.max_stage = '' THEN i.max_stage ELSE EXCLUDED.max_stage END,
			last_old_call = coalesce(EXCLUDED.last_old_call, i.last_old_call),
			old_calls = i.old_calls + EXCLUDED.old_calls,
			matched = i.matched + EXCLUDED.matched,
			mismatched = i.mismatched + EXCLUDED.mismatched,
			shadow_drops = i.shadow_drops + EXCLUDED.shadow_drops,
			old_total = i.old_total + EXCLUDED.old_total, old_errors = i.old_errors + EXCLUDED.old_errors,
			new_total = i.new_total + EXCLUDED.new_total, new_errors = i.new_errors + EXCLUDED.new_errors,
			latency = EXCLUDED.latency`
}

// LockLatency implements [dialect.FleetQueries]: the write transaction
// already excludes every other writer.
func (Dialect) LockLatency() string {
	return `SELECT CAST(latency AS text) FROM schemashift_instances
		WHERE instance_id = $1 AND migration = $2`
}
