package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// accounts makes a table the checks assert on: two rows, balance 10 and 20.
func accounts(t *testing.T, db *sqlx.DB) {
	t.Helper()
	_, err := db.ExecContext(t.Context(), `CREATE TABLE accounts (id integer PRIMARY KEY, balance integer NOT NULL)`)
	require.NoError(t, err)
	_, err = db.ExecContext(t.Context(), `INSERT INTO accounts VALUES (1, 10), (2, 20)`)
	require.NoError(t, err)
}

// balances is the accounts table as one string: what a check must not change.
func balances(t *testing.T, db *sqlx.DB) string {
	t.Helper()
	var rows []struct{ ID, Balance int }
	require.NoError(t, db.SelectContext(t.Context(), &rows, `SELECT id, balance FROM accounts ORDER BY id`))
	return fmt.Sprint(rows)
}

func checkPlan(name string, checks ...rollout.Check) rollout.Plan {
	return rollout.Plan{Migration: name, Checks: checks}
}

func refusedBy(t *testing.T, err error) *rollout.RefusedError {
	t.Helper()
	var refused *rollout.RefusedError
	require.True(t, errors.As(err, &refused), "want a refusal, got %v", err)
	return refused
}

// An SQL assertion holds the gate while it returns a row, naming the
// check and its first offending row, on every advance and readiness
// check; once no row is returned the advance goes through. Every run of
// a transition is recorded: the audit trail and the check's last run.
func TestSQLCheckGates(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		accounts(t, db)
		_, err := db.ExecContext(ctx, `UPDATE accounts SET balance = -5 WHERE id = 2`)
		require.NoError(t, err)
		name := "no negative\nbalances <b>" // hostile: a newline is refused, see TestCheckValidation
		name = strings.ReplaceAll(name, "\n", " ")
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{checkPlan("sqlcheck", rollout.Check{
			Name: name, Before: []ledger.Phase{ledger.Expanded, ledger.DualWrite},
			SQL: `SELECT id, balance FROM accounts WHERE balance < 0 ORDER BY id`})})
		require.NoError(t, err)
		r := rollout.Request{Migration: "sqlcheck", Actor: "alice"}

		_, err = c.Advance(ctx, r)
		refused := refusedBy(t, err)
		assert.Equal(t, "checks", refused.Gate)
		assert.Contains(t, refused.Reason, `check "no negative balances <b>" failed: first offending row: id=2, balance=-5`)
		rd, err := c.Check(ctx, "sqlcheck")
		require.NoError(t, err)
		assert.False(t, rd.Met)
		assert.Equal(t, "checks", rd.Gate)

		runs, err := c.CheckRuns(ctx, "sqlcheck")
		require.NoError(t, err)
		require.Len(t, runs, 1, "the readiness check records nothing; the advance does")
		assert.False(t, runs[0].Passed)
		assert.Equal(t, ledger.Expanded, runs[0].Phase)
		assert.Equal(t, "alice", runs[0].Actor)
		assert.Contains(t, runs[0].Detail, "balance=-5")

		_, err = db.ExecContext(ctx, `UPDATE accounts SET balance = 5 WHERE id = 2`)
		require.NoError(t, err)
		st, err := c.Advance(ctx, r)
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, st.Phase)
		runs, err = c.CheckRuns(ctx, "sqlcheck")
		require.NoError(t, err)
		require.Len(t, runs, 1)
		assert.True(t, runs[0].Passed, "the last run is the one shown")

		events, err := ledger.Audit(ctx, db, "sqlcheck", 100)
		require.NoError(t, err)
		var checks []string
		for _, e := range events {
			if e.Kind == "check" {
				checks = append(checks, fmt.Sprintf("%v %s %s", e.Accepted, e.Actor, e.ToPhase))
				assert.Contains(t, e.Reason, `check "no negative balances <b>"`)
			}
		}
		assert.Equal(t, []string{"false alice expanded", "true alice expanded"}, checks)

		// The stored plan keeps the check: a coordinator opened from the
		// ledger judges it alike.
		_, err = db.ExecContext(ctx, `UPDATE accounts SET balance = -1 WHERE id = 1`)
		require.NoError(t, err)
		opened, err := rollout.Open(ctx, db)
		require.NoError(t, err)
		_, err = opened.Advance(ctx, rollout.Request{Migration: "sqlcheck", Actor: "bob"})
		assert.Contains(t, refusedBy(t, err).Reason, "id=1, balance=-1")
	})
}

// A check's SQL that tries to write (an UPDATE, a DELETE, an INSERT, a
// DDL, a second statement, a COMMIT that would end the savepoint's
// transaction) changes nothing and fails the check; the coordinator goes
// on working afterwards.
func TestSQLCheckCannotWrite(t *testing.T) {
	t.Parallel()
	hostile := []string{
		`UPDATE accounts SET balance = 0`,
		`DELETE FROM accounts`,
		`INSERT INTO accounts VALUES (3, 30)`,
		`DROP TABLE accounts`,
		`CREATE TABLE smuggled (id integer)`,
		`SELECT 1 WHERE 1 = 0; DELETE FROM accounts`,
		`WITH gone AS (DELETE FROM accounts RETURNING id) SELECT id FROM gone WHERE id < 0`,
		`COMMIT`,
		`ROLLBACK`,
		`RELEASE SAVEPOINT schemashift_check`,
		`/* a comment */ COMMIT`,
		// PostgreSQL nests comments: this one begins with COMMIT there
		// (an attack review's; it ended the ledger's transaction).
		`/* /* */ SELECT */ COMMIT`,
		`/* /* */ SELECT */ ROLLBACK`,
		`/* /* */ SELECT */ RELEASE SAVEPOINT schemashift_check`,
		// PostgreSQL ends a line's comment at a CR; SQLite does not.
		"-- x\rCOMMIT /*\nSELECT 1 */",
		"-- x\rROLLBACK /*\nSELECT 1 */",
		// The comment's end is past its own "/*" (this one panicked).
		`/*/ SELECT */ COMMIT`,
		"-- a comment\nDELETE FROM accounts",
		`SELECT 1 WHERE 1 = 0; COMMIT`,
		`SELECT 1 WHERE 1 = 0; DROP TABLE accounts`,
		`PRAGMA query_only = OFF`,
		`SELECT 1 FROM (SELECT set_config('transaction_read_only', 'off', true) AS s) x WHERE s IS NULL`,
	}
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		accounts(t, db)
		before := balances(t, db)
		for i, q := range hostile {
			name := fmt.Sprintf("hostile%d", i)
			c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{checkPlan(name, rollout.Check{
				Name: "sneaky", Before: []ledger.Phase{ledger.Expanded}, SQL: q})})
			require.NoError(t, err)
			st, err := c.Advance(ctx, rollout.Request{Migration: name, Actor: "mallory"})
			require.Error(t, err, "%s", q)
			// Refused at the gate, or (a statement after the first that
			// ended the transaction) an error of the gate's: never made.
			assert.True(t, errors.Is(err, rollout.ErrGateRefused) || strings.Contains(err.Error(), "check gate: "), "%s: %v", q, err)
			if strings.HasPrefix(q, "/* /*") || strings.HasPrefix(q, "-- x\r") || strings.HasPrefix(q, "/*/") {
				assert.ErrorIs(t, err, rollout.ErrGateRefused, "%s: refused before it runs", q)
			}
			assert.NotContains(t, err.Error(), "audit", "%s: the refusal is recorded", q)
			assert.NotEqual(t, ledger.Expanded, st.Phase, "%s", q)
			assert.Equal(t, before, balances(t, db), "%s changed the data", q)
			var n int
			require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM schemashift_migrations WHERE migration = $1`, name), q)
			assert.Equal(t, 1, n)
			got, err := ledger.Get(ctx, db, name)
			require.NoError(t, err, q)
			assert.Equal(t, ledger.Planned, got.Phase, "%s", q)
			runs, err := c.CheckRuns(ctx, name)
			require.NoError(t, err, q)
			require.Len(t, runs, 1, q)
			assert.False(t, runs[0].Passed, "%s", q)
		}
		var smuggled bool
		require.NoError(t, db.GetContext(ctx, &smuggled, `SELECT count(*) > 0 FROM schemashift_check_runs WHERE check_name = 'sneaky'`))
		assert.True(t, smuggled)
		// The coordinator's connection is sound after them: a plan whose
		// check passes advances, and the ledger writes land.
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{checkPlan("after", rollout.Check{
			Name: "fine", Before: []ledger.Phase{ledger.Expanded}, SQL: `SELECT id FROM accounts WHERE balance < 0`})})
		require.NoError(t, err)
		st, err := c.Advance(ctx, rollout.Request{Migration: "after", Actor: "ci"})
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, st.Phase)
		assert.Equal(t, before, balances(t, db))
	})
}

// A statement that runs past its check's timeout is ended and fails.
func TestSQLCheckTimesOut(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		// Endless on every database, and on none a sleep: a recursive
		// count that never stops, asked for a row it never reaches.
		q := `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n WHERE i < 0 LIMIT 1`
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{checkPlan("slowsql", rollout.Check{
			Name: "endless", Before: []ledger.Phase{ledger.Expanded}, SQL: q, Timeout: 200 * time.Millisecond})})
		require.NoError(t, err)
		_, err = c.Advance(ctx, rollout.Request{Migration: "slowsql", Actor: "ci"})
		refused := refusedBy(t, err)
		assert.Contains(t, refused.Reason, `check "endless" failed: the assertion did not`)
		runs, err := c.CheckRuns(ctx, "slowsql")
		require.NoError(t, err)
		require.Len(t, runs, 1)
		assert.False(t, runs[0].Passed)
		assert.Less(t, runs[0].Duration, 10*time.Second)
	})
}

// An HTTP check passes on 2xx and fails on 500 (naming the status and
// the body's first line), on a server that does not answer within its
// timeout, and on a redirect to another host, which is not followed; a
// redirect on the same host is.
func TestHTTPCheck(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, "replica lag 40s\nsecond line <script>")
		fmt.Fprint(w, strings.Repeat("x", 1<<20))
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
	})
	mux.HandleFunc("/here", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	cases := []struct {
		path, want string
		pass       bool
	}{
		{"/ok", "", true},
		{"/here", "", true},
		{"/fail", `check "probe" failed: HTTP 500: replica lag 40s`, false},
		{"/hang", `check "probe" failed: no answer within 150ms`, false},
		{"/away", `check "probe" failed: HTTP 302 (redirect to ` + other.URL + `/steal not followed): <a href=`, false},
	}
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		for i, tc := range cases {
			name := fmt.Sprintf("http%d", i)
			c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{checkPlan(name, rollout.Check{
				Name: "probe", Before: []ledger.Phase{ledger.Expanded}, URL: srv.URL + tc.path, Timeout: 150 * time.Millisecond})})
			require.NoError(t, err)
			_, err = c.Advance(ctx, rollout.Request{Migration: name, Actor: "ci"})
			runs, rerr := c.CheckRuns(ctx, name)
			require.NoError(t, rerr)
			require.Len(t, runs, 1, tc.path)
			assert.Equal(t, tc.pass, runs[0].Passed, tc.path)
			if tc.pass {
				assert.NoError(t, err, tc.path)
				continue
			}
			refused := refusedBy(t, err)
			assert.True(t, strings.HasPrefix(refused.Reason, tc.want), "%s: %s", tc.path, refused.Reason)
			assert.NotContains(t, refused.Reason, "second line")
		}
	})
	assert.Zero(t, elsewhere.Load(), "a redirect to another host was followed")
}

// A Go check registered by name passes, fails with its error's first
// line, fails on a panic (the coordinator goes on), fails when it does
// not return within its timeout, and a plan naming a function the
// coordinator lacks is refused at the gate, saying so.
func TestFuncCheck(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		var seen atomic.Value
		opts := []rollout.CoordinatorOption{
			rollout.WithCheck("pass", func(ctx context.Context, cc rollout.CheckContext) error {
				seen.Store(cc)
				return nil
			}),
			rollout.WithCheck("fail", func(context.Context, rollout.CheckContext) error {
				return errors.New("error budget spent: 12%\nstack trace here")
			}),
			rollout.WithCheck("panic", func(context.Context, rollout.CheckContext) error { panic("boom") }),
			rollout.WithCheck("hang", func(ctx context.Context, _ rollout.CheckContext) error {
				<-ctx.Done()
				return ctx.Err()
			}),
		}
		cases := []struct{ fn, want string }{
			{"pass", ""},
			{"fail", `check "c" failed: error budget spent: 12%`},
			{"panic", `check "c" failed: panic: boom`},
			{"hang", `check "c" failed: no answer within 100ms`},
			{"missing", `check "c" failed: no check function "missing" is registered with this coordinator (rollout.WithCheck)`},
		}
		for _, tc := range cases {
			name := "func_" + tc.fn
			c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{checkPlan(name, rollout.Check{
				Name: "c", Before: []ledger.Phase{ledger.Expanded}, Func: tc.fn, Timeout: 100 * time.Millisecond})}, opts...)
			require.NoError(t, err)
			_, err = c.Advance(ctx, rollout.Request{Migration: name, Actor: "ci"})
			if tc.want == "" {
				require.NoError(t, err)
				cc := seen.Load().(rollout.CheckContext)
				assert.Equal(t, name, cc.Migration)
				assert.Equal(t, ledger.Expanded, cc.To)
				continue
			}
			assert.Equal(t, tc.want, refusedBy(t, err).Reason, tc.fn)
			runs, err := c.CheckRuns(ctx, name)
			require.NoError(t, err)
			require.Len(t, runs, 1)
			assert.False(t, runs[0].Passed)
		}
	})
}

// Plans whose checks could not be judged as meant are refused, and a
// check is part of the definition: changing one changes the plan.
func TestCheckValidation(t *testing.T) {
	t.Parallel()
	ok := rollout.Check{Name: "c", Before: []ledger.Phase{ledger.Expanded}, SQL: "SELECT 1 WHERE 1 = 0"}
	bad := map[string]rollout.Check{
		"no kind":        {Name: "c", Before: ok.Before},
		"two kinds":      {Name: "c", Before: ok.Before, SQL: ok.SQL, URL: "http://x"},
		"no name":        {Before: ok.Before, SQL: ok.SQL},
		"newline name":   {Name: "a\nb", Before: ok.Before, SQL: ok.SQL},
		"no before":      {Name: "c", SQL: ok.SQL},
		"before planned": {Name: "c", Before: []ledger.Phase{ledger.Planned}, SQL: ok.SQL},
		"bad phase":      {Name: "c", Before: []ledger.Phase{ledger.Phase(99)}, SQL: ok.SQL},
		"ftp":            {Name: "c", Before: ok.Before, URL: "ftp://host/x"},
		"no host":        {Name: "c", Before: ok.Before, URL: "http:///x"},
		"credentials":    {Name: "c", Before: ok.Before, URL: "https://user:secret@host/x"},
		"negative":       {Name: "c", Before: ok.Before, SQL: ok.SQL, Timeout: -time.Second},
		"too long":       {Name: "c", Before: ok.Before, SQL: ok.SQL, Timeout: time.Hour},
		"nul":            {Name: "c", Before: ok.Before, SQL: "SELECT 1\x00"},
	}
	for name, k := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := checkPlan("m", k)
			assert.ErrorIs(t, p.Normalize(), rollout.ErrInvalidPlan)
		})
	}
	dup := checkPlan("m", ok, ok)
	assert.ErrorIs(t, dup.Normalize(), rollout.ErrInvalidPlan)
	p := checkPlan("m", ok)
	require.NoError(t, p.Normalize())

	h1, err := checkPlan("m", ok).DefinitionHash()
	require.NoError(t, err)
	none, err := checkPlan("m").DefinitionHash()
	require.NoError(t, err)
	other := ok
	other.SQL = "SELECT 2 WHERE 1 = 0"
	h2, err := checkPlan("m", other).DefinitionHash()
	require.NoError(t, err)
	later := ok
	later.Before = []ledger.Phase{ledger.DualWrite}
	h3, err := checkPlan("m", later).DefinitionHash()
	require.NoError(t, err)
	assert.NotEqual(t, h1, none)
	assert.NotEqual(t, h1, h2)
	assert.NotEqual(t, h1, h3)

	_, err = rollout.NewCoordinator(t.Context(), nil, nil, rollout.WithCheck("", nil))
	assert.Error(t, err)
}

// WithCheck refuses an empty name, a nil function and a name twice.
func TestWithCheckRefuses(t *testing.T) {
	t.Parallel()
	fn := func(context.Context, rollout.CheckContext) error { return nil }
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		for _, opts := range [][]rollout.CoordinatorOption{
			{rollout.WithCheck(" ", fn)},
			{rollout.WithCheck("x", nil)},
			{rollout.WithCheck("x", fn), rollout.WithCheck("x", fn)},
		} {
			_, err := rollout.NewCoordinator(t.Context(), db, nil, opts...)
			assert.ErrorIs(t, err, rollout.ErrInvalidArgument)
		}
	})
}

// Two coordinators advancing the same migration at once each run and
// record their checks: every run lands (none refused for another's), the
// audit trail has one check event per run, and no transition is told of
// an audit error.
func TestChecksOfRacingCoordinators(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		accounts(t, db)
		plan := checkPlan("racing", rollout.Check{Name: "ok", Before: []ledger.Phase{ledger.Expanded, ledger.DualWrite},
			SQL: `SELECT id FROM accounts WHERE balance < 0`})
		c1, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
		require.NoError(t, err)
		c2, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
		require.NoError(t, err)
		const rounds = 8
		for range rounds {
			errs := make(chan error, 2)
			for i, c := range []*rollout.Coordinator{c1, c2} {
				go func() {
					_, err := c.Advance(ctx, rollout.Request{Migration: "racing", Actor: fmt.Sprintf("c%d", i+1)})
					errs <- err
				}()
			}
			for range 2 {
				require.NoError(t, <-errs)
			}
			_, err := c1.Rollback(ctx, rollout.Request{Migration: "racing", Actor: "ci", ToOff: true})
			require.NoError(t, err)
			_, err = c1.Rollback(ctx, rollout.Request{Migration: "racing", Actor: "ci"})
			require.NoError(t, err)
		}
		var n int
		require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM schemashift_check_runs WHERE migration = 'racing'`))
		assert.Equal(t, 2*rounds, n)
		require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM schemashift_events WHERE migration = 'racing' AND kind = 'check' AND accepted`))
		assert.Equal(t, 2*rounds, n)
		runs, err := c2.CheckRuns(ctx, "racing")
		require.NoError(t, err)
		require.Len(t, runs, 1)
		assert.True(t, runs[0].Passed)
	})
}

// BenchmarkSQLCheck times a readiness check of a gate with one SQL
// assertion against the same gate without it, in the same run: the cost
// of the savepoint, the read-only mode and the assertion, as a ratio.
func BenchmarkSQLCheck(b *testing.B) {
	for _, db := range []struct {
		name string
		open func(testing.TB) *sqlx.DB
	}{{"postgres", func(tb testing.TB) *sqlx.DB { return pgtest.DB(tb) }}, {"sqlite", dbtest.SQLite}} {
		b.Run(db.name, func(b *testing.B) {
			pool := db.open(b)
			ctx := b.Context()
			pool.MustExecContext(ctx, `CREATE TABLE accounts (id integer PRIMARY KEY, balance integer NOT NULL)`)
			c, err := rollout.NewCoordinator(ctx, pool, []rollout.Plan{checkPlan("plain"), checkPlan("checked", rollout.Check{
				Name: "ok", Before: []ledger.Phase{ledger.Expanded}, SQL: `SELECT id FROM accounts WHERE balance < 0`})})
			require.NoError(b, err)
			judge := func(m string) time.Duration {
				start := time.Now()
				if _, err := c.Check(ctx, m); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			var plain, checked time.Duration
			for b.Loop() {
				plain += judge("plain")
				checked += judge("checked")
			}
			b.ReportMetric(float64(checked)/float64(plain), "checked/plain")
			b.ReportMetric(float64(checked-plain)/float64(b.N)/1e3, "µs-added/op")
		})
	}
}
