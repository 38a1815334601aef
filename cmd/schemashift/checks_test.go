package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// The CLI's advance judges a stored plan's checks: a failing SQL
// assertion refuses it (exit 3) naming the check, a Go check the CLI has
// no function for is refused saying so, and status --json carries each
// check's last run.
func TestCLIChecks(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	db, err := sqlx.Open("pgx", url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	db.MustExecContext(t.Context(), `CREATE TABLE accounts (id integer PRIMARY KEY, balance integer NOT NULL)`)
	db.MustExecContext(t.Context(), `INSERT INTO accounts VALUES (1, -3)`)
	fn := func(context.Context, rollout.CheckContext) error { return nil }
	_, err = rollout.NewCoordinator(t.Context(), db, []rollout.Plan{{Migration: "checked", Checks: []rollout.Check{
		{Name: "balances", Before: []ledger.Phase{ledger.Expanded}, SQL: `SELECT id FROM accounts WHERE balance < 0`},
		{Name: "pager", Before: []ledger.Phase{ledger.DualWrite}, Func: "pager"},
	}}}, rollout.WithCheck("pager", fn))
	require.NoError(t, err)

	r := cliRun(t, url, "advance", "checked")
	assert.Equal(t, 3, r.code, "%+v", r)
	assert.Contains(t, r.stderr, `check "balances" failed: first offending row: id=1`)

	db.MustExecContext(t.Context(), `UPDATE accounts SET balance = 3`)
	r = cliRun(t, url, "advance", "checked")
	require.Equal(t, 0, r.code, "%+v", r)
	r = cliRun(t, url, "advance", "checked")
	assert.Equal(t, 3, r.code, "%+v", r)
	assert.Contains(t, r.stderr, `no check function "pager" is registered with this coordinator`)

	r = cliRun(t, url, "status", "--json")
	require.Equal(t, 0, r.code, "%+v", r)
	var ms []struct {
		Checks []struct {
			Name string `json:"name"`
			Last *struct {
				Passed bool   `json:"passed"`
				Actor  string `json:"actor"`
			} `json:"last"`
		} `json:"checks"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &ms))
	require.Len(t, ms, 1)
	require.Len(t, ms[0].Checks, 2)
	require.NotNil(t, ms[0].Checks[0].Last)
	assert.True(t, ms[0].Checks[0].Last.Passed)
	assert.Equal(t, "operator", ms[0].Checks[0].Last.Actor)
	require.NotNil(t, ms[0].Checks[1].Last)
	assert.False(t, ms[0].Checks[1].Last.Passed)
}
