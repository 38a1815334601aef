package postgres

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
)

// CheckWAL implements [dialect.Replication]: the position can be read.
func (Dialect) CheckWAL() error { return nil }

// WALPosition implements [dialect.Replication] from
// pg_current_wal_insert_lsn(): the log as it is generated, not as it is
// written out (pg_current_wal_lsn() trails it under asynchronous commit).
// A standby cannot read it (it writes no log of its own).
func (Dialect) WALPosition(ctx context.Context, q sqlx.QueryerContext) (int64, error) {
	var pos int64
	if err := sqlx.GetContext(ctx, q, &pos, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint`); err != nil {
		return 0, fmt.Errorf("read WAL position: %w", err)
	}
	return pos, nil
}

// Replicas implements [dialect.Replication] from pg_stat_replication. The
// replica's distance is taken against the primary's position in the same
// statement; reply_time is the replica's clock, compared with the
// primary's now.
func (Dialect) Replicas(ctx context.Context, q sqlx.QueryerContext) ([]dialect.Replica, error) {
	var rs []dialect.Replica
	if err := sqlx.SelectContext(ctx, q, &rs, `SELECT coalesce(application_name, '') AS name, coalesce(state, '') AS state,
			write_lsn IS NOT NULL AS writes,
			pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS behind,
			extract(epoch FROM replay_lag)::float8 AS lag,
			extract(epoch FROM clock_timestamp() - reply_time)::float8 AS reply_age
		FROM pg_stat_replication ORDER BY application_name, pid`); err != nil {
		return nil, fmt.Errorf("read replicas: %w", err)
	}
	return rs, nil
}

// StandbyStatus implements [dialect.Replication] from the standby's own
// functions and pg_stat_wal_receiver. A standby that has received no log
// from a primary (pg_last_wal_receive_lsn() is NULL) is not caught up.
func (Dialect) StandbyStatus(ctx context.Context, q sqlx.QueryerContext) (dialect.StandbyStatus, error) {
	var s dialect.StandbyStatus
	if err := sqlx.GetContext(ctx, q, &s, `SELECT pg_is_in_recovery() AS in_recovery,
			EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming') AS streaming,
			coalesce(pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn(), false) AS caught_up,
			CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS paused,
			extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 AS lag`); err != nil {
		return dialect.StandbyStatus{}, fmt.Errorf("read standby status: %w", err)
	}
	return s, nil
}
