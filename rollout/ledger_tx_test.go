package rollout_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dialect/postgres"
	"github.com/schemashift/schemashift/internal/dialect/sqlite"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// statementLog records every statement a pgx connection sends, with the
// context it was sent under. It is safe for concurrent use.
type statementLog struct {
	mu    sync.Mutex
	sql   []string
	onRun func(ctx context.Context, sql string) // called as each starts, when set
}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	l.mu.Lock()
	l.sql = append(l.sql, d.SQL)
	f := l.onRun
	l.mu.Unlock()
	if f != nil {
		f(ctx, d.SQL)
	}
	return ctx
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the statements logged since the last take.
func (l *statementLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.sql
	l.sql = nil
	return out
}

// tracedPool opens a pool on url whose statements go to log, each
// connection dialled by dial (net.Dialer's when nil); closed when the
// test ends.
func tracedPool(t *testing.T, url string, log *statementLog, dial pgconnDial) *sqlx.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	cfg.Tracer = log
	if dial != nil {
		cfg.DialFunc = dial
	}
	db := sqlx.NewDb(stdlib.OpenDB(*cfg), "pgx")
	t.Cleanup(func() { db.Close() })
	return db
}

type pgconnDial = func(ctx context.Context, network, addr string) (net.Conn, error)

// probes counts the statements of log that are a dialect's probe of a
// transaction's database.
func probes(sql []string) int {
	n := 0
	for _, s := range sql {
		if s == postgres.Driver().Probe || s == sqlite.Driver().Probe {
			n++
		}
	}
	return n
}

// The coordinator knows its dialect: the transactions it hands to the
// ledger, the fleet and the backfill's state are bound to it, and none
// of them is probed for its database (a statement per call, on every
// transition and readiness check).
func TestTransitionSendsNoProbe(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	log := &statementLog{}
	db := tracedPool(t, pgtest.URL(t), log, nil)
	clock := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.UsersPlan(nil)}, rollout.WithClock(clock.Now))
	require.NoError(t, err)
	rollouttest.UsersDB(t, db)
	log.take()

	// Gated advances whose gates read the catalog, the fleet and the
	// backfill's state in the ledger transaction; forced ones that set
	// the row with its event; a rollback; a readiness check.
	adv := func(force bool) error {
		_, err := c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Force: force, Reason: "test"})
		return err
	}
	require.NoError(t, adv(false))                         // planned → expanded: the expand's DDL
	require.NoError(t, adv(false))                         // → dualwrite: the schema gate reads the columns
	require.ErrorIs(t, adv(false), rollout.ErrGateRefused) // → backfill: the fleet gate reads the fleet, none live
	require.NoError(t, adv(true))                          // → backfill, forced
	require.ErrorIs(t, adv(false), rollout.ErrGateRefused) // → verify: the backfill's state, not started
	_, err = c.Rollback(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Reason: "test"})
	require.NoError(t, err)
	_, err = c.Check(ctx, "users_split_name")
	require.NoError(t, err)

	sent := log.take()
	assert.Zero(t, probes(sent), "probes sent: %q", slices.DeleteFunc(slices.Clone(sent), func(s string) bool { return probes([]string{s}) == 0 }))
	require.Contains(t, sent, postgres.Dialect{}.LockMigration(), "the log holds the transactions' statements")
	require.Contains(t, sent, postgres.Dialect{}.SetMigration())
	require.Contains(t, sent, postgres.Dialect{}.ReadInstances())

	// The log sees a probe where one is sent: the ledger given a bare
	// transaction of the same pool probes it.
	tx, err := db.BeginTxx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback() //nolint:errcheck // read only
	_, err = ledger.Get(ctx, tx, "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, 1, probes(log.take()), "a bare transaction is probed once")
}

// commitCut is a connection that loses the reply to a COMMIT to the
// caller's context, as a network does when a deadline cuts the read off:
// the COMMIT reaches the server and lands, and the caller's context is
// cancelled before its reply is read. If the driver is watching that
// context (the transaction was begun with it), the watch sets the
// connection's deadline and the reply is lost; if it is not, the reply
// is read. It acts once, when armed.
type commitCut struct {
	armed   atomic.Bool
	cancel  context.CancelFunc
	watched atomic.Bool // the COMMIT about to be written is sent under a context that can end
	pending atomic.Bool // the next write is that COMMIT
	done    atomic.Bool // it has acted
}

// onRun is the statement log's hook: it notes the COMMIT, and whether
// its context can end.
func (c *commitCut) onRun(ctx context.Context, sql string) {
	if c.armed.Load() && !c.done.Load() && sql == "commit" {
		c.watched.Store(ctx.Done() != nil)
		c.pending.Store(true)
	}
}

func (c *commitCut) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &cutConn{Conn: nc, cut: c, deadline: make(chan struct{})}, nil
}

type cutConn struct {
	net.Conn
	cut *commitCut
	// mu is held by the COMMIT's Write while it reads the reply ahead and
	// waits: the driver's background reader, reading as it writes, waits
	// for it rather than take the reply's bytes off the connection.
	mu       sync.Mutex
	reply    bytes.Buffer // the COMMIT's reply, read ahead
	lost     bool         // the reply was cut off by the deadline
	once     sync.Once
	deadline chan struct{} // closed when a deadline in the past is set
}

func (c *cutConn) SetDeadline(t time.Time) error {
	if !t.IsZero() && !t.After(time.Now()) {
		c.once.Do(func() { close(c.deadline) })
	}
	return c.Conn.SetDeadline(t)
}

func (c *cutConn) Write(b []byte) (int, error) {
	if !c.cut.pending.CompareAndSwap(true, false) {
		return c.Conn.Write(b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.Conn.Write(b)
	if err != nil {
		return n, err
	}
	// The server commits and replies; the reply is read here, so that
	// the COMMIT has landed before the caller's context ends.
	if err := readUntilReady(c.Conn, &c.reply); err != nil {
		return n, err
	}
	c.cut.done.Store(true)
	c.cut.cancel()
	if c.cut.watched.Load() {
		<-c.deadline // the driver's watch of the context cuts the read off
		c.lost = true
	}
	return n, nil
}

func (c *cutConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.lost {
		c.mu.Unlock()
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	if c.reply.Len() > 0 {
		defer c.mu.Unlock()
		return c.reply.Read(b)
	}
	c.mu.Unlock()
	return c.Conn.Read(b)
}

// readUntilReady reads the server's messages into buf up to and with its
// ReadyForQuery ('Z'): the end of a statement's reply.
func readUntilReady(r io.Reader, buf *bytes.Buffer) error {
	for {
		var head [5]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return err
		}
		body := make([]byte, binary.BigEndian.Uint32(head[1:])-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		buf.Write(head[:])
		buf.Write(body)
		if head[0] == 'Z' {
			return nil
		}
	}
}

// A transition whose caller's context ends at its COMMIT either fails
// and is not made, or is made and succeeds: never an error for a
// transition the ledger shows made (a caller that retries would move the
// migration twice, a guardrail would lose its trip).
func TestTransitionCommitOutlivesTheCallersContext(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	cut := &commitCut{}
	log := &statementLog{onRun: cut.onRun}
	db := tracedPool(t, url, log, cut.dial)
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.LedgerPlan()})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cut.cancel = cancel
	cut.armed.Store(true)
	st, err := c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "t", Reason: "test"})
	require.True(t, cut.done.Load(), "the COMMIT was cut")
	require.Error(t, ctx.Err(), "the caller's context ended at the COMMIT")

	now, rerr := ledger.Get(t.Context(), rollouttest.Open(t, url), "users_split_name")
	require.NoError(t, rerr)
	if err != nil {
		assert.Equal(t, ledger.Planned, now.Phase, "the advance failed (%v), yet the ledger shows it made", err)
	} else {
		assert.Equal(t, ledger.Expanded, now.Phase)
		assert.Equal(t, now.Version, st.Version)
	}
	assert.NoError(t, err, "the COMMIT is not the caller's context's: it lands, and the advance says so")
}
