package report_test

import (
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// The runbook lists, at each transition, the milestone checks its gate
// runs and what each asserts, on one line whatever its SQL holds; a
// transition no check gates says nothing of them.
func TestRunbookChecks(t *testing.T) {
	t.Parallel()
	p := rollouttest.UsersPlan(nil)
	p.Checks = []rollout.Check{
		{Name: "no orphans", Before: []ledger.Phase{ledger.Shadow, ledger.Live},
			SQL: "SELECT id FROM users\n## 9. injected heading\nWHERE given_name IS NULL"},
		{Name: "error budget", Before: []ledger.Phase{ledger.Live}, URL: "https://slo.example/users?window=1h"},
		{Name: "pager quiet", Before: []ledger.Phase{ledger.Live}, Func: "pager"},
	}
	md, err := report.Runbook(p)
	require.NoError(t, err)
	assert.Equal(t, 9, strings.Count(md, "\n## "), "the SQL's newline makes no section of its own")
	shadow := report.Gate(p, ledger.Shadow)
	assert.Contains(t, shadow, `the milestone check "no orphans" (SQL assertion that returns no rows: "SELECT id FROM users ↵ ## 9. injected heading ↵ WHERE given_name IS NULL") pass`)
	live := report.Gate(p, ledger.Live)
	assert.Contains(t, live, `the milestone checks "no orphans" (SQL assertion`)
	assert.Contains(t, live, `"error budget" (HTTP GET "https://slo.example/users?window=1h" answering 2xx)`)
	assert.Contains(t, live, `"pager quiet" (Go function "pager", registered with the coordinator that advances)`)
	assert.NotContains(t, report.Gate(p, ledger.Verify), "milestone")
	assert.Contains(t, md, `"error budget" (HTTP GET`)
}

// A retrospective does not take a check's run for a transition: a passed
// one enters no phase, and a failed one is not a refused transition (the
// refusal that follows it is, once).
func TestRetrospectiveLeavesOutCheckRuns(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE flags (id integer PRIMARY KEY)`)
		db.MustExecContext(ctx, `INSERT INTO flags VALUES (1)`)
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{{Migration: "retro_checked", Checks: []rollout.Check{
			{Name: "empty", Before: []ledger.Phase{ledger.Expanded, ledger.DualWrite}, SQL: `SELECT id FROM flags`}}}})
		require.NoError(t, err)
		r := rollout.Request{Migration: "retro_checked", Actor: "ci"}
		_, err = c.Advance(ctx, r)
		require.ErrorIs(t, err, rollout.ErrGateRefused)
		db.MustExecContext(ctx, `DELETE FROM flags`)
		_, err = c.Advance(ctx, r)
		require.NoError(t, err)
		retro, err := report.Retrospect(ctx, c, "retro_checked")
		require.NoError(t, err)
		assert.Equal(t, 1, retro.Refused)
		var phases []string
		for _, p := range retro.Phases {
			phases = append(phases, p.Phase.String()+" "+p.Kind)
		}
		assert.Equal(t, []string{"planned register", "expanded advance"}, phases)
	})
}
