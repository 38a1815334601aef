package backfill_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
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
			out := backfill.NewOutside(t, u, admin)
			out.Gone(pool, app)
			backfill.StatsTxs(t, u, 1) // and the statistics show them
			before := out.Active()
			own := b.OwnActive()
			p, err := b.Run(t.Context())
			require.NoError(t, err)
			require.Equal(t, backfill.Done, p.Status)
			out.Gone(pool, app)
			backfill.StatsTxs(t, u, 1)
			after := out.Active()
			own = b.OwnActive() - own
			counted := after - before
			t.Logf("the Backfill counted %v of its own; the database's active time grew by %v", own, counted)
			assert.Positive(t, own, "its statements' time counted")
			assert.LessOrEqual(t, own, counted, "more taken off than the database counted, every session's")
		})
	}
}

// partitionedUsers is usersTable's users (ids 3, 6, … 3n) over 1,000
// range partitions.
func partitionedUsers(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text) PARTITION BY RANGE (id)`)
	width := (3*n)/1000 + 1
	db.MustExecContext(t.Context(), fmt.Sprintf(`DO $$ BEGIN
		FOR i IN 0..999 LOOP
			EXECUTE format('CREATE TABLE users_%%s PARTITION OF users FOR VALUES FROM (%%s) TO (%%s)', i, i * %d, (i + 1) * %d);
		END LOOP;
	END $$`, width, width))
	fill(t, db, n, `INSERT INTO users (id, email) SELECT i * 3, 'User' || i || '@Example.COM' FROM s`)
}

// A chunk's statement over a table of 1,000 partitions (or 1,000 tables
// that inherit it), on the extended protocol (pgx's), is planned at Bind,
// which the database does not count as active time; what the statement
// counts of its own must still be within what the database counted,
// every statement of the session's. The whole Run (above) hides the
// error: its claims' own time, which it does not count, makes up for it.
// Before, each statement counted its time at the client less a round
// trip: 1.9 times what the database counted; over a plain table, on
// PostgreSQL 18 in CI, 70.1ms where the database counted 67.6ms: every
// statement is now timed by the database.
func TestAChunkStatementCountsNoMoreThanTheDatabase(t *testing.T) {
	t.Parallel()
	into := backfill.Job{Name: "parts", Table: "users", Into: &backfill.Into{Table: "user_copies", Key: []string{"id"},
		Columns: []backfill.Assign{{Column: "id", Expr: "id"}, {Column: "email", Expr: "lower(email)"}}}}
	for _, c := range []struct {
		name  string
		job   backfill.Job
		table func(*testing.T, *sqlx.DB, int)
	}{
		{"set, partitions", emailJob("parts"), partitionedUsers},
		{"into, partitions", into, partitionedUsers},
		{"set, inheriting tables", emailJob("parts"), inheritedUsers},
		{"set, no children", emailJob("parts"), usersTable},
		{"into partitions", into, partitionedCopies},
		// The read of its rows is planned over the Check table's
		// partitions, in its NOT EXISTS: it is timed by the database too.
		// Before, it took off 2× what the database counted.
		{"func move, checked against partitions", backfill.Job{Name: "parts", Table: "users", Columns: []string{"email"}, Version: "v1",
			Check: &backfill.Into{Table: "user_copies", Key: []string{"id"},
				Columns: []backfill.Assign{{Column: "id", Expr: "id"}, {Column: "email", Expr: "lower(email)"}}},
			Func: func(_ context.Context, _ *sqlx.Tx, rows []map[string]any) (int64, error) {
				return int64(len(rows)), nil
			}},
			partitionedCopies},
		{"func, partitions", readingJob("email"), partitionedUsers},
		// The timing is read under another name, and the column is the
		// table's.
		{"func, partitions, a column named as the timing", readingJob("email", "schemashift_micros"),
			func(t *testing.T, db *sqlx.DB, n int) {
				partitionedUsers(t, db, n)
				db.MustExecContext(t.Context(), `ALTER TABLE users ADD COLUMN schemashift_micros bigint NOT NULL DEFAULT 7`)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			u := pgtest.URL(t)
			admin := open(t, u)
			c.table(t, admin, 20_000)
			admin.MustExecContext(t.Context(), `CREATE TABLE IF NOT EXISTS user_copies (id bigint PRIMARY KEY, email text NOT NULL)`)
			const app = "own-statement"
			pool := open(t, withApplication(t, u, app))
			pool.SetMaxOpenConns(1)
			b := mustNew(t, pool, c.job)
			own, counted := statementsOwn(t, u, admin, pool, app, b, 20_000)
			assert.Positive(t, own, "the statements' time counted")
			assert.LessOrEqual(t, own, counted, "more taken off than the database counted, every statement's")
		})
	}
}

// statementsOwn runs b's chunk statement over users' keys 0 to 60,000 in
// 200 spans, each in a transaction of its own on pool (of application
// app, one connection), as a chunk does, and returns what the statements
// counted of their own and the growth of the database's active time, every
// session's, meanwhile. They must have changed rows rows.
func statementsOwn(t *testing.T, u string, admin, pool *sqlx.DB, app string, b *backfill.Backfill, rows int64) (own, counted time.Duration) {
	t.Helper()
	out := backfill.NewOutside(t, u, admin)
	ctx := t.Context()
	out.Gone(pool, app)
	backfill.StatsTxs(t, u, 1)
	before := out.Active()
	var changed int64
	for i := range 200 {
		tx, err := pool.BeginTxx(ctx, nil)
		require.NoError(t, err)
		start := time.Now()
		_, err = tx.ExecContext(ctx, `SELECT 1`)
		require.NoError(t, err)
		n, took, err := b.FillSpan(ctx, tx, backfill.Key{fmt.Sprint(i * 300)}, backfill.Key{fmt.Sprint((i + 1) * 300)}, time.Since(start))
		require.NoError(t, err)
		require.NoError(t, tx.Commit())
		own += took
		changed += n
	}
	require.Equal(t, rows, changed, "rows changed")
	out.Gone(pool, app)
	backfill.StatsTxs(t, u, 1)
	counted = out.Active() - before
	t.Logf("the statements counted %v of their own; the database's active time grew by %v", own, counted)
	return own, counted
}

// partitionedCopies is usersTable's users and an empty user_copies (id,
// email) over 1,000 range partitions.
func partitionedCopies(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	usersTable(t, db, n)
	db.MustExecContext(t.Context(), `CREATE TABLE user_copies (id bigint PRIMARY KEY, email text NOT NULL) PARTITION BY RANGE (id)`)
	db.MustExecContext(t.Context(), fmt.Sprintf(`DO $$ BEGIN
		FOR i IN 0..999 LOOP
			EXECUTE format('CREATE TABLE user_copies_%%s PARTITION OF user_copies FOR VALUES FROM (%%s) TO (%%s)', i, i * %d, (i + 1) * %d);
		END LOOP;
	END $$`, (3*n)/1000+1, (3*n)/1000+1))
}

// A table with children and a rule (an audit's DO ALSO) refuses an
// UPDATE inside a WITH ("DO ALSO rules are not supported for
// data-modifying statements in WITH"): the chunks run their UPDATE as it
// is, and take none of its time off (an attack review found every chunk
// failing). A plain table with rules is filled the same way, and so is
// one whose rule came after New: the Run reads the rules again as it
// starts. A rule made while the Run goes on fails the chunk it comes
// under once: the chunk reads the rules again and runs unwrapped (before,
// every chunk after it failed, and the Run with them).
func TestARuledTableWithChildrenIsFilled(t *testing.T) {
	t.Parallel()
	const (
		before   = iota // the rule is made before New
		afterNew        // between New and the Run
		inRun           // as the Run's second chunk is claimed
	)
	for _, c := range []struct {
		name  string
		table func(*testing.T, *sqlx.DB, int)
		rule  int
	}{
		{"no children", usersTable, before},
		{"partitions", partitionedUsers, before},
		{"inheriting tables", func(t *testing.T, db *sqlx.DB, n int) {
			usersTable(t, db, n)
			db.MustExecContext(t.Context(), `CREATE TABLE users_child () INHERITS (users)`)
		}, before},
		{"partitions, the rule made after New", partitionedUsers, afterNew},
		{"no children, the rule made during the Run", usersTable, inRun},
		{"partitions, the rule made during the Run", partitionedUsers, inRun},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := open(t, pgtest.URL(t))
			c.table(t, db, 2000)
			db.MustExecContext(t.Context(), `CREATE TABLE users_audit (id bigint, at timestamptz NOT NULL DEFAULT now())`)
			rule := func() {
				db.MustExecContext(t.Context(), `CREATE RULE users_audit AS ON UPDATE TO users DO ALSO INSERT INTO users_audit (id) VALUES (new.id)`)
			}
			if c.rule == before {
				rule()
			}
			b := mustNew(t, db, emailJob("ruled"), backfill.WithChunkSize(500, 100, 500), backfill.WithAfterClaim(func(seq int64) {
				if c.rule == inRun && seq == 2 {
					rule()
				}
			}))
			if c.rule == afterNew {
				rule()
			}
			final, err := b.Run(t.Context())
			require.NoError(t, err)
			assert.Equal(t, backfill.Done, final.Status, "error: %s", final.Error)
			assert.Equal(t, int64(2000), final.RowsChanged)
			assert.Zero(t, divergent(t, db))
			var audited int
			require.NoError(t, db.GetContext(t.Context(), &audited, `SELECT count(*) FROM users_audit`))
			want := 2000
			if c.rule == inRun {
				want = 1500 // the first chunk's 500 rows were filled before it
			}
			assert.Equal(t, want, audited, "the rule ran for every row filled after it")
		})
	}
}

// A table that gains 1,000 inheriting tables, holding its rows, after New:
// the chunk statements after the Run (run again over the rows it filled:
// each still planned over every child) must count no more of their own
// than the database did (they are timed by the database, whatever the
// table is). When only a table with children was timed by
// the database, the Backfill kept the timing New chose: 2.4s taken off
// where the database counted 126ms (an attack review's figures). The
// whole Run's count hides it (its claims' uncounted time makes up for it).
func TestChildrenAddedAfterNewAreSeenByTheRun(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	admin := open(t, u)
	admin.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)`)
	const app = "late-children"
	pool := open(t, withApplication(t, u, app))
	pool.SetMaxOpenConns(1)
	b := mustNew(t, pool, emailJob("late"), backfill.WithChunkSize(5000, 100, 5000), backfill.WithDutyCycle(1))
	n := 20_000
	inheritingTables(t, admin, n)
	p, err := b.Run(t.Context())
	require.NoError(t, err)
	require.Equal(t, backfill.Done, p.Status)
	require.Equal(t, int64(n), p.RowsChanged)
	own, counted := statementsOwn(t, u, admin, pool, app, b, 0)
	assert.Positive(t, own, "the statements' time counted")
	assert.LessOrEqual(t, own, counted, "more taken off than the database counted, every statement's")
}

// readingJob is a Go-mode job on users whose Func reads cols and writes
// nothing: it counts the rows it was given, and checks that each holds
// only cols and the key, and that a column schemashift_micros (the name
// of the column a read timed by the database adds), where read, holds
// the table's 7.
func readingJob(cols ...string) backfill.Job {
	return backfill.Job{Name: "parts", Table: "users", Columns: cols, Version: "v1", Fills: []string{"email_lower"},
		Func: func(_ context.Context, _ *sqlx.Tx, rows []map[string]any) (int64, error) {
			for _, r := range rows {
				if len(r) != len(cols)+1 {
					return 0, fmt.Errorf("a row of %d columns, %v, where the job reads %v and the key", len(r), r, cols)
				}
				if v, ok := r["schemashift_micros"]; ok && v != int64(7) {
					return 0, fmt.Errorf("schemashift_micros reads %v, not the table's 7", v)
				}
			}
			return int64(len(rows)), nil
		}}
}

// inheritedUsers is usersTable's users (ids 3, 6, … 3n) in 1,000 tables
// that inherit an empty users.
func inheritedUsers(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)`)
	inheritingTables(t, db, n)
}

// inheritingTables creates 1,000 tables that inherit users, holding
// usersTable's users (ids 3, 6, … 3n).
func inheritingTables(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	width := (3*n)/1000 + 1
	db.MustExecContext(t.Context(), fmt.Sprintf(`DO $$ BEGIN
		FOR i IN 0..999 LOOP
			EXECUTE format('CREATE TABLE users_%%s (CHECK (id >= %%s AND id < %%s)) INHERITS (users)', i, i * %d, (i + 1) * %d);
			EXECUTE format('INSERT INTO users_%%s (id, email) SELECT i * 3, ''User'' || i || ''@Example.COM'' FROM generate_series(1, %d) i WHERE i * 3 >= %%s AND i * 3 < %%s', i, i * %d, (i + 1) * %d);
		END LOOP;
	END $$`, width, width, n, width, width))
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
	out := backfill.NewOutside(t, u, admin)
	out.Gone(fg, fgApp)
	out.Gone(pool, bfApp)
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
// a process cut off from its database, and back. It also tells when a
// number of connections were tried (see expect).
type partition struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	// seen counts the connections tried since expect; reached is closed
	// when they reach want.
	seen, want int
	reached    chan struct{}
}

// newPartition forwards to the host of u; its URL is u through it.
func newPartition(t *testing.T, u string) (p *partition, through string) {
	t.Helper()
	pu, err := url.Parse(u)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p = &partition{ln: ln, target: pu.Host, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.cutOff()
		p.wg.Wait()
	})
	pu.Host = ln.Addr().String()
	return p, pu.String()
}

// expect returns a channel closed once want connections more were tried.
func (p *partition) expect(want int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen, p.want, p.reached = 0, want, make(chan struct{})
	return p.reached
}

// tried notes a connection tried.
func (p *partition) tried() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reached == nil {
		return
	}
	if p.seen++; p.seen == p.want {
		close(p.reached)
		p.reached = nil
	}
}

func (p *partition) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		c.Close()
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
		p.tried()
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

func (p *partition) cutOff() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
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

// holding starts a Run of job name on pool that claims a chunk and holds
// it, renewing its lease every 50ms (its heartbeat, its board's writes
// and its pace's records go on too), until end, which waits for the Run.
func holding(t *testing.T, pool *sqlx.DB, name string) (b *backfill.Backfill, end func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	claimed := make(chan struct{})
	var once sync.Once
	b, err := backfill.New(t.Context(), pool, emailJob(name),
		append(quick(), backfill.WithLease(150*time.Millisecond), backfill.WithStatementTimeout(100*time.Millisecond),
			backfill.WithAfterClaim(func(int64) {
				once.Do(func() { close(claimed) })
				<-ctx.Done()
			}))...)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = b.Run(ctx) })
	end = func() { cancel(); wg.Wait() }
	t.Cleanup(end)
	<-claimed
	return b, end
}

// readerOf is another process's reading of the statistics at u, its
// first reading taken.
func readerOf(t *testing.T, u string) func(context.Context) (backfill.Foreground, error) {
	t.Helper()
	reader, err := backfill.New(t.Context(), open(t, u), emailJob("reader"))
	require.NoError(t, err)
	read := reader.StatsReader()
	_, err = read(t.Context())
	require.NoError(t, err)
	return read
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

	cut, end := holding(t, cutPool, "cut-off")
	read := readerOf(t, u)

	// Cut off until it tried 300 connections: its lease renewals, its
	// heartbeats, its board's writes and its pace's records, each failing.
	tried := p.expect(300)
	p.cutOff()
	select {
	case <-tried:
	case <-time.After(time.Minute):
		t.Fatal("the cut-off Backfill tried nothing")
	}
	p.heal()
	// Back: its Run ends, and its sessions report all that reached the
	// database.
	end()
	backfill.NewOutside(t, u, admin).Gone(cutPool, app)
	counted := cut.OwnTx()

	const fg = 300
	backfill.StatsTxs(t, u, fg) // a real foreground
	f, err := read(t.Context())
	require.NoError(t, err)
	t.Logf("the cut-off Backfill counted %d transactions in all; a foreground of %d ran; read %d", counted, fg, f.Ops)
	assert.GreaterOrEqual(t, f.Ops, int64(fg), "statements that never reached the database were taken off the foreground")
}

// The database refuses a Backfill's new connections with an error of its
// own, and its sessions were ended (a restart, a failover, an operator):
// its heartbeats, lease renewals and board writes each fail. Where the
// refusal comes before the session has a database (a role at its
// connection limit, 53300, as "too many clients" is; a role that may not
// log in, 28000), the database counts no transaction, and the Backfill
// must count none either. Where it comes from the database itself (one
// that accepts no connections, 55000), the database counts a rolled-back
// transaction and the Backfill none (an error that ends the session is
// never counted: the safe side). Before, any error with a SQLSTATE
// counted: 150 counted where the database counted none, and a foreground
// of 300 read as 202–204.
func TestRefusedConnectionsAreNotTakenOff(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name           string
		refuse, accept string // statements, %[1]s the role, %[2]s the database
	}{
		{"a database that accepts no connections, 55000 (the control)",
			`ALTER DATABASE %[2]s ALLOW_CONNECTIONS false`, `ALTER DATABASE %[2]s ALLOW_CONNECTIONS true`},
		{"a role at its connection limit, 53300", `ALTER ROLE %[1]s CONNECTION LIMIT 0`, `ALTER ROLE %[1]s CONNECTION LIMIT -1`},
		{"a role that may not log in, 28000", `ALTER ROLE %[1]s NOLOGIN`, `ALTER ROLE %[1]s LOGIN`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			u := pgtest.URL(t)
			admin := open(t, u)
			usersTable(t, admin, 10_000)
			require.NoError(t, backfill.EnsureSchema(t.Context(), admin))
			out := backfill.NewOutside(t, u, admin)
			var dbname string
			require.NoError(t, admin.GetContext(t.Context(), &dbname, `SELECT current_database()`))
			role := fmt.Sprintf("refused_%d", time.Now().UnixNano())
			admin.MustExecContext(t.Context(), `CREATE ROLE `+role+` LOGIN PASSWORD 'app'`)
			t.Cleanup(func() {
				admin.MustExecContext(context.Background(), `DROP OWNED BY `+role)
				admin.MustExecContext(context.Background(), `DROP ROLE `+role)
			})
			admin.MustExecContext(t.Context(), `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO `+role)
			ru, err := url.Parse(u)
			require.NoError(t, err)
			ru.User = url.UserPassword(role, "app")
			p, through := newPartition(t, ru.String())
			const app, fgApp = "refused", "refused-foreground"
			pool := open(t, withApplication(t, through, app))

			refused, end := holding(t, pool, "refused")
			read := readerOf(t, u)

			stmt := func(s string) { out.DB().MustExecContext(context.Background(), fmt.Sprintf(s, role, `"`+dbname+`"`)) }
			stmt(c.refuse)
			accepted := false
			accept := func() {
				if !accepted {
					accepted = true
					stmt(c.accept)
				}
			}
			defer accept()
			out.DB().MustExecContext(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app)
			out.Gone(nil, app)
			o0, x0 := refused.OwnTx(), out.Xacts()
			// 150 connections tried after the refusal, each refused.
			select {
			case <-p.expect(150):
			case <-time.After(time.Minute):
				t.Fatal("the refused Backfill tried nothing")
			}
			o1, x1 := refused.OwnTx(), out.Xacts()
			t.Logf("while refused: the Backfill counted %d transactions of its own; the database counted %d", o1-o0, x1-x0)
			assert.LessOrEqual(t, o1-o0, x1-x0+5, "counted more than the database counted (5 for statements in flight)")

			accept()
			end()
			out.Gone(pool, app)
			const fg = 300
			x2 := out.Xacts()
			fgPool := open(t, withApplication(t, u, fgApp))
			fgPool.SetMaxOpenConns(1)
			for range fg {
				_, err := fgPool.ExecContext(t.Context(), `SELECT 1`)
				require.NoError(t, err)
			}
			out.Gone(fgPool, fgApp)
			for out.Xacts() < x2+fg {
			}
			f, err := read(t.Context())
			require.NoError(t, err)
			t.Logf("a foreground of %d ran; the reader read %d", fg, f.Ops)
			assert.GreaterOrEqual(t, f.Ops, int64(fg), "refused connections were taken off the foreground")
		})
	}
}

// A Func job reads its rows into maps, which takes the client far longer
// than the database takes to send them (under -race most of all): only
// the statement's first answer is the database's time. Against the
// growth of the database's active time, every session's, the Backfill
// must count no more. Before, it timed the read to its last row: 1.65 s
// counted where the database counted 0.30 s.
func TestAFuncsWideReadIsNoMoreThanTheDatabaseCounted(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name        string
		cols, chunk int
	}{
		{"40 int columns, chunks of 20000", 40, 20_000},
		{"8 int columns, chunks of 1000", 8, 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			u := pgtest.URL(t)
			admin := open(t, u)
			cols := make([]string, c.cols)
			var defs, sel strings.Builder
			for i := range cols {
				cols[i] = fmt.Sprintf("c%d", i)
				fmt.Fprintf(&defs, ", c%d int NOT NULL", i)
				fmt.Fprintf(&sel, ", i + %d", i)
			}
			admin.MustExecContext(t.Context(), `CREATE TABLE wide (id bigint PRIMARY KEY`+defs.String()+`, done int)`)
			admin.MustExecContext(t.Context(), `INSERT INTO wide SELECT i`+sel.String()+`, NULL FROM generate_series(1, 100000) i`)
			admin.MustExecContext(t.Context(), `VACUUM ANALYZE wide`)
			out := backfill.NewOutside(t, u, admin)
			const app = "wide-read"
			pool := open(t, withApplication(t, u, app))
			job := backfill.Job{Name: "wide", Table: "wide", Columns: cols, Version: "v1", Fills: []string{"done"},
				Func: func(context.Context, *sqlx.Tx, []map[string]any) (int64, error) { return 0, nil }}
			b, err := backfill.New(t.Context(), pool, job,
				append(quick(), backfill.WithChunkSize(c.chunk, c.chunk, c.chunk), backfill.WithDutyCycle(1))...)
			require.NoError(t, err)
			out.Gone(pool, app)
			before, own := out.Active(), b.OwnActive()
			p, err := b.Run(t.Context())
			require.NoError(t, err)
			require.Equal(t, backfill.Done, p.Status)
			out.Gone(pool, app)
			own = b.OwnActive() - own
			counted := out.Active() - before
			t.Logf("the Backfill counted %v of its own; the database's active time grew by %v", own, counted)
			assert.Positive(t, own, "its reads' time counted")
			assert.LessOrEqual(t, own, counted, "more taken off than the database counted, every session's")
		})
	}
}
