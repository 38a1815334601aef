package report_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// The runbook lists the plan's aggregates and their tolerance in a
// section of their own, a name that would break its table (a pipe, a
// newline, a backtick) kept in its cell, and says at which gates they
// are taken; a plan without aggregates has no such section.
func TestRunbookAggregates(t *testing.T) {
	t.Parallel()
	p := rollouttest.UsersPlan(nil)
	md, err := report.Runbook(p)
	require.NoError(t, err)
	assert.NotContains(t, md, "## Aggregates")

	p.Aggregates = []rollout.Aggregate{
		{Name: "named | rows\n# injected", Kind: rollout.AggregateCount,
			Old: rollout.AggregateSide{Table: "users", Column: "full_name"}, New: rollout.AggregateSide{Table: "users", Column: "given`name"}},
		{Name: "amounts", Kind: rollout.AggregateSum, Tolerance: rollout.Tolerance{Absolute: 100, Relative: 0.01},
			Old: rollout.AggregateSide{Table: "public.orders", Column: "amount_cents", GroupBy: "currency"},
			New: rollout.AggregateSide{Table: "order_totals", Expr: "round(amount * 100)", GroupBy: "currency"}},
	}
	md, err = report.Runbook(p)
	require.NoError(t, err)
	assert.Contains(t, md, "## Aggregates\n")
	assert.Contains(t, md, "| named \\| rows ↵ # injected | count | `users.full_name` | `users.given'name` | exact |\n")
	assert.Contains(t, md, "| amounts | sum | `public.orders.amount_cents by currency` | `order_totals.(round(amount * 100)) by currency` | ±100 or ±1% |\n")
	assert.NotContains(t, md, "\n# injected")
	assert.Contains(t, report.Gate(p, ledger.Live), "2 aggregate(s) agree")
	assert.Contains(t, report.Gate(p, ledger.Contracted), "2 aggregate(s) agree")
	assert.Contains(t, report.Gate(p, ledger.Expanded), "snapshotted")
	assert.NotContains(t, report.Gate(p, ledger.Shadow), "aggregate")

	pr, err := report.ProcedureOf(p)
	require.NoError(t, err)
	require.Len(t, pr.Aggregates, 2)
	assert.Equal(t, "±100 or ±1%", pr.Aggregates[1].Tolerance)
}
