package backfill_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// What a Backfill takes off the database's statistics as its own must be
// no more than what the database counted of it: any more is taken off the
// foreground, and hides as much of it. These tests attack both counts:
// the time its chunks spent (waits for a connection, backoffs, a Func's
// own work, round trips are not the database's active time) and the
// transactions it tried (a statement that never reached the database is
// not in its statistics).

// dbActive is the database's active time (every session's) and
// transactions, as its statistics show them now.
func dbActive(t *testing.T, admin *sqlx.DB) (xacts int64, active time.Duration) {
	t.Helper()
	var row struct {
		Xacts  int64   `db:"xacts"`
		Active float64 `db:"active_ms"`
	}
	require.NoError(t, admin.GetContext(t.Context(), &row,
		`SELECT xact_commit + xact_rollback AS xacts, active_time AS active_ms FROM pg_stat_database WHERE datname = current_database()`))
	return row.Xacts, time.Duration(row.Active * float64(time.Millisecond))
}

// thinkingJob is a Go-mode job whose Func spends think of the client's
// own time in each chunk's transaction (a call to a key service, a hash
// computed) before its one UPDATE: the session is idle in its
// transaction meanwhile, which the database does not count as active.
func thinkingJob(name string, think time.Duration) backfill.Job {
	return backfill.Job{Name: name, Table: "users", Columns: []string{"email"}, Version: "v1", Fills: []string{"email_lower"},
		Func: func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
			select { // the client's own work
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(think):
			}
			ids := make([]int64, 0, len(rows))
			for _, r := range rows {
				ids = append(ids, r["id"].(int64))
			}
			res, err := tx.ExecContext(ctx, `UPDATE users SET email_lower = lower(email) WHERE id = ANY($1)`, ids)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		}}
}

// A Backfill runs alone on its database; over its Run, what it counted as
// its statements' time must be within the growth of the database's
// active time, every session's. Before, it counted each chunk's wall
// time: 1.6–4.8× what the database counted (a Func's own work, a pool of
// one connection's waits, the round trips).
func TestOwnActiveIsNoMoreThanTheDatabaseCounted(t *testing.T) {
	t.Parallel()
	sqlJob := func(name string) backfill.Job { return emailJob(name) }
	for _, c := range []struct {
		name  string
		job   func(string) backfill.Job
		opts  []backfill.Option
		conns int
	}{
		{"a Func that works 5ms a chunk", func(n string) backfill.Job { return thinkingJob(n, 5*time.Millisecond) },
			[]backfill.Option{backfill.WithWorkers(2)}, 0},
		{"statements, an ordinary pool", sqlJob, nil, 0},
		{"statements, a pool of one connection, two workers", sqlJob, []backfill.Option{backfill.WithWorkers(2)}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			u := pgtest.URL(t)
			admin := open(t, u)
			usersTable(t, admin, 20_000)
			const app = "own-active"
			pool := open(t, withApplication(t, u, app))
			if c.conns > 0 {
				pool.SetMaxOpenConns(c.conns)
			}
			opts := append(quick(), backfill.WithChunkSize(100, 100, 100), backfill.WithDutyCycle(1))
			b, err := backfill.New(t.Context(), pool, c.job("own-active"), append(opts, c.opts...)...)
			require.NoError(t, err)
			statsFlushed(t, pool, admin, app)
			backfill.StatsTxs(t, u, 1) // and the statistics show them
			_, before := dbActive(t, admin)
			own := b.OwnActive()
			p, err := b.Run(t.Context())
			require.NoError(t, err)
			require.Equal(t, backfill.Done, p.Status)
			statsFlushed(t, pool, admin, app)
			backfill.StatsTxs(t, u, 1)
			_, after := dbActive(t, admin)
			own = b.OwnActive() - own
			counted := after - before
			t.Logf("the Backfill counted %v of its own; the database's active time grew by %v", own, counted)
			assert.Positive(t, own, "its statements' time counted")
			assert.LessOrEqual(t, own, counted, "more taken off than the database counted, every session's")
		})
	}
}

// A foreground whose transactions each spend 3ms in the database runs
// beside a Go-mode backfill whose chunks spend client time in their
// transactions: the reading must still see the foreground's latency.
// Before, the chunks' wall time taken off the active time left none, and
// the latency read as unknown (0): a budget on it went unjudged.
func TestAFuncsOwnWorkDoesNotHideTheForegroundsLatency(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	admin := open(t, u)
	usersTable(t, admin, 200_000)
	const bfApp, fgApp = "own-work-backfill", "own-work-foreground"
	pool := open(t, withApplication(t, u, bfApp))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	b, err := backfill.New(ctx, pool, thinkingJob("own-work", 5*time.Millisecond),
		append(quick(), backfill.WithWorkers(2), backfill.WithChunkSize(100, 100, 100), backfill.WithDutyCycle(1),
			backfill.WithAfterClaim(func(int64) { once.Do(func() { close(started) }) }))...)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = b.Run(ctx) })
	<-started
	read := b.StatsReader()
	_, err = read(t.Context())
	require.NoError(t, err)

	fg := open(t, withApplication(t, u, fgApp))
	fg.SetMaxOpenConns(1)
	const n = 400
	for range n {
		_, err := fg.ExecContext(t.Context(), `SELECT pg_sleep(0.003)`)
		require.NoError(t, err)
	}
	cancel()
	wg.Wait()
	statsFlushed(t, fg, admin, fgApp)
	statsFlushed(t, pool, admin, bfApp)
	backfill.StatsTxs(t, u, 1)
	f, err := read(t.Context())
	require.NoError(t, err)
	t.Logf("a foreground of %d transactions of 3ms or more: read %d operations, latency %v", n, f.Ops, f.Latency)
	assert.GreaterOrEqual(t, f.Ops, int64(n-20), "the foreground's transactions were taken off")
	// Each of its transactions spent 3ms or more; the test's own polls
	// (next to nothing each) are a foreground's too, fewer than the
	// foreground's: the mean is above 1.5ms.
	assert.GreaterOrEqual(t, f.Latency, 1500*time.Microsecond, "the foreground's latency was taken off as the backfill's")
}

// partition forwards TCP connections to a database until cut, which
// closes every connection it forwards and refuses new ones until healed:
// a process cut off from its database, and back.
type partition struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	// refused counts the connections tried while cut; tried is closed
	// when they reach want.
	refused, want int
	tried         chan struct{}
}

// newPartition forwards to the host of u; its URL is u through it.
func newPartition(t *testing.T, u string) (p *partition, through string) {
	t.Helper()
	pu, err := url.Parse(u)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p = &partition{ln: ln, target: pu.Host, conns: map[net.Conn]struct{}{}, tried: make(chan struct{})}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.cutOff(0)
		p.wg.Wait()
	})
	pu.Host = ln.Addr().String()
	return p, pu.String()
}

func (p *partition) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		c.Close()
		if p.refused++; p.refused == p.want {
			close(p.tried)
		}
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *partition) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(s) {
			c.Close()
			continue
		}
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		p.wg.Go(func() { pipe(s, c) })
		p.wg.Go(func() { pipe(c, s) })
	}
}

// cutOff cuts the connections, and closes p.tried once want were tried
// (0: never).
func (p *partition) cutOff(want int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut, p.want = true, want
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *partition) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// A process is cut off from the database while its Run holds a chunk: it
// keeps trying its board writes, its readings, its lease renewals, its
// heartbeats, and none reaches the database. Back, its next write must
// not carry them: another backfill would take them all off one window of
// the statistics, in which a real foreground ran. Before, it counted each
// as it tried it (165 in all, against 13 now), and a foreground of 300
// transactions read as 216.
func TestStatementsThatNeverArrivedAreNotTakenOff(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	admin := open(t, u)
	usersTable(t, admin, 10_000)
	p, through := newPartition(t, u)
	const app = "cut-off"
	cutPool := open(t, withApplication(t, through, app))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	claimed := make(chan struct{})
	var once sync.Once
	cut, err := backfill.New(t.Context(), cutPool, emailJob("cut-off"),
		append(quick(), backfill.WithLease(600*time.Millisecond), backfill.WithStatementTimeout(400*time.Millisecond),
			backfill.WithAfterClaim(func(int64) {
				once.Do(func() { close(claimed) })
				<-ctx.Done() // holds its chunk, renewing its lease, to the end
			}))...)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = cut.Run(ctx) })
	<-claimed

	reader, err := backfill.New(t.Context(), open(t, u), emailJob("reader"))
	require.NoError(t, err)
	read := reader.StatsReader()
	_, err = read(t.Context())
	require.NoError(t, err)

	// Cut off until it tried 300 connections: its lease renewals, its
	// heartbeats, its board's writes and its pace's records, each failing.
	p.cutOff(300)
	select {
	case <-p.tried:
	case <-time.After(time.Minute):
		t.Fatal("the cut-off Backfill tried nothing")
	}
	p.heal()
	// Back: its Run ends, and its sessions report all that reached the
	// database.
	cancel()
	wg.Wait()
	statsFlushed(t, cutPool, admin, app)
	tried := cut.OwnTx()

	const fg = 300
	backfill.StatsTxs(t, u, fg) // a real foreground
	f, err := read(t.Context())
	require.NoError(t, err)
	t.Logf("the cut-off Backfill counted %d transactions in all; a foreground of %d ran; read %d", tried, fg, f.Ops)
	assert.GreaterOrEqual(t, f.Ops, int64(fg), "statements that never reached the database were taken off the foreground")
}
