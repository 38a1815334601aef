package backfill

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
)

// Signal tells a backfill to slow down. Workers consult every signal before
// each chunk and wait the longest Wait any of them returns (and halve their
// chunk size). A signal that errors throttles for one poll interval.
// Implementations must be safe for concurrent use.
type Signal interface {
	Throttle(ctx context.Context) (Throttle, error)
}

// SignalFunc adapts a function to a [Signal].
type SignalFunc func(ctx context.Context) (Throttle, error)

// Throttle calls f.
func (f SignalFunc) Throttle(ctx context.Context) (Throttle, error) { return f(ctx) }

// dialectSignal is a [Signal] that reads what only some databases have.
// [New] refuses it when its database is not one, rather than let its every
// reading fail and throttle the backfill for good.
type dialectSignal interface {
	Signal
	supported() error
}

// ReplicationLag throttles while any replica's replay lag, as the primary
// sees it in pg_stat_replication, exceeds limit. It is PostgreSQL only:
// given a SQLite db, [New] refuses it, and its readings fail, with an
// error wrapping errors.ErrUnsupported.
func ReplicationLag(db Pool, limit time.Duration) Signal {
	x, d, err := dialects.Sqlx(db)
	return replicationLag{db: x, d: d, err: err, limit: limit}
}

type replicationLag struct {
	db    *sqlx.DB
	d     dialect.Dialect
	err   error // no dialect for db
	limit time.Duration
}

var _ dialectSignal = replicationLag{}

// supported checks the signal's own database: the one it reads the lag of.
func (r replicationLag) supported() error {
	if r.err != nil {
		return fmt.Errorf("replication lag signal: %w", r.err)
	}
	if err := r.d.CheckReplication(); err != nil {
		return fmt.Errorf("replication lag signal: %w", err)
	}
	return nil
}

// Throttle implements [Signal].
func (r replicationLag) Throttle(ctx context.Context) (Throttle, error) {
	if err := r.supported(); err != nil {
		return Throttle{}, err
	}
	lag, err := r.d.ReplicationLag(ctx, r.db)
	if err != nil {
		return Throttle{}, err
	}
	if lag <= r.limit {
		return Throttle{}, nil
	}
	return Throttle{Wait: max(lag-r.limit, 100*time.Millisecond), Reason: fmt.Sprintf("replication lag %v over %v", lag.Round(time.Millisecond), r.limit)}, nil
}

// LatencyProbe throttles while the foreground suffers: it times probe (a
// query the application's hot path runs, say) and, when it takes longer
// than limit, asks for a pause of twice the probe's latency.
func LatencyProbe(limit time.Duration, probe func(ctx context.Context) error) Signal {
	return SignalFunc(func(ctx context.Context) (Throttle, error) {
		start := time.Now()
		if err := probe(ctx); err != nil {
			return Throttle{}, fmt.Errorf("latency probe: %w", err)
		}
		took := time.Since(start)
		if took <= limit {
			return Throttle{}, nil
		}
		return Throttle{Wait: 2 * took, Reason: fmt.Sprintf("foreground latency %v over %v", took.Round(time.Microsecond), limit)}, nil
	})
}
