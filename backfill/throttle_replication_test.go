package backfill_test

import (
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// poll reads sig until ok holds of its throttle or the deadline passes,
// running between readings (a write on the primary, say). It returns the
// throttle that held.
func poll(t *testing.T, within time.Duration, sig backfill.Signal, between func(), ok func(backfill.Throttle) bool, what string) backfill.Throttle {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last backfill.Throttle
	var lastErr error
	for {
		if between != nil {
			between()
		}
		th, err := sig.Throttle(t.Context())
		if err == nil && ok(th) {
			return th
		}
		last, lastErr = th, err
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s (last: %+v, %v)", within, what, last, lastErr)
		}
		<-tick.C
	}
}

func passes(th backfill.Throttle) bool { return th.Wait == 0 && th.Reason == "" }

func reasonHas(words ...string) func(backfill.Throttle) bool {
	return func(th backfill.Throttle) bool {
		if th.Wait <= 0 {
			return false
		}
		for _, w := range words {
			if !strings.Contains(th.Reason, w) {
				return false
			}
		}
		return true
	}
}

// replicated is a private primary with a database of usersTable(rows) and
// a standby of it named name, replying every second: the primary's pool,
// the standby's pool of the same database, and the standby.
func replicated(t *testing.T, name string, rows int) (*sqlx.DB, *sqlx.DB, *pgtest.Standby) {
	t.Helper()
	ctx := t.Context()
	primary := pgtest.Cluster(t)
	dbURL, err := primary.CreateDatabase(ctx, "replicated")
	require.NoError(t, err)
	db := open(t, dbURL)
	usersTable(t, db, rows)
	sb := pgtest.NewStandby(t, primary, pgtest.StandbyOptions{Name: name, StatusInterval: time.Second})
	cfg, err := pgx.ParseConfig(dbURL)
	require.NoError(t, err)
	sURL, err := sb.DatabaseURL(path.Base(cfg.Database))
	require.NoError(t, err)
	sdb := open(t, sURL)
	sdb.SetMaxOpenConns(2)
	// A transaction the standby has replayed: its own lag reads from
	// the last one.
	db.MustExecContext(ctx, `INSERT INTO users (id, email) VALUES (0, 'first')`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if sdb.GetContext(ctx, &n, `SELECT count(*) FROM users WHERE id = 0`) == nil && n == 1 {
			return db, sdb, sb
		}
		require.True(t, time.Now().Before(deadline), "the rows reach the standby")
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// The replication-lag signals, on both sides, against a real standby:
// under the limit they pass; with the standby's replay paused while the
// primary writes they throttle, asking for at most one re-check interval
// rather than the whole lag; after the replay resumes they pass again, and
// a backfill held by them finishes; a frozen, disconnected or stopped
// standby is unknown, and throttles.
func TestReplicationLagAgainstStandby(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const name = `replica <b>"one"</b> \`
	db, sdb, sb := replicated(t, name, 300)
	const (
		limit   = 300 * time.Millisecond
		recheck = 200 * time.Millisecond
	)
	onPrimary := backfill.ReplicationLag(db, limit, backfill.LagRecheck(recheck), backfill.LagReplicaNames(name), backfill.LagStaleAfter(3*time.Second))
	onStandby := backfill.ReplicationLagOnStandby(sdb, limit, backfill.LagRecheck(recheck))
	n := 0
	write := func() {
		n++
		db.MustExecContext(ctx, `INSERT INTO users (id, email) VALUES ($1, 'w')`, 1_000_000+n)
	}

	poll(t, 30*time.Second, onPrimary, nil, passes, "the primary's view passes once the standby is caught up")
	poll(t, 30*time.Second, onStandby, nil, passes, "the standby's view passes")

	// Replay paused while the primary writes: the lag grows past the
	// limit, by seconds, and the wait asked is at most one re-check.
	sdb.MustExecContext(ctx, `SELECT pg_wal_replay_pause()`)
	over := func(th backfill.Throttle) bool { return reasonHas("replication lag", "over")(th) }
	poll(t, 30*time.Second, onStandby, write, func(th backfill.Throttle) bool {
		return over(th) && strings.Contains(th.Reason, "paused") && !strings.HasPrefix(th.Reason, "replication lag 0")
	}, "the standby's view throttles on its paused replay")
	var lagged backfill.Throttle
	lagged = poll(t, 30*time.Second, onPrimary, write, func(th backfill.Throttle) bool {
		var lag time.Duration
		if !over(th) {
			return false
		}
		f := strings.Fields(th.Reason)
		lag, err := time.ParseDuration(f[2])
		return err == nil && lag > limit+2*time.Second
	}, "the primary's view sees the lag seconds over the limit")
	assert.LessOrEqual(t, lagged.Wait, recheck, "a lag seconds over the limit is re-checked within the interval: %s", lagged.Reason)
	th, err := onStandby.Throttle(ctx)
	require.NoError(t, err)
	assert.True(t, over(th), "%+v", th)
	assert.LessOrEqual(t, th.Wait, recheck)

	// A backfill held by both, until the replay resumes.
	b := mustNew(t, db, emailJob("held"), backfill.WithSignals(onPrimary, onStandby), backfill.WithChunkSize(100, 10, 100))
	type result struct {
		p   backfill.Progress
		err error
	}
	ran := make(chan result, 1)
	go func() {
		p, err := b.Run(ctx)
		ran <- result{p, err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := b.State(ctx)
		require.NoError(t, err)
		if strings.Contains(st.Throttle, "replication lag") {
			assert.Zero(t, st.RowsDone, "no chunk ran while the replay was paused")
			break
		}
		require.True(t, time.Now().Before(deadline), "the backfill is throttled: %+v", st)
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	sdb.MustExecContext(ctx, `SELECT pg_wal_replay_resume()`)
	resumed := time.Now()
	var r result
	select {
	case r = <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("the backfill did not finish after the replay resumed")
	}
	require.NoError(t, r.err)
	assert.Equal(t, backfill.Done, r.p.Status)
	t.Logf("backfill done %v after the replay resumed (lag was %s)", time.Since(resumed).Round(time.Millisecond), lagged.Reason)
	poll(t, 30*time.Second, onPrimary, nil, passes, "the primary's view passes after the replay resumed")
	poll(t, 30*time.Second, onStandby, nil, passes, "the standby's view passes after the replay resumed")

	// Frozen: the primary keeps the standby's row, whose replies stop.
	require.NoError(t, sb.FreezeReceiver(ctx))
	poll(t, 30*time.Second, onPrimary, write, reasonHas("unknown", "silent"), "a silent replica is unknown")
	th, err = onPrimary.Throttle(ctx)
	require.NoError(t, err)
	assert.Contains(t, th.Reason, `"replica <b>\"one\"</b> \\"`, "the replica's name is quoted")
	assert.LessOrEqual(t, th.Wait, recheck)
	require.NoError(t, sb.ThawReceiver())
	poll(t, 30*time.Second, onPrimary, nil, passes, "a thawed replica replies again")

	// Cut off from its primary: the standby's own view is unknown, and
	// the primary's misses the named replica.
	sdb.MustExecContext(ctx, `ALTER SYSTEM SET primary_conninfo = ''`)
	sdb.MustExecContext(ctx, `SELECT pg_reload_conf()`)
	poll(t, 30*time.Second, onStandby, nil, reasonHas("unknown", "not streaming"), "a standby cut off is unknown")
	poll(t, 30*time.Second, onPrimary, nil, reasonHas("unknown", "not connected"), "a missing replica is unknown")
	anyReplicas := backfill.ReplicationLag(db, limit, backfill.LagReplicas(1))
	poll(t, 5*time.Second, anyReplicas, nil, reasonHas("unknown", "0 of 1 replicas"), "too few replicas is unknown")
	poll(t, 5*time.Second, backfill.ReplicationLag(db, limit), nil, passes, "without expectations, no replica is no lag")

	// Stopped: the standby's view cannot be read, and a failed reading
	// throttles a backfill.
	require.NoError(t, sb.Stop())
	_, err = onStandby.Throttle(ctx)
	require.Error(t, err)
}

// Where the lag signals do not apply they are refused: the standby's on a
// primary (ErrNotStandby), both on SQLite, and options of the primary's
// view on the standby's.
func TestReplicationLagRefused(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 10)
		sig := backfill.ReplicationLagOnStandby(db, time.Second)
		_, err := backfill.New(t.Context(), db, emailJob("standby"), backfill.WithSignals(sig))
		_, terr := sig.Throttle(t.Context())
		if dbtest.IsSQLite(t, db) {
			require.ErrorIs(t, err, errors.ErrUnsupported)
			require.ErrorIs(t, terr, errors.ErrUnsupported)
			return
		}
		require.ErrorIs(t, err, backfill.ErrNotStandby)
		require.ErrorIs(t, terr, backfill.ErrNotStandby)
		for _, opt := range []backfill.LagOption{backfill.LagStaleAfter(time.Second), backfill.LagReplicas(1), backfill.LagReplicaNames("x")} {
			_, err := backfill.New(t.Context(), db, emailJob("standby"), backfill.WithSignals(backfill.ReplicationLagOnStandby(db, time.Second, opt)))
			require.ErrorContains(t, err, "primary's view")
		}
		for _, opt := range []backfill.LagOption{backfill.LagRecheck(0), backfill.LagStaleAfter(0), backfill.LagReplicas(-1),
			backfill.LagReplicaNames(""), backfill.LagReplicaNames("a", "a"), nil} {
			_, err := backfill.New(t.Context(), db, emailJob("lag"), backfill.WithSignals(backfill.ReplicationLag(db, time.Second, opt)))
			require.Error(t, err)
		}
	})
}
