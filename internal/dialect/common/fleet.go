package common

// Fleet is the part of [dialect.FleetQueries] both databases accept as
// it is: all of it but BeatMigration and LockLatency.
type Fleet struct{}

// ReadInstances implements [dialect.FleetQueries].
func (Fleet) ReadInstances() string {
	return `SELECT instance_id, service, build_version, first_seen, last_seen, CAST(stage_seen AS text) AS stage_seen,
			min_stage, max_stage, last_old_call, old_calls, matched, mismatched, shadow_drops
		FROM schemashift_instances WHERE migration = $1 AND last_seen > $2 ORDER BY service, instance_id`
}

// ReadUnaware implements [dialect.FleetQueries].
func (Fleet) ReadUnaware() string {
	return `SELECT i.instance_id, i.service, i.build_version, i.first_seen, i.last_seen
		FROM schemashift_instances i
		WHERE i.migration = '' AND i.last_seen > $2
		  AND i.service IN (SELECT service FROM schemashift_instances WHERE migration = $1)
		  AND NOT EXISTS (SELECT 1 FROM schemashift_instances k WHERE k.instance_id = i.instance_id AND k.migration = $1)
		ORDER BY i.service, i.instance_id`
}

// InstancesPerService implements [dialect.FleetQueries].
func (Fleet) InstancesPerService() string {
	return `SELECT service, count(DISTINCT instance_id) AS n FROM schemashift_instances
		WHERE migration <> '' AND last_seen > $1 GROUP BY service`
}

// SumHeartbeats implements [dialect.FleetQueries].
func (Fleet) SumHeartbeats() string {
	return `SELECT coalesce(sum(matched), 0) AS matched, coalesce(sum(mismatched), 0) AS mismatched,
		coalesce(sum(old_total), 0) AS old_total, coalesce(sum(old_errors), 0) AS old_errors,
		coalesce(sum(new_total), 0) AS new_total, coalesce(sum(new_errors), 0) AS new_errors
		FROM schemashift_instances WHERE migration = $1`
}

// ReadLatencies implements [dialect.FleetQueries].
func (Fleet) ReadLatencies() string {
	return `SELECT CAST(latency AS text) FROM schemashift_instances WHERE migration = $1`
}

// BeatInstance implements [dialect.FleetQueries].
func (Fleet) BeatInstance() string {
	return `INSERT INTO schemashift_instances (instance_id, migration, service, build_version, first_seen, last_seen)
		VALUES ($1, '', $2, $3, $4, $4) ON CONFLICT (instance_id, migration) DO UPDATE SET last_seen = EXCLUDED.last_seen,
		service = EXCLUDED.service, build_version = EXCLUDED.build_version`
}

// InsertSample implements [dialect.FleetQueries]: the next number is one
// step up the key, read under the heartbeat's lock of the instance's row
// (SQLite's write transaction excludes every other writer).
func (Fleet) InsertSample() string {
	return `INSERT INTO schemashift_heartbeat_samples (migration, instance_id, seq, at,
			old_calls, old_errors, new_calls, new_errors, matched, mismatched, latency)
		VALUES ($1, $2, (SELECT coalesce(max(seq), 0) + 1 FROM schemashift_heartbeat_samples WHERE migration = $1 AND instance_id = $2),
			$3, $4, $5, $6, $7, $8, $9, $10)`
}

// PruneSamplesBefore implements [dialect.FleetQueries].
func (Fleet) PruneSamplesBefore() string {
	return `DELETE FROM schemashift_heartbeat_samples WHERE migration = $1 AND instance_id = $2 AND at < $3`
}

// PruneSamplesOver implements [dialect.FleetQueries]: the last number is
// one step down the key.
func (Fleet) PruneSamplesOver() string {
	return `DELETE FROM schemashift_heartbeat_samples WHERE migration = $1 AND instance_id = $2
		AND seq <= (SELECT max(seq) FROM schemashift_heartbeat_samples WHERE migration = $1 AND instance_id = $2) - $3`
}

// ReadSamples implements [dialect.FleetQueries].
func (Fleet) ReadSamples() string {
	return `SELECT instance_id, at, old_calls, old_errors, new_calls, new_errors, matched, mismatched, latency
		FROM schemashift_heartbeat_samples WHERE migration = $1 AND at > $2 AND at <= $3
		ORDER BY instance_id, at, seq`
}
