package backfill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
)

// Signal tells a backfill to slow down. Workers consult every signal before
// each chunk and wait the longest Wait any of them returns (and halve their
// chunk size), then consult them all again: a signal that asks for short
// waits is re-checked often. A signal that errors throttles for one poll
// interval.
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
	// supported checks the signal against the database it reads: its
	// own, or the backfill's (db, of dialect d), which a signal of the
	// backfill's database keeps from then on.
	supported(ctx context.Context, db *sqlx.DB, d dialect.Dialect) error
}

// ErrNotStandby is the error of [ReplicationLagOnStandby] given a database
// that is not in recovery: a primary, or a standby since promoted.
var ErrNotStandby = errors.New("not a standby")

// Defaults of the [LagOption]s.
const (
	defaultLagRecheck = 500 * time.Millisecond
	// Three of a standby's default status intervals
	// (wal_receiver_status_interval, 10s): an idle standby replies
	// that often.
	defaultLagStale = 30 * time.Second
	// minLagWait keeps a lag just over the limit from re-reading it in
	// a busy loop.
	minLagWait = 10 * time.Millisecond
)

// LagOption configures [ReplicationLag] or [ReplicationLagOnStandby]. A
// bad or inapplicable one makes the signal's readings fail, and [New]
// refuse it.
type LagOption func(*lagOptions) error

type lagOptions struct {
	recheck  time.Duration
	stale    time.Duration
	replicas int
	names    []string
	primary  bool // an option of the primary's view only was given
}

// LagRecheck sets how soon a throttled worker reads the lag again
// (default 500ms): a backfill resumes within d of the lag falling under
// the limit, rather than waiting out the lag it last read.
func LagRecheck(d time.Duration) LagOption {
	return func(o *lagOptions) error {
		o.recheck = d
		if d < time.Millisecond {
			return fmt.Errorf("lag re-check interval %v is under 1ms", d)
		}
		return nil
	}
}

// LagStaleAfter sets how old a replica's last reply may be before its lag
// is unknown (default 30s). A standby replies at least every
// wal_receiver_status_interval (10s by default), and whenever it receives
// log: d must exceed that interval. [ReplicationLag] only.
func LagStaleAfter(d time.Duration) LagOption {
	return func(o *lagOptions) error {
		o.stale, o.primary = d, true
		if d <= 0 {
			return fmt.Errorf("lag staleness bound %v is not positive", d)
		}
		return nil
	}
}

// LagReplicas says that at least n replicas must be connected: with fewer,
// the lag is unknown. [ReplicationLag] only.
func LagReplicas(n int) LagOption {
	return func(o *lagOptions) error {
		o.replicas, o.primary = n, true
		if n < 0 {
			return fmt.Errorf("expected replicas: %d is negative", n)
		}
		return nil
	}
}

// LagReplicaNames says that replicas of these application names (their
// primary_conninfo's application_name, compared exactly) must be
// connected: without one, the lag is unknown. [ReplicationLag] only.
func LagReplicaNames(names ...string) LagOption {
	return func(o *lagOptions) error {
		o.primary = true
		for _, n := range names {
			if n == "" {
				return errors.New("expected replica name is empty")
			}
			if slices.Contains(o.names, n) {
				return fmt.Errorf("expected replica %q named twice", n)
			}
			o.names = append(o.names, n)
		}
		return nil
	}
}

func newLagOptions(opts []LagOption) (lagOptions, error) {
	o := lagOptions{recheck: defaultLagRecheck, stale: defaultLagStale}
	for _, opt := range opts {
		if opt == nil {
			return o, errors.New("lag option is nil")
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// lagThrottle is the throttle of a lag read: unknown (the reasons why)
// throttles for one re-check; a lag over limit for what it is over, at
// most one re-check.
func lagThrottle(o lagOptions, limit, lag time.Duration, unknown []string, note string) Throttle {
	if len(unknown) > 0 {
		return Throttle{Wait: o.recheck, Reason: "replication lag unknown: " + strings.Join(unknown, "; ")}
	}
	if lag <= limit {
		return Throttle{}
	}
	return Throttle{
		Wait:   min(max(lag-limit, minLagWait), o.recheck),
		Reason: fmt.Sprintf("replication lag %v over %v%s", lag.Round(time.Millisecond), limit, note),
	}
}

// ReplicationLag throttles while any replica's replay lag, as the primary
// db sees it in pg_stat_replication, exceeds limit, or is unknown. A
// throttled worker reads it again within [LagRecheck]'s interval, so that
// the backfill resumes as soon as the lag is back under limit.
//
// Unknown is not zero. Of each replication connection (a base backup's,
// and a receiver's that writes the log but replays none, are not
// replicas and are passed over):
//   - one that has not reported a replayed position is unknown;
//   - one that has replayed all the primary's log is caught up, lag
//     zero, however long ago it replied (an idle replica that is caught
//     up shows no lag at all);
//   - otherwise, one whose last reply is older than [LagStaleAfter]'s
//     bound (a replica stopped, frozen or cut off: the primary keeps its
//     row until wal_sender_timeout), or that shows no replay lag, is
//     unknown;
//   - the others' lag is their replay_lag.
//
// And fewer replicas connected than [LagReplicas] says, or one of
// [LagReplicaNames] missing, is unknown. Without either, no replica at
// all is no lag: a primary cannot tell a replica gone from none. The
// reading role must see the replicas' rows (a superuser, or a member of
// pg_monitor): to another role every row is unknown.
//
// It is PostgreSQL only: given a SQLite db, [New] refuses it, and its
// readings fail, with an error wrapping errors.ErrUnsupported.
func ReplicationLag(db Pool, limit time.Duration, opts ...LagOption) Signal {
	x, d, err := dialects.Sqlx(db)
	o, oerr := newLagOptions(opts)
	return replicationLag{db: x, d: d, err: errors.Join(err, oerr), limit: limit, o: o}
}

type replicationLag struct {
	db    *sqlx.DB
	d     dialect.Dialect
	err   error // no dialect for db, or a bad option
	limit time.Duration
	o     lagOptions
}

var _ dialectSignal = replicationLag{}

// supported checks the signal's own database: the one it reads the lag of.
func (r replicationLag) supported(context.Context, *sqlx.DB, dialect.Dialect) error { return r.check() }

func (r replicationLag) check() error {
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
	if err := r.check(); err != nil {
		return Throttle{}, err
	}
	rs, err := r.d.Replicas(ctx, r.db)
	if err != nil {
		return Throttle{}, err
	}
	lag, unknown := judgeReplicas(rs, r.o)
	return lagThrottle(r.o, r.limit, lag, unknown, ""), nil
}

// judgeReplicas applies [ReplicationLag]'s rule to the primary's rows: the
// largest lag of the replicas known, and what is unknown.
func judgeReplicas(rs []dialect.Replica, o lagOptions) (lag time.Duration, unknown []string) {
	var present []string
	for _, r := range rs {
		if r.State == "backup" || (!r.Behind.Valid && r.Writes) {
			continue
		}
		present = append(present, r.Name)
		switch {
		case !r.Behind.Valid:
			unknown = append(unknown, fmt.Sprintf("replica %q has not reported", r.Name))
		case r.Behind.V <= 0:
		case !r.ReplyAge.Valid || seconds(r.ReplyAge.V) > o.stale:
			unknown = append(unknown, fmt.Sprintf("replica %q silent for over %v", r.Name, o.stale))
		case !r.Lag.Valid:
			unknown = append(unknown, fmt.Sprintf("replica %q shows no lag %d bytes behind", r.Name, int64(r.Behind.V)))
		default:
			lag = max(lag, seconds(r.Lag.V))
		}
	}
	if len(present) < o.replicas {
		unknown = append(unknown, fmt.Sprintf("%d of %d replicas connected", len(present), o.replicas))
	}
	for _, n := range o.names {
		if !slices.Contains(present, n) {
			unknown = append(unknown, fmt.Sprintf("replica %q not connected", n))
		}
	}
	return lag, unknown
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// ReplicationLagOnStandby throttles while the replay lag that standby (a
// pool on a standby of the backfill's primary) reads of itself exceeds
// limit, or is unknown; a throttled worker reads it again within
// [LagRecheck]'s interval. The lag is the time since the commit of the
// last transaction it replayed, but zero once it has replayed all the log
// it received: a standby of an idle primary is caught up, not behind by
// the primary's idle time. A standby whose WAL receiver does not stream
// (cut off from its primary), or that has replayed no transaction while
// behind, is unknown. A lag read there misses the log the primary has not
// yet sent: read the primary's view too ([ReplicationLag]) to cover it.
//
// [New] refuses a standby that is not in recovery, with [ErrNotStandby];
// one promoted later fails each reading so (and a failed reading
// throttles). It is PostgreSQL only: given a SQLite db, [New] refuses it,
// and its readings fail, with an error wrapping errors.ErrUnsupported.
// [LagStaleAfter], [LagReplicas] and [LagReplicaNames], of the primary's
// view, are refused.
func ReplicationLagOnStandby(standby Pool, limit time.Duration, opts ...LagOption) Signal {
	x, d, err := dialects.Sqlx(standby)
	o, oerr := newLagOptions(opts)
	if oerr == nil && o.primary {
		oerr = errors.New("staleness and expected replicas are the primary's view, not a standby's")
	}
	return standbyLag{db: x, d: d, err: errors.Join(err, oerr), limit: limit, o: o}
}

type standbyLag struct {
	db    *sqlx.DB
	d     dialect.Dialect
	err   error // no dialect for db, or a bad option
	limit time.Duration
	o     lagOptions
}

var _ dialectSignal = standbyLag{}

// supported checks the signal's own database: that it is a standby.
func (s standbyLag) supported(ctx context.Context, _ *sqlx.DB, _ dialect.Dialect) error {
	_, err := s.read(ctx)
	return err
}

func (s standbyLag) read(ctx context.Context) (dialect.StandbyStatus, error) {
	if s.err != nil {
		return dialect.StandbyStatus{}, fmt.Errorf("standby lag signal: %w", s.err)
	}
	if err := s.d.CheckReplication(); err != nil {
		return dialect.StandbyStatus{}, fmt.Errorf("standby lag signal: %w", err)
	}
	st, err := s.d.StandbyStatus(ctx, s.db)
	if err != nil {
		return st, fmt.Errorf("standby lag signal: %w", err)
	}
	if !st.InRecovery {
		return st, fmt.Errorf("standby lag signal: %w: the database is not in recovery", ErrNotStandby)
	}
	return st, nil
}

// Throttle implements [Signal].
func (s standbyLag) Throttle(ctx context.Context) (Throttle, error) {
	st, err := s.read(ctx)
	if err != nil {
		return Throttle{}, err
	}
	var (
		lag     time.Duration
		unknown []string
		note    string
	)
	if st.Paused {
		note = " (standby replay paused)"
	}
	switch {
	case !st.Streaming:
		unknown = append(unknown, "standby not streaming from its primary")
	case st.CaughtUp:
	case !st.Lag.Valid:
		unknown = append(unknown, "standby behind, with no transaction replayed"+note)
	default:
		lag = seconds(st.Lag.V)
	}
	return lagThrottle(s.o, s.limit, lag, unknown, note), nil
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
