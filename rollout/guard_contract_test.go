package rollout_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// A guardrail that watches complete, over a contract begun and cut off
// (its first drop ran): it cannot step back, so it does nothing and
// reports no error; the contract is still completed by the next advance.
func TestGuardrailLeavesABegunContract(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		rollouttest.UsersDB(t, db)
		ctx := t.Context()
		db.MustExecContext(ctx, `ALTER TABLE users ADD COLUMN nickname text`)
		db.MustExecContext(ctx, `CREATE VIEW users_nicknames AS SELECT nickname FROM users`)
		clk := rollouttest.NewClock()
		p := rollouttest.LedgerPlan()
		p.ContractOps = []ddl.Op{ddl.DropColumn{Table: "users", Column: "full_name"}, ddl.DropColumn{Table: "users", Column: "nickname"}}
		p.Guardrails = []rollout.Guardrail{{Phases: []ledger.Phase{ledger.Complete}, MinConsistency: 0.9, MinSamples: 1}}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{p}, rollout.WithClock(clk.Now))
		require.NoError(t, err)
		rollouttest.Forced(t, c, p.Migration, 8) // expanded … complete
		in := rollouttest.InstanceAt(t, db, "a", p.Migration, clk.Now)
		rollouttest.Beat(t, in, flags.Complete)
		clk.Add(rollouttest.Window)
		rollouttest.Beat(t, in, flags.Complete)
		_, err = c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t", Confirm: true})
		require.Error(t, err, "the view holds nickname: the contract is cut off after its first drop")
		require.False(t, hasColumn(t, db, "users", "full_name"))

		in.Observer().ObserveComparison(ctx, dualwrite.Comparison{Migration: p.Migration, Stage: flags.Complete, Match: false})
		require.NoError(t, in.Beat(ctx))
		trips, err := c.Guard(ctx)
		require.NoError(t, err, "a begun contract is no error for the guardrail")
		assert.Empty(t, trips)
		st, err := ledger.Get(ctx, db, p.Migration)
		require.NoError(t, err)
		assert.Equal(t, ledger.Complete, st.Phase)

		db.MustExecContext(ctx, `DROP VIEW users_nicknames`)
		st, err = c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t"})
		require.NoError(t, err)
		assert.Equal(t, ledger.Contracted, st.Phase)
	})
}
