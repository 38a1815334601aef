package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
)

// CheckWAL implements [dialect.Replication]: SQLite's write-ahead log (in
// WAL mode) is a file checkpointed back into the database, with no
// position that grows as the log is written.
func (d Dialect) CheckWAL() error {
	return fmt.Errorf("WAL rate: %w on %s: its log has no position to measure", errors.ErrUnsupported, d)
}

// WALPosition implements [dialect.Replication]: see CheckWAL.
func (d Dialect) WALPosition(context.Context, sqlx.QueryerContext) (int64, error) {
	return 0, d.CheckWAL()
}

// Replicas implements [dialect.Replication]: an embedded database has no
// replicas (see CheckReplication).
func (d Dialect) Replicas(context.Context, sqlx.QueryerContext) ([]dialect.Replica, error) {
	return nil, d.CheckReplication()
}

// StandbyStatus implements [dialect.Replication]: an embedded database is
// no standby (see CheckReplication).
func (d Dialect) StandbyStatus(context.Context, sqlx.QueryerContext) (dialect.StandbyStatus, error) {
	return dialect.StandbyStatus{}, d.CheckReplication()
}
