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

// The audit trail holds notes that name a phase without entering it: an
// approval of the advance into expanded (and one refused), the
// aggregates' snapshot taken at the expand. The retrospective counts
// transitions only: one phase entered, no refusal.
func TestRetrospectiveCountsTransitionsOnly(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE items (id integer PRIMARY KEY)`)
		db.MustExecContext(ctx, `INSERT INTO items VALUES (1), (2)`)
		side := rollout.AggregateSide{Table: "items"}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{{Migration: "retro_notes",
			Policies:   []rollout.Policy{{To: ledger.Expanded, Needs: 1}},
			Aggregates: []rollout.Aggregate{{Name: "items", Kind: rollout.AggregateCount, Old: side, New: side}}}})
		require.NoError(t, err)
		_, err = c.Approve(ctx, rollout.Approval{Migration: "retro_notes", To: ledger.Expanded, Actor: "bob", Reason: "looks right"})
		require.NoError(t, err)
		_, err = c.Approve(ctx, rollout.Approval{Migration: "retro_notes", To: ledger.Live, Actor: "bob", Reason: "not the next phase"})
		require.Error(t, err)
		_, err = c.Advance(ctx, rollout.Request{Migration: "retro_notes", Actor: "alice"})
		require.NoError(t, err)
		events, err := ledger.Audit(ctx, db, "retro_notes", 100)
		require.NoError(t, err)
		kinds := map[string]bool{}
		for _, e := range events {
			kinds[e.Kind] = true
		}
		require.True(t, kinds["approve"] && kinds["aggregates-snapshot"], "the notes are in the trail: %v", kinds)

		retro, err := report.Retrospect(ctx, c, "retro_notes")
		require.NoError(t, err)
		assert.Zero(t, retro.Refused, "a refused approval is not a refused transition")
		var phases []string
		for _, p := range retro.Phases {
			phases = append(phases, p.Phase.String()+" "+p.Kind)
		}
		assert.Equal(t, []string{"planned register", "expanded advance"}, phases)
	})
}
