package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/sqlite"
)

// cliEnv runs the CLI with exactly the environment env.
// emptyDatabases opens an empty database of each kind, by name, as the
// CLI names it (its URL) and as a program opens it, closed when t ends.
func emptyDatabases() map[string]func(t *testing.T) (string, *sqlx.DB) {
	return map[string]func(t *testing.T) (string, *sqlx.DB){
		"postgres": func(t *testing.T) (string, *sqlx.DB) {
			url := pgtest.URL(t)
			db, err := sqlx.Open("pgx", url)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			return url, db
		},
		"sqlite": func(t *testing.T) (string, *sqlx.DB) {
			path := filepath.Join(t.TempDir(), "app.db")
			db, err := sqlite.Open(t.Context(), path)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			return "sqlite:" + path, db
		},
	}
}

// cliAs runs the CLI on the database at url as actor who.
func cliAs(t *testing.T, url, who string, args ...string) result {
	t.Helper()
	return cliEnv(t, map[string]string{"DATABASE_URL": url, "SCHEMASHIFT_ACTOR": who}, args...)
}

func cliEnv(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut, func(k string) string { return env[k] })
	return result{code, out.String(), errOut.String()}
}

// errorJSON is the document a --json command prints when it fails.
type errorJSON struct {
	Error struct {
		Message  string `json:"message"`
		Kind     string `json:"kind"`
		ExitCode int    `json:"exit_code"`
	} `json:"error"`
}

func TestCLIHelpAndVersion(t *testing.T) {
	t.Parallel()
	r := cliEnv(t, nil, "--help")
	require.Equal(t, 0, r.code)
	assert.Empty(t, r.stderr)
	for _, cmd := range []string{"init", "status", "advance", "rollback", "force", "backfill", "verify", "lint", "runbook", "retro", "audit", "version", "help"} {
		assert.Regexp(t, "\n  "+cmd+" +[A-Z]", r.stdout, "help lists %s", cmd)
	}
	assert.Contains(t, r.stdout, "Exit codes: 0 done, 1 failed, 2 bad input, 3 refused.")
	assert.Contains(t, r.stdout, "SCHEMASHIFT_DATABASE_URL")
	assert.NotContains(t, r.stdout, "schemashift [flags]", "the root runs no command of its own")
	t.Logf("schemashift --help:\n%s", r.stdout)

	// help COMMAND is that command's help, the same as COMMAND --help.
	for _, path := range [][]string{{"status"}, {"advance"}, {"backfill", "run"}, {"runbook"}} {
		h := cliEnv(t, nil, append([]string{"help"}, path...)...)
		require.Equal(t, 0, h.code, "%v: %s", path, h.stderr)
		assert.Contains(t, h.stdout, "Usage:\n  schemashift "+strings.Join(path, " ")+" ", "%v", path)
		f := cliEnv(t, nil, append(path, "--help")...)
		require.Equal(t, 0, f.code)
		assert.Equal(t, f.stdout, h.stdout, "help %v and %v --help", path, path)
		assert.NotEqual(t, r.stdout, h.stdout, "help %v is not the general help", path)
	}
	h := cliEnv(t, nil, "help", "status")
	assert.Contains(t, h.stdout, "--stage string")
	assert.Contains(t, h.stdout, "Global Flags:\n      --actor")
	assert.NotContains(t, h.stdout, "--reason", "status's help lists only its flags")
	t.Logf("schemashift help status:\n%s", h.stdout)

	h = cliEnv(t, nil, "help", "statsu")
	assert.Equal(t, 2, h.code)
	assert.Contains(t, h.stderr, `unknown help topic "statsu"`)
	assert.Contains(t, h.stderr, "Did you mean this?\n\tstatus")
	assert.Empty(t, h.stdout)

	// No section of any command's help is empty (runbook has no flags of
	// its own: its help says so by listing none).
	section := regexp.MustCompile(`(?m)^([A-Z][A-Za-z ]+):\n(\S|\n|$)`)
	for _, path := range [][]string{{}, {"runbook"}, {"init"}, {"backfill"}, {"backfill", "status"}, {"version"}} {
		h := cliEnv(t, nil, append(path, "--help")...)
		require.Equal(t, 0, h.code)
		assert.Nil(t, section.FindStringSubmatch(h.stdout), "%v --help has an empty section:\n%s", path, h.stdout)
	}
	h = cliEnv(t, nil, "runbook", "--help")
	assert.NotContains(t, h.stdout, "--json", "runbook takes only its own flags")

	for _, args := range [][]string{{"--version"}, {"version"}} {
		v := cliEnv(t, nil, args...)
		require.Equal(t, 0, v.code, "%v", args)
		assert.Regexp(t, `^schemashift \S+ \(ledger version [0-9]+`, v.stdout, "%v", args)
	}
	v := cliEnv(t, nil, "version", "--json")
	require.Equal(t, 0, v.code)
	var doc struct {
		Version       string `json:"version"`
		Go            string `json:"go"`
		LedgerVersion int    `json:"ledger_version"`
	}
	require.NoError(t, json.Unmarshal([]byte(v.stdout), &doc))
	assert.NotEmpty(t, doc.Version)
	assert.Equal(t, ledger.SchemaVersion(), doc.LedgerVersion)
}

// A mistake prints its error once, on stderr, and (for a flag or an
// argument) the command's usage there too; stdout stays empty.
func TestCLIMistakes(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
	for _, c := range []struct {
		args  []string
		msg   string
		usage string // the usage that follows, "" for none
	}{
		{[]string{"status", "--bogus"}, "unknown flag: --bogus", "schemashift status [MIGRATION] [flags]"},
		{[]string{"advance", "m", "--reasn", "x"}, "unknown flag: --reasn", "schemashift advance MIGRATION [flags]"},
		{[]string{"advance", "m", "--to-off"}, "unknown flag: --to-off", "schemashift advance MIGRATION [flags]"},
		{[]string{"runbook", "m", "--json"}, "unknown flag: --json", "schemashift runbook MIGRATION [flags]"},
		{[]string{"backfill", "run", "m", "--workers", "many"}, `invalid argument "many" for "--workers"`, "schemashift backfill run MIGRATION [flags]"},
		{[]string{"backfill", "status", "j", "--workers", "2"}, "unknown flag: --workers", "schemashift backfill status JOB [flags]"},
		{[]string{"advance"}, "want one migration, got 0 arguments", "schemashift advance MIGRATION [flags]"},
		{[]string{"advance", "a", "b"}, "want one migration, got 2 arguments", "schemashift advance MIGRATION [flags]"},
		{[]string{"status", "a", "b"}, "want at most one migration, got 2", "schemashift status [MIGRATION] [flags]"},
		{[]string{"init", "x"}, `unknown command "x" for "schemashift init"`, "schemashift init [flags]"},
		{[]string{}, "no command", "schemashift [command]"},
		{[]string{"--bogus"}, "unknown flag: --bogus", "schemashift [command]"},
		{[]string{"statsu"}, "unknown command \"statsu\" for \"schemashift\"\n\nDid you mean this?\n\tstatus\n", ""},
		{[]string{"avance", "m"}, "Did you mean this?\n\tadvance\n", ""},
		{[]string{"backfill", "rn", "m"}, `unknown action "rn" for "schemashift backfill"`, ""},
		{[]string{"backfill"}, "want an action", "schemashift backfill [command]"},
	} {
		r := cliEnv(t, env, c.args...)
		assert.Equal(t, 2, r.code, "%v: %s", c.args, r.stderr)
		assert.Empty(t, r.stdout, "%v: nothing on stdout", c.args)
		assert.Contains(t, r.stderr, c.msg, "%v", c.args)
		assert.Equal(t, 1, strings.Count(r.stderr, "schemashift: "), "%v: the error once: %s", c.args, r.stderr)
		if c.usage != "" {
			assert.Contains(t, r.stderr, "Usage:\n  "+c.usage, "%v: the usage on stderr", c.args)
		} else {
			assert.NotContains(t, r.stderr, "Usage:", "%v", c.args)
			assert.Contains(t, r.stderr, "--help' for usage.", "%v", c.args)
		}
		if len(c.args) > 1 && c.args[1] == "--bogus" {
			t.Logf("schemashift status --bogus (stderr):\n%s", r.stderr)
		}
	}
}

// The database is --database-url (before or after the command), else
// SCHEMASHIFT_DATABASE_URL, else DATABASE_URL; who acts is --actor, else
// SCHEMASHIFT_ACTOR, else USER.
func TestCLIConnectionAndIdentity(t *testing.T) {
	t.Parallel()
	url, _ := setup(t)
	bad := "postgres://nobody@127.0.0.1:notaport/none" // would exit 2 if it were used
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"flag after the command", map[string]string{envDatabaseURL: bad, "DATABASE_URL": bad}, []string{"status", "--database-url", url}},
		{"flag= after the argument", map[string]string{envDatabaseURL: bad}, []string{"status", "users_split_name", "--database-url=" + url}},
		{"flag before the command", map[string]string{envDatabaseURL: bad}, []string{"--database-url", url, "status"}},
		{"SCHEMASHIFT_DATABASE_URL before DATABASE_URL", map[string]string{envDatabaseURL: url, "DATABASE_URL": bad}, []string{"status"}},
		{"DATABASE_URL still works", map[string]string{"DATABASE_URL": url}, []string{"status"}},
	} {
		r := cliEnv(t, c.env, c.args...)
		require.Equal(t, 0, r.code, "%s: %s", c.name, r.stderr)
		assert.Contains(t, r.stdout, "users_split_name", c.name)
	}

	r := cliEnv(t, map[string]string{}, "status")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "no database: pass --database-url or set SCHEMASHIFT_DATABASE_URL")

	for _, u := range []string{bad, "postgres://x:secret@host:99999999/db", "mysql//typo", "host=h port=notaport"} {
		r := cliEnv(t, map[string]string{envDatabaseURL: u}, "status")
		assert.Equal(t, 2, r.code, "%q: an unparseable URL is bad input: %s", u, r.stderr)
		assert.Contains(t, r.stderr, "database URL: ", u)
		assert.NotContains(t, r.stderr, "secret", "the password is not echoed")
	}
	r = cliEnv(t, map[string]string{envDatabaseURL: "postgres://nobody@127.0.0.1:1/none?connect_timeout=5"}, "status")
	assert.Equal(t, 1, r.code, "a URL that parses but does not connect is a failure: %s", r.stderr)
	assert.Contains(t, r.stderr, "connect: ")

	env := map[string]string{envDatabaseURL: url, envActor: "ci-bot", "USER": "someone"}
	r = cliEnv(t, env, "advance", "users_split_name", "--reason", "by env")
	require.Equal(t, 0, r.code, r.stderr)
	r = cliEnv(t, env, "rollback", "users_split_name", "--actor", "alice", "--reason", "by flag")
	require.Equal(t, 0, r.code, r.stderr)
	r = cliEnv(t, map[string]string{envDatabaseURL: url, "USER": "someone"}, "advance", "users_split_name", "--reason", "by user")
	require.Equal(t, 0, r.code, r.stderr)
	r = cliEnv(t, env, "audit", "users_split_name", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var ev []ledger.Event
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &ev))
	actors := map[string]string{}
	for _, e := range ev {
		if strings.HasPrefix(e.Reason, "by ") {
			actors[e.Reason] = e.Actor
		}
	}
	assert.Equal(t, map[string]string{"by env": "ci-bot", "by flag": "alice", "by user": "someone"}, actors)
}

// With --json, advance, rollback and force print the migration's new
// status; a failure prints an error document instead, with its exit code.
func TestCLIJSON(t *testing.T) {
	t.Parallel()
	url, _ := setup(t)
	type moved struct {
		Action    string `json:"action"`
		Migration string `json:"migration"`
		Phase     string `json:"phase"`
		Stage     string `json:"stage"`
		Version   int64  `json:"version"`
	}
	step := func(want moved, args ...string) {
		t.Helper()
		r := cliRun(t, url, append(args, "--json")...)
		require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
		var got moved
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
		assert.Equal(t, want, got, "%v", args)
		assert.Empty(t, r.stderr)
	}
	step(moved{"advance", "users_split_name", "expanded", "off", 2}, "advance", "users_split_name")
	step(moved{"advance", "users_split_name", "dualwrite", "dualwrite", 3}, "advance", "users_split_name")
	step(moved{"rollback", "users_split_name", "expanded", "off", 4}, "rollback", "users_split_name")
	step(moved{"advance", "users_split_name", "dualwrite", "dualwrite", 5}, "advance", "users_split_name")
	step(moved{"force-advance", "users_split_name", "backfill", "dualwrite", 6}, "force", "users_split_name", "--reason", "staging")
	step(moved{"force-rollback", "users_split_name", "expanded", "off", 7}, "force", "users_split_name", "--rollback", "--to-off", "--reason", "drill")

	for _, c := range []struct {
		args []string
		code int
		kind string
		msg  string
	}{
		{[]string{"advance", "users_split_name", "--version", "1"}, 3, "refused", "changed since it was read"},
		{[]string{"advance", "no_such"}, 2, "bad input", "unknown migration"},
		{[]string{"force", "users_split_name"}, 2, "bad input", "--reason is required"},
		{[]string{"status", "no_such"}, 2, "bad input", "unknown migration"},
		{[]string{"backfill", "status", "no_such"}, 2, "bad input", "unknown backfill job"},
		{[]string{"backfill", "pause", "no_such"}, 2, "bad input", "unknown backfill job"},
	} {
		r := cliRun(t, url, append(c.args, "--json")...)
		assert.Equal(t, c.code, r.code, "%v: %s", c.args, r.stderr)
		var e errorJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &e), "%v: stdout is one JSON document: %q", c.args, r.stdout)
		assert.Equal(t, c.code, e.Error.ExitCode, "%v", c.args)
		assert.Equal(t, c.kind, e.Error.Kind, "%v", c.args)
		assert.Contains(t, e.Error.Message, c.msg, "%v", c.args)
		assert.Contains(t, r.stderr, c.msg, "%v: and on stderr", c.args)
	}

	// lint: the findings are the document, exit 3 all the same.
	file := filepath.Join(t.TempDir(), "expand.sql")
	require.NoError(t, os.WriteFile(file, []byte("CREATE INDEX users_email ON users (email);\n"), 0o600))
	r := cliEnv(t, nil, "lint", file, "--json")
	assert.Equal(t, 3, r.code)
	var found []lintFinding
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &found), "one document, not the findings and an error: %q", r.stdout)
	rules := map[string]lintFinding{}
	for _, f := range found {
		rules[f.Rule] = f
	}
	require.Contains(t, rules, "index-not-concurrent")
	f := rules["index-not-concurrent"]
	assert.Equal(t, lintFinding{File: file, Line: 1, Column: 1, Rule: "index-not-concurrent"}, lintFinding{File: f.File, Line: f.Line, Column: f.Column, Rule: f.Rule})
	assert.Contains(t, f.Statement, "CREATE INDEX users_email")
	assert.Contains(t, f.Fix, "CONCURRENTLY")
	assert.NotEmpty(t, f.Message)
	safe := filepath.Join(t.TempDir(), "safe.sql")
	require.NoError(t, os.WriteFile(safe, []byte("SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n"), 0o600))
	r = cliEnv(t, nil, "lint", safe, "--json")
	assert.Equal(t, 0, r.code)
	assert.Equal(t, "[]", strings.TrimSpace(r.stdout))
}

// The real binary's exit codes for what the issue found wrong: an
// unparseable URL (2), a typo'd flag (2, once, usage on stderr).
func TestCLIProcessMistakes(t *testing.T) {
	t.Parallel()
	exitOf := func(env []string, args ...string) (int, string, string) {
		cmd := exec.CommandContext(context.WithoutCancel(t.Context()), os.Args[0], args...)
		cmd.Env = append(os.Environ(), append(env, "SCHEMASHIFT_CLI_MAIN=1")...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		_ = cmd.Run() // the exit code is the point
		return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
	}
	code, out, errOut := exitOf([]string{"SCHEMASHIFT_DATABASE_URL=postgres://u@h:notaport/db"}, "status")
	assert.Equal(t, 2, code, errOut)
	assert.Empty(t, out)
	code, out, errOut = exitOf(nil, "status", "--bogus")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Equal(t, 1, strings.Count(errOut, "unknown flag: --bogus"), errOut)
	assert.Contains(t, errOut, "Usage:\n  schemashift status")
	code, out, _ = exitOf(nil, "--version")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "schemashift ")
}
