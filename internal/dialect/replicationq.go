package dialect

import (
	"context"
	"database/sql"

	"github.com/jmoiron/sqlx"
)

// Replication reads what a primary knows of its replicas, what a standby
// knows of its own replay, and where the server's write-ahead log is, for
// package backfill's signals. Each read runs on the handle given. Like all
// of [Dialect], it is safe for concurrent use; a database that has none of
// it returns errors wrapping errors.ErrUnsupported.
type Replication interface {
	// CheckWAL says whether [Replication.WALPosition] can be read: an
	// error wrapping errors.ErrUnsupported where it cannot.
	CheckWAL() error
	// WALPosition is the server's current write-ahead log position, in
	// bytes from the log's start: the difference of two is the log
	// written between them.
	WALPosition(ctx context.Context, q sqlx.QueryerContext) (int64, error)
	// Replicas reads the primary's replication connections, one per
	// replica (and per other WAL receiver), as the primary sees them.
	Replicas(ctx context.Context, q sqlx.QueryerContext) ([]Replica, error)
	// StandbyStatus reads a standby's view of its own replay.
	StandbyStatus(ctx context.Context, q sqlx.QueryerContext) (StandbyStatus, error)
}

// Replica is one replication connection as the primary sees it: a plain
// value. A field is invalid where the primary shows nothing (the
// replica has not reported it, or the reading role may not see it).
type Replica struct {
	// Name is the application name the replica connected with.
	Name string `db:"name"`
	// State is the connection's state ("startup", "catchup",
	// "streaming", "backup", "stopping").
	State string `db:"state"`
	// Writes: the receiver has reported a written position.
	Writes bool `db:"writes"`
	// Behind is how many bytes of the primary's log the replica has not
	// replayed (negative or zero: it has replayed all); invalid until it
	// reports a replayed position, and for a receiver that replays
	// nothing.
	Behind sql.Null[float64] `db:"behind"`
	// Lag is the replay lag, in seconds.
	Lag sql.Null[float64] `db:"lag"`
	// ReplyAge is the seconds since the replica's last reply was sent
	// (its clock against the primary's).
	ReplyAge sql.Null[float64] `db:"reply_age"`
}

// StandbyStatus is a standby's view of its own replay: a plain value.
type StandbyStatus struct {
	// InRecovery: the database is a standby (or recovering).
	InRecovery bool `db:"in_recovery"`
	// Streaming: its WAL receiver streams from the primary.
	Streaming bool `db:"streaming"`
	// CaughtUp: it has replayed all the log it received.
	CaughtUp bool `db:"caught_up"`
	// Paused: its replay is paused.
	Paused bool `db:"paused"`
	// Lag is the seconds since the commit of the last transaction it
	// replayed was made on the primary; invalid before it replayed one.
	Lag sql.Null[float64] `db:"lag"`
}
