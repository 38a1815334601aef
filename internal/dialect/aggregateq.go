package dialect

import (
	"context"
	"time"
)

// AggregateQueries are the statements of package rollout's aggregate
// validation: a plan's counts and sums over the old and new shapes,
// their snapshot at the expand, and the last comparison's event.
type AggregateQueries interface {
	// AggregateStatement is the one statement that computes an aggregate
	// over one side: kind is "count", "sum" or "count distinct", value the
	// SQL it is taken of (a quoted column, or an expression already
	// checked), table the quoted table, group a quoted column or "" for
	// none. Its rows: without group, one column, the value as text; with
	// group, the group's value as text (NULL for NULL), 1 where the group
	// is NULL (0 otherwise), and the value as text. A sum of no rows is 0.
	AggregateStatement(kind, value, table, group string) string
	// ClearAggregateSnapshot deletes migration $1's snapshot.
	ClearAggregateSnapshot() string
	// InsertAggregateSnapshot records one value of a snapshot: $1
	// migration, $2 aggregate, $3 group key ('' for none), $4 value (as
	// text), $5 time taken (a [Stamp]).
	InsertAggregateSnapshot() string
	// ReadAggregateSnapshot reads migration $1's snapshot: aggregate,
	// group_key, value, taken_at.
	ReadAggregateSnapshot() string
	// LastAggregateComparison reads the reason, accepted and at of
	// migration $1's last event of kind "aggregates": no row for none.
	LastAggregateComparison() string
	// ReadOnly runs f in tx under a savepoint in which the database
	// refuses to write and each statement stops after timeout; the
	// savepoint is then rolled back, and tx goes on as it was. f runs
	// its statements with the context it is given.
	ReadOnly(ctx context.Context, tx Conn, timeout time.Duration, f func(ctx context.Context) error) error
}
