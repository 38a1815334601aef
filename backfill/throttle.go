package backfill

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
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

// ReplicationLag throttles while any replica's replay lag, as the primary
// sees it in pg_stat_replication, exceeds limit.
func ReplicationLag(db *sqlx.DB, limit time.Duration) Signal {
	return SignalFunc(func(ctx context.Context) (Throttle, error) {
		var lagSeconds float64
		err := db.GetContext(ctx, &lagSeconds, `SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication`)
		if err != nil {
			return Throttle{}, fmt.Errorf("read replication lag: %w", err)
		}
		lag := time.Duration(lagSeconds * float64(time.Second))
		if lag <= limit {
			return Throttle{}, nil
		}
		return Throttle{Wait: max(lag-limit, 100*time.Millisecond), Reason: fmt.Sprintf("replication lag %v over %v", lag.Round(time.Millisecond), limit)}, nil
	})
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
