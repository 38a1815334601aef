package rollout_test

import (
	"math"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// A plan that would fail at its advance or its rollback is refused at
// registration, with the reason, and stores nothing: the corrected plan
// then registers under the same name.
func TestInvalidPlanRefusedAtRegistration(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("c", 64)
	valid := func() rollout.Plan {
		return rollout.Plan{
			Migration: "users_add_nickname",
			ExpandOps: []ddl.Op{
				ddl.AddColumn{Table: "users", Column: "nickname", Type: "text", Default: "''"},
				ddl.CreateIndex{Name: "users_nickname", Table: "users", Columns: []string{"nickname"}, Where: "nickname <> ''"},
			},
			ContractOps: []ddl.Op{ddl.DropColumn{Table: "users", Column: "full_name"}},
			Backfills:   []backfill.Job{{Name: "nickname", Table: "users", Set: []backfill.Assign{{Column: "nickname", Expr: "full_name"}}}},
		}
	}
	cases := []struct {
		name    string
		breakIt func(p *rollout.Plan)
		says    string
	}{
		{"column name of 64 bytes", func(p *rollout.Plan) { p.ExpandOps[0] = ddl.AddColumn{Table: "users", Column: long, Type: "text"} }, "64 bytes"},
		{"empty table", func(p *rollout.Plan) {
			p.ExpandOps[1] = ddl.CreateIndex{Name: "users_nickname", Columns: []string{"nickname"}}
		}, "expand operation 2"},
		{"unparsable type", func(p *rollout.Plan) {
			p.ExpandOps[0] = ddl.AddColumn{Table: "users", Column: "nickname", Type: "text("}
		}, "syntax error"},
		{"unparsable default", func(p *rollout.Plan) {
			p.ExpandOps[0] = ddl.AddColumn{Table: "users", Column: "nickname", Type: "text", Default: "'a' ||"}
		}, "syntax error"},
		{"unparsable predicate", func(p *rollout.Plan) {
			p.ExpandOps[1] = ddl.CreateIndex{Name: "users_nickname", Table: "users", Columns: []string{"nickname"}, Where: "nickname <>"}
		}, "syntax error"},
		{"unparsable check", func(p *rollout.Plan) {
			p.ContractOps = append(p.ContractOps, ddl.AddCheck{Name: "c", Table: "users", Expr: "length(nickname"})
		}, "contract operation 2"},
		{"long index name", func(p *rollout.Plan) {
			p.ContractOps = []ddl.Op{ddl.DropIndex{Name: long}}
		}, "contract operation 1"},
		{"an expand that cannot be undone", func(p *rollout.Plan) {
			p.ExpandOps = append(p.ExpandOps, ddl.DropColumn{Table: "users", Column: "full_name"})
		}, "rollback to planned"},
		{"nil operation", func(p *rollout.Plan) { p.ExpandOps = append(p.ExpandOps, nil) }, "is nil"},
		{"unparsable step", func(p *rollout.Plan) {
			p.Expand = []rollout.Step{{SQL: "ALTER TABLE users ADD COLUMN x text(", Down: "SELECT 1"}}
		}, "syntax error"},
		{"job without a name", func(p *rollout.Plan) { p.Backfills[0].Name = "" }, "no name"},
		{"two jobs of one name", func(p *rollout.Plan) { p.Backfills = append(p.Backfills, p.Backfills[0]) }, "two backfills"},
		{"job on a bad table", func(p *rollout.Plan) { p.Backfills[0].Table = "" }, "backfill"},
		{"threshold out of range", func(p *rollout.Plan) { p.ShadowConsistency = 1.5 }, "thresholds"},
		{"NaN threshold", func(p *rollout.Plan) { p.ShadowConsistency = math.NaN() }, "thresholds"},
		{"guardrail ratio out of range", func(p *rollout.Plan) { p.Guardrails = []rollout.Guardrail{{MinConsistency: 2}} }, "guardrail 1"},
		{"guardrail of no phase", func(p *rollout.Plan) { p.Guardrails = []rollout.Guardrail{{Phases: []ledger.Phase{42}}} }, "not a phase"},
		{"guardrail NaN latency", func(p *rollout.Plan) { p.Guardrails = []rollout.Guardrail{{MaxLatencyRatio: math.NaN()}} }, "latency"},
	}
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		rollouttest.UsersDB(t, db)
		require.NoError(t, ledger.Ensure(ctx, db))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				p := valid()
				p.Migration += "_" + strings.ReplaceAll(c.name, " ", "_")
				c.breakIt(&p)
				err := rollout.Register(ctx, db, p)
				require.ErrorIs(t, err, rollout.ErrInvalidPlan)
				assert.Contains(t, err.Error(), c.says)
				_, err = ledger.Get(ctx, db, p.Migration)
				require.ErrorIs(t, err, ledger.ErrUnknownMigration, "nothing stored")

				fixed := valid()
				fixed.Migration = p.Migration
				require.NoError(t, rollout.Register(ctx, db, fixed), "the corrected plan registers under the same name")
			})
		}
	})
}

// A coordinator or a service given several plans, one of them invalid,
// registers none of them.
func TestInvalidPlanRegistersNoOther(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		rollouttest.UsersDB(t, db)
		good := rollout.Plan{Migration: "good"}
		bad := rollout.Plan{Migration: "bad", ExpandOps: []ddl.Op{ddl.AddColumn{Table: "users", Column: "x", Type: "text("}}}
		_, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{good, bad})
		require.ErrorIs(t, err, rollout.ErrInvalidPlan)
		_, err = rollout.Start(ctx, db, rollout.ServiceConfig{Service: "users-api", Build: "v1", Plans: []rollout.Plan{good, bad}})
		require.ErrorIs(t, err, rollout.ErrInvalidPlan)
		for _, m := range []string{"good", "bad"} {
			_, err = ledger.Get(ctx, db, m)
			require.ErrorIs(t, err, ledger.ErrUnknownMigration, m)
		}
	})
}

// A valid plan whose ddl operations the database cannot run (SQLite adds
// no constraint to an existing table) registers: the runbook shows them
// and the advance refuses them.
func TestUnsupportedOperationRegisters(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	rollouttest.UsersDB(t, db)
	require.NoError(t, ledger.Ensure(t.Context(), db))
	p := rollout.Plan{Migration: "check", ExpandOps: []ddl.Op{ddl.AddCheck{Name: "c", Table: "users", Expr: "length(full_name) < 500"}}}
	require.NoError(t, rollout.Register(t.Context(), db, p))
	p.ExpandOps[0] = ddl.AddCheck{Name: "c", Table: "users", Expr: "length(full_name"}
	p.Migration = "check_broken"
	require.ErrorIs(t, rollout.Register(t.Context(), db, p), rollout.ErrInvalidPlan, "but its fields are still checked")
}
