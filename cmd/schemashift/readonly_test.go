package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
)

// readOnlyRole creates a role that may only use the schema and SELECT the
// ledger's tables (nothing else, not even CREATE on public, which
// PostgreSQL before 15 grants to everyone), and returns the URL that
// logs in as it. The role is dropped when t ends.
func readOnlyRole(t *testing.T, db *sqlx.DB, dbURL string) string {
	t.Helper()
	ctx := t.Context()
	var dbName string
	require.NoError(t, db.GetContext(ctx, &dbName, `SELECT current_database()`))
	name := "ro_" + dbName
	role := pgx.Identifier{name}.Sanitize()
	pw := make([]byte, 12)
	_, _ = rand.Read(pw) // never fails (crypto/rand panics instead)
	password := hex.EncodeToString(pw)
	db.MustExecContext(ctx, `CREATE ROLE `+role+` LOGIN PASSWORD '`+password+`'`) // hex: nothing to escape
	t.Cleanup(func() {
		ctx := context.Background() // t's own is done by now
		for _, q := range []string{
			`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '` + name + `'`,
			`DROP OWNED BY ` + role, `DROP ROLE ` + role,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Errorf("drop role: %v", err)
			}
		}
	})
	db.MustExecContext(ctx, `REVOKE ALL ON SCHEMA public FROM PUBLIC`)
	db.MustExecContext(ctx, `GRANT USAGE ON SCHEMA public TO `+role)
	var tables []string
	require.NoError(t, db.SelectContext(ctx, &tables, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'schemashift\_%'`))
	for _, tb := range tables {
		db.MustExecContext(ctx, `GRANT SELECT ON `+pgx.Identifier{tb}.Sanitize()+` TO `+role)
	}
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.User = url.UserPassword(name, password)
	return u.String()
}

// fingerprint is every schemashift_ table's rows, each with its row
// version (xmin) and place (ctid): an UPDATE, a DELETE or an INSERT,
// even of the same values, changes it, and so does a table created.
func fingerprint(t *testing.T, db *sqlx.DB) map[string]string {
	t.Helper()
	var tables []string
	require.NoError(t, db.SelectContext(t.Context(), &tables, `SELECT tablename FROM pg_tables WHERE tablename LIKE 'schemashift\_%' ORDER BY 1`))
	out := map[string]string{}
	for _, tb := range tables {
		var fp string
		require.NoError(t, db.GetContext(t.Context(), &fp, `SELECT count(*) || ':' || coalesce(md5(string_agg(xmin::text || ctid::text || t::text, ',' ORDER BY ctid)), '')
			FROM `+pgx.Identifier{tb}.Sanitize()+` t`))
		out[tb] = fp
	}
	return out
}

// The reading commands work for a role that may only SELECT the ledger,
// and write nothing; the ones that change state are refused it by the
// database (exit 1), not by the CLI.
func TestCLIReadOnlyRole(t *testing.T) {
	t.Parallel()
	dbURL, db := setup(t)
	for _, args := range [][]string{
		{"advance", "users_split_name", "--reason", "start"},
		{"advance", "users_split_name"},
		{"force", "users_split_name", "--reason", "no fleet in staging"},
		{"backfill", "run", "users_split_name"},
		{"verify", "users_split_name"},
	} {
		r := cliRun(t, dbURL, args...)
		require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
	}
	roURL := readOnlyRole(t, db, dbURL)

	before := fingerprint(t, db)
	require.Contains(t, before, "schemashift_migrations")
	require.Contains(t, before, "schemashift_backfills")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "users_split_name  backfill"},
		{[]string{"status", "users_split_name", "--json"}, `"phase": "backfill"`},
		{[]string{"status", "--stage", "dualwrite"}, "users_split_name"},
		{[]string{"audit"}, "force-advance"},
		{[]string{"audit", "users_split_name", "--json"}, `"kind": "force-advance"`},
		{[]string{"runbook", "users_split_name"}, "# Runbook: users_split_name"},
		{[]string{"retro", "users_split_name"}, "# Retrospective: users_split_name"},
		{[]string{"retro", "users_split_name", "--json"}, `"forced": 1`},
		{[]string{"backfill", "status", "users_split_name"}, "users_split_name: done, 3000/3000 rows"},
		{[]string{"backfill", "status", "users_split_name", "--json"}, `"rows_done": 3000`},
	} {
		r := cliRun(t, roURL, c.args...)
		require.Equal(t, 0, r.code, "%v as a SELECT-only role: %s", c.args, r.stderr)
		assert.Contains(t, r.stdout, c.want, "%v", c.args)
		assert.Empty(t, r.stderr, "%v", c.args)
		if c.args[0] == "status" && len(c.args) == 1 {
			t.Logf("status as a SELECT-only role:\n%s", r.stdout)
		}
	}
	assert.Equal(t, before, fingerprint(t, db), "a reading command wrote to the ledger")

	// What changes state needs the rights: the database refuses it.
	r := cliRun(t, roURL, "advance", "users_split_name")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "permission denied")
	assert.Equal(t, before, fingerprint(t, db))

	// A ledger of an older build: the reader is told to run init, and
	// nothing tries to upgrade it (which this role could not).
	db.MustExecContext(t.Context(), `UPDATE schemashift_ledger_schema SET version = version - 1`)
	before = fingerprint(t, db)
	for _, args := range [][]string{{"status"}, {"audit"}, {"runbook", "users_split_name"}, {"retro", "users_split_name"}} {
		r := cliRun(t, roURL, args...)
		assert.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		assert.Regexp(t, "the ledger is at version [0-9]+, this build needs [0-9]+: run `schemashift init`", r.stderr, "%v", args)
		assert.NotContains(t, r.stderr, "permission denied", "%v", args)
	}
	assert.Equal(t, before, fingerprint(t, db))
	db.MustExecContext(t.Context(), `UPDATE schemashift_ledger_schema SET version = version + 2`)
	r = cliRun(t, roURL, "status")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, ": upgrade schemashift", "a newer ledger needs a newer build, not init")
}

// On a database without a ledger, the reading commands create nothing
// (even for a role that could) and say how to make one: exit 2. init
// makes it; then they read it.
func TestCLIUninitialisedLedger(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	db, err := sqlx.Open("pgx", dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	for _, args := range [][]string{{"status"}, {"status", "--json"}, {"audit"}, {"runbook", "m"}, {"retro", "m"}} {
		r := cliRun(t, dbURL, args...)
		assert.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		assert.Contains(t, r.stderr, "the ledger is not initialised: run `schemashift init`", "%v", args)
		assert.NotContains(t, r.stderr, "Usage:", "%v: not a usage mistake", args)
	}
	r := cliRun(t, dbURL, "status", "--json")
	var failure struct {
		Error struct {
			Message  string `json:"message"`
			Kind     string `json:"kind"`
			ExitCode int    `json:"exit_code"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &failure), r.stdout)
	assert.Equal(t, 2, failure.Error.ExitCode)
	assert.Equal(t, "bad input", failure.Error.Kind)
	assert.Contains(t, failure.Error.Message, "schemashift init")
	assert.Empty(t, fingerprint(t, db), "a reading command created the ledger")

	r = cliRun(t, dbURL, "init")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `^ledger at version [0-9]+\n$`, r.stdout)
	r = cliRun(t, dbURL, "init", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var v map[string]int
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	assert.Positive(t, v["ledger_version"])
	assert.NotEmpty(t, fingerprint(t, db))

	// A SELECT-only role now reads the empty ledger.
	roURL := readOnlyRole(t, db, dbURL)
	r = cliRun(t, roURL, "status", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "[]", strings.TrimSpace(r.stdout))
	r = cliRun(t, roURL, "init")
	assert.Equal(t, 0, r.code, "at this build's version, init only reads: %s", r.stderr)
}
