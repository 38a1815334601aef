package report_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// governedPlan has an owner whose name tries to forge a runbook heading,
// and policies of both kinds.
func governedPlan() rollout.Plan {
	return rollout.Plan{Migration: "gov", Owner: "team data\u2028## 1. forged",
		Policies: []rollout.Policy{
			{To: ledger.Contracted, Needs: 2},
			{To: ledger.Live, Actors: []string{"carol", "dave"}},
			{Force: true, Needs: 1, Approvers: []string{"alice"}},
		}}
}

// The runbook names the owner and lists every policy, and the gate of
// each transition a policy holds says what it asks; a plan without them
// has no such section. The runbook of the coordinator's stored plan
// says the same, on either database.
func TestRunbookOwnerAndApprovals(t *testing.T) {
	t.Parallel()
	md, err := report.Runbook(governedPlan())
	require.NoError(t, err)
	assert.Contains(t, md, "## Owner and approvals\n\nOwner: team data ↵ ## 1. forged.\n")
	assert.NotContains(t, md, "\n## 1. forged")
	assert.Contains(t, md, "- advances into contracted: 2 distinct approvals by anyone but the performer, at the migration's current version\n")
	assert.Contains(t, md, `- advances into live: performed by "carol" or "dave" only`+"\n")
	assert.Contains(t, md, `- every forced advance: 1 distinct approval by "alice" (not the performer)`)
	assert.Contains(t, md, "`schemashift approve gov --to PHASE --reason REASON`")
	assert.Contains(t, report.Gate(governedPlan(), ledger.Contracted), "by policy, 2 distinct approvals others than the performer")
	assert.Contains(t, report.Gate(governedPlan(), ledger.Live), `by policy, performed by "carol" or "dave" only`)
	assert.Contains(t, report.Gate(governedPlan(), ledger.Backfill), `forced, by policy, 1 distinct approval of "alice"`)
	assert.NotContains(t, report.Gate(governedPlan(), ledger.Backfill), "; and by policy")

	plain, err := report.Runbook(rollout.Plan{Migration: "plain"})
	require.NoError(t, err)
	assert.NotContains(t, plain, "Owner and approvals")
	assert.NotContains(t, plain, "policy")

	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := t.Context()
		_, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{governedPlan()})
		require.NoError(t, err)
		opened, err := rollout.Open(ctx, db)
		require.NoError(t, err)
		pr, err := report.ProcedureFor(ctx, opened, "gov")
		require.NoError(t, err)
		assert.Equal(t, "team data\u2028## 1. forged", pr.Governance.Owner)
		assert.Len(t, pr.Governance.Policies, 3)
		md, err := report.RunbookFor(ctx, opened, "gov")
		require.NoError(t, err)
		assert.Contains(t, md, "## Owner and approvals")
	})
}
