package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

func TestMain(m *testing.M) {
	if os.Getenv("SCHEMASHIFT_CLI_MAIN") != "" {
		main() // the real binary, for exit codes
		return
	}
	pgtest.Main(m)
}

type result struct {
	code           int
	stdout, stderr string
}

func cliRun(t *testing.T, url string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	env := func(k string) string {
		switch k {
		case "DATABASE_URL":
			return url
		case "USER":
			return "operator"
		}
		return ""
	}
	code := run(t.Context(), args, &out, &errOut, env)
	return result{code, out.String(), errOut.String()}
}

// setup is a database with the users table and the plan registered, as a
// service's startup would leave it.
func setup(t *testing.T) (string, *sqlx.DB) {
	t.Helper()
	url := pgtest.URL(t)
	db, err := sqlx.Open("pgx", url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	register(t, db, "split_part(full_name, ' ', 1)", "substr(full_name, length(split_part(full_name, ' ', 1)) + 2)")
	return url, db
}

// setupSQLite is setup in a SQLite file, named as the CLI takes it.
func setupSQLite(t *testing.T) (string, *sqlx.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	register(t, db, "substr(full_name, 1, instr(full_name, ' ') - 1)", "substr(full_name, instr(full_name, ' ') + 1)")
	return "sqlite:" + path, db
}

func register(t *testing.T, db *sqlx.DB, given, family string) {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, full_name text NOT NULL)`)
	db.MustExecContext(t.Context(), `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000)
		INSERT INTO users SELECT i, 'Ada Lovelace' || i FROM s`)
	_, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{{
		Migration: "users_split_name",
		Expand: []rollout.Step{{SQL: `ALTER TABLE users ADD COLUMN given_name text; ALTER TABLE users ADD COLUMN family_name text`,
			Down: `ALTER TABLE users DROP COLUMN given_name; ALTER TABLE users DROP COLUMN family_name`}},
		Columns: []rollout.Column{{Table: "users", Column: "given_name"}, {Table: "users", Column: "family_name"}},
		Backfills: []backfill.Job{{Name: "users_split_name", Table: "users", Set: []backfill.Assign{
			{Column: "given_name", Expr: given},
			{Column: "family_name", Expr: family}},
			Down: []backfill.Assign{{Column: "full_name", Expr: "given_name || ' ' || family_name"}}}},
	}})
	require.NoError(t, err)
}

func TestCLIEndToEnd(t *testing.T) {
	t.Parallel()
	for name, setup := range map[string]func(*testing.T) (string, *sqlx.DB){"postgres": setup, "sqlite": setupSQLite} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, db := setup(t)
			testCLIEndToEnd(t, url, db)
		})
	}
}

func testCLIEndToEnd(t *testing.T, url string, db *sqlx.DB) {

	r := cliRun(t, url, "status")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "users_split_name")
	assert.Contains(t, r.stdout, "planned")

	r = cliRun(t, url, "advance", "users_split_name", "--reason", "start")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "users_split_name: expanded (stage off, version 2)")
	r = cliRun(t, url, "advance", "users_split_name")
	require.Equal(t, 0, r.code, r.stderr)

	// A refused gate: exit 3, with the unmet condition.
	r = cliRun(t, url, "advance", "users_split_name")
	assert.Equal(t, 3, r.code)
	assert.Contains(t, r.stderr, "refused")
	assert.Contains(t, r.stderr, "no live instance")

	r = cliRun(t, url, "force", "users_split_name")
	assert.Equal(t, 2, r.code, "force needs a reason")
	r = cliRun(t, url, "force", "users_split_name", "--reason", "no fleet in staging")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "backfill")

	r = cliRun(t, url, "backfill", "run", "users_split_name", "--workers", "2")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "users_split_name: 100% 3000/3000 rows, ", "the progress, as lines: stderr is no terminal")
	assert.Contains(t, r.stderr, ", ETA 0s, done\n")
	assert.NotContains(t, r.stderr, "\r", "no redraw where stderr is no terminal")
	assert.NotContains(t, r.stderr, "\x1b")
	assert.NotContains(t, r.stderr, " 0 rows/s", "a job done before its second report shows its own average")
	r = cliRun(t, url, "backfill", "status", "users_split_name", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var p backfill.Progress
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &p))
	assert.Equal(t, backfill.Done, p.Status)
	assert.Equal(t, int64(3000), p.RowsDone)

	r = cliRun(t, url, "verify", "users_split_name")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "3000 rows compared, 0 divergent")
	db.MustExecContext(t.Context(), `UPDATE users SET full_name = 'Changed Behind' WHERE id = 42`)
	r = cliRun(t, url, "verify", "users_split_name")
	assert.Equal(t, 3, r.code)
	assert.Contains(t, r.stdout, "key 42 (drifted)")
	assert.Contains(t, r.stdout, "1 divergent (0 unfilled, 1 drifted")
	r = cliRun(t, url, "verify", "users_split_name", "--repair", "--repair-from", "sideways")
	assert.Equal(t, 2, r.code, "an unknown side is bad input")
	r = cliRun(t, url, "verify", "users_split_name", "--repair")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "1 repaired, 0 left")
	assert.Contains(t, r.stdout, "verify again")
	r = cliRun(t, url, "verify", "users_split_name")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)

	r = cliRun(t, url, "advance", "users_split_name", "--version", "1")
	assert.Equal(t, 3, r.code, "a stale version is refused")
	assert.Contains(t, r.stderr, "changed since it was read")

	r = cliRun(t, url, "status", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var ms []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &ms))
	require.Len(t, ms, 1)
	assert.Equal(t, "backfill", ms[0]["phase"])

	r = cliRun(t, url, "rollback", "users_split_name", "--to-off", "--reason", "drill")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "expanded (stage off")

	r = cliRun(t, url, "runbook", "users_split_name")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "# Runbook: users_split_name")
	assert.Contains(t, r.stdout, "schemashift advance users_split_name --confirm")

	r = cliRun(t, url, "retro", "users_split_name")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "# Retrospective: users_split_name")
	assert.Contains(t, r.stdout, "`users_split_name` (done): 3000 rows walked")
	r = cliRun(t, url, "retro", "users_split_name", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var retro report.Retrospective
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &retro))
	assert.Equal(t, 2, retro.Refused, "the refused gate and the stale version")
	assert.Equal(t, 1, retro.Forced)

	r = cliRun(t, url, "audit", "users_split_name")
	require.Equal(t, 0, r.code, r.stderr)
	for _, want := range []string{"force-advance", "operator", "forced: no fleet in staging", "rollback", "drill"} {
		assert.Contains(t, r.stdout, want)
	}
}

func TestCLIBadInput(t *testing.T) {
	t.Parallel()
	r := cliRun(t, "sqlite:"+filepath.Join(t.TempDir(), "typo.db"), "status")
	assert.Equal(t, 2, r.code, "a missing SQLite file is a usage error, not a new empty database")
	assert.Contains(t, r.stderr, "no such SQLite database file")

	url, _ := setup(t)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{}, 2, "no command"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"advance"}, 2, "want one migration"},
		{[]string{"advance", "no_such_migration"}, 2, "unknown migration"},
		{[]string{"status", "--stage", "halfway"}, 2, "unknown stage"},
		{[]string{"status", "no_such_migration"}, 2, "unknown migration"},
		{[]string{"backfill", "pause", "no_such_job"}, 2, "unknown backfill job"},
		{[]string{"backfill", "explode", "x"}, 2, "unknown action"},
		{[]string{"audit", "no_such_migration"}, 2, "unknown migration"},
		{[]string{"advance", "--bogus", "x"}, 2, "unknown flag: --bogus"},
		{[]string{"lint", "/no/such/file.sql"}, 2, "no such file"},
	} {
		r := cliRun(t, url, c.args...)
		assert.Equal(t, c.code, r.code, "%v: %s", c.args, r.stderr)
		assert.Contains(t, r.stderr, c.msg, "%v", c.args)
	}
	r = cliRun(t, "", "status")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "no database")

	for _, cmd := range []string{"status", "advance", "rollback", "force", "backfill", "verify", "lint", "runbook", "retro", "audit"} {
		r := cliRun(t, url, cmd, "--help")
		assert.Equal(t, 0, r.code, cmd)
		assert.Contains(t, r.stdout, "Usage:\n  schemashift "+cmd, cmd)
		assert.Empty(t, r.stderr, cmd)
	}
	r = cliRun(t, url, "help")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "Exit codes")
}

func TestCLILint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unsafe := filepath.Join(dir, "expand.sql")
	require.NoError(t, os.WriteFile(unsafe, []byte("CREATE INDEX users_email ON users (email);\n"), 0o600))
	safe := filepath.Join(dir, "safe.sql")
	require.NoError(t, os.WriteFile(safe, []byte("SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n"), 0o600))
	broken := filepath.Join(dir, "broken.sql")
	require.NoError(t, os.WriteFile(broken, []byte("ALTER TABLE users ADD COLUMN;"), 0o600))

	r := cliRun(t, "", "lint", unsafe)
	assert.Equal(t, 3, r.code)
	assert.Contains(t, r.stdout, "expand.sql:1:1: index-not-concurrent")
	assert.Contains(t, r.stdout, "missing-lock-timeout")
	r = cliRun(t, "", "lint", safe)
	assert.Equal(t, 0, r.code, r.stdout)
	r = cliRun(t, "", "lint", broken)
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "parse DDL")
}

// The real binary's exit code, as a script sees it.
func TestCLIProcessExitCodes(t *testing.T) {
	t.Parallel()
	url, _ := setup(t)
	exitOf := func(args ...string) (int, string) {
		cmd := exec.CommandContext(context.WithoutCancel(t.Context()), os.Args[0], args...)
		cmd.Env = append(os.Environ(), "SCHEMASHIFT_CLI_MAIN=1", "DATABASE_URL="+url)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	code, out := exitOf("advance", "users_split_name")
	assert.Equal(t, 0, code, out)
	code, _ = exitOf("advance", "nope")
	assert.Equal(t, 2, code)
	code, out = exitOf("rollback", "users_split_name", "--version", "99")
	assert.Equal(t, 3, code, out)
	assert.True(t, strings.Contains(out, "refused"), out)
}

// A tripped guardrail is cleared from the CLI with advance --acknowledge,
// which needs a reason; the audit trail records what was passed over.
// Each command offers only its own flags.
func TestCLIAcknowledgesATrip(t *testing.T) {
	t.Parallel()
	for name, setup := range map[string]func(*testing.T) (string, *sqlx.DB){"postgres": setup, "sqlite": setupSQLite} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, db := setup(t)
			r := cliRun(t, url, "advance", "users_split_name")
			require.Equal(t, 0, r.code, r.stderr)
			require.NoError(t, ledger.Trip(t.Context(), db, "users_split_name", "shadow consistency 0.80 under 0.90"))

			r = cliRun(t, url, "status", "users_split_name")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "not met: a guardrail tripped (shadow consistency 0.80 under 0.90)", "status shows the trip as the unmet gate")
			r = cliRun(t, url, "advance", "users_split_name")
			assert.Equal(t, 3, r.code, "refused while tripped")
			assert.Contains(t, r.stderr, "a guardrail tripped (shadow consistency 0.80 under 0.90)")
			r = cliRun(t, url, "advance", "users_split_name", "--acknowledge")
			assert.Equal(t, 2, r.code, "an acknowledgement needs a reason")
			assert.Contains(t, r.stderr, "--acknowledge needs --reason")
			r = cliRun(t, url, "rollback", "users_split_name", "--acknowledge", "--reason", "x")
			assert.Equal(t, 2, r.code, "rollback takes no acknowledgement")
			r = cliRun(t, url, "advance", "users_split_name", "--to-off")
			assert.Equal(t, 2, r.code, "advance takes no --to-off")

			r = cliRun(t, url, "advance", "users_split_name", "--acknowledge", "--reason", "the comparator ignored case; fixed")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "users_split_name: dualwrite")
			st, err := ledger.Get(t.Context(), db, "users_split_name")
			require.NoError(t, err)
			assert.Empty(t, st.Tripped, "the trip is cleared")
			r = cliRun(t, url, "audit", "users_split_name")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "acknowledged the tripped guardrail (shadow consistency 0.80 under 0.90); the comparator ignored case; fixed")

			r = cliRun(t, url, "advance", "--help")
			assert.Contains(t, r.stdout+r.stderr, "-acknowledge")
			assert.NotContains(t, r.stdout+r.stderr, "-to-off")
		})
	}
}
