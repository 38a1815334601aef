package rollout_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// hashOps has one value of every operation type of package ddl, every
// slice field with an element, so that each field can be changed.
func hashOps() []ddl.Op {
	return []ddl.Op{
		ddl.AddColumn{Table: "users", Column: "given_name", Type: "text", Default: "''", Volatile: false},
		ddl.AddTable{Table: "order_totals", Columns: "order_id bigint PRIMARY KEY"},
		ddl.CreateIndex{Name: "users_given_name", Table: "users", Columns: []string{"given_name"}, Unique: false, Where: "given_name IS NOT NULL"},
		ddl.DropIndex{Schema: "public", Name: "users_given_name"},
		ddl.AddForeignKey{Name: "orders_user", Table: "orders", Columns: []string{"user_id"}, RefTable: "users", RefColumns: []string{"id"}},
		ddl.AddCheck{Name: "users_given_name_len", Table: "users", Expr: "length(given_name) < 100"},
		ddl.SetNotNull{Table: "users", Column: "given_name"},
		ddl.AddUnique{Name: "users_email", Table: "users", Columns: []string{"email"}},
		ddl.DropColumn{Table: "users", Column: "full_name"},
		ddl.DropTable{Table: "old_totals"},
	}
}

// hashPlan is a plan with every field set (a slice with an element, a
// pointer to a value), so that each field can be changed.
func hashPlan() rollout.Plan {
	return rollout.Plan{
		Migration: "users_split_name",
		Expand:    []rollout.Step{{SQL: "ALTER TABLE users ADD COLUMN family_name text", Down: "ALTER TABLE users DROP COLUMN family_name"}},
		Columns:   []rollout.Column{{Table: "users", Column: "family_name"}},
		Backfills: []backfill.Job{{
			Name: "users_split_name", Table: "users", Key: []string{"id"},
			Set:     []backfill.Assign{{Column: "given_name", Expr: "split_part(full_name, ' ', 1)"}},
			Into:    &backfill.Into{Table: "names", Key: []string{"id"}, Columns: []backfill.Assign{{Column: "id", Expr: "id"}}},
			Func:    nil,
			Columns: []string{"full_name"}, Version: "1",
			Check: &backfill.Into{Table: "names", Key: []string{"id"}, Columns: []backfill.Assign{{Column: "id", Expr: "id"}}},
			Fills: []string{"given_name"}, Down: []backfill.Assign{{Column: "full_name", Expr: "given_name"}}, Derived: false,
		}},
		Contract:   []rollout.Step{{SQL: "ALTER TABLE users DROP COLUMN full_name", Down: "SELECT 1"}},
		Thresholds: rollout.Thresholds{ShadowConsistency: 0.99, MinComparisons: 50, Window: 2 * time.Minute},
		Guardrails: []rollout.Guardrail{{Phases: []ledger.Phase{ledger.Shadow}, MinConsistency: 0.9, MaxErrorRate: 0.1,
			MaxLatencyRatio: 2, HaltOnFailedVerification: false, MinSamples: 10}},
		HotQueries: []rollout.HotQuery{{Name: "by id", SQL: "SELECT * FROM users WHERE id = 1"}},
		Requires:   []rollout.Requirement{{Before: ledger.Complete, Migration: "orders_move_amount", Reached: ledger.Live}},
		Owner:      "team data",
		Policies:   []rollout.Policy{{To: ledger.Live, Actors: []string{"alice"}, Needs: 2, Approvers: []string{"bob", "carol"}}},
		Aggregates: []rollout.Aggregate{{Name: "named", Kind: rollout.AggregateCount, Tolerance: rollout.Tolerance{Absolute: 2, Relative: 0.5}, Timeout: time.Second,
			Old: rollout.AggregateSide{Table: "users", Column: "full_name", Expr: "1", GroupBy: "id"},
			New: rollout.AggregateSide{Table: "users", Column: "given_name", Expr: "1", GroupBy: "id"}}},
		Checks: []rollout.Check{{Name: "no orphans", Before: []ledger.Phase{ledger.Live}, SQL: "SELECT 1 WHERE 1 = 0",
			URL: "http://slo/ok", Func: "pager", Timeout: time.Second}},
		Sunset:     rollout.Sunset{At: time.Date(2032, 3, 1, 12, 0, 0, 0, time.UTC), Warn: 72 * time.Hour},
		RunWindows: []backfill.Window{{Days: []time.Weekday{time.Monday}, Start: time.Hour, End: 5 * time.Hour, Location: time.UTC}},
	}
}

// change is one field of a value changed: at path, by apply on a fresh
// copy of the value.
type change struct {
	path  string
	apply func(root reflect.Value)
}

// changes lists a change of every field reached from the root through
// get, recursing into structs, pointers and the first element of each
// slice (which the base must have). An interface field is not reached (the plan's operations
// are changed by type, below).
func changes(t *testing.T, typ reflect.Type, path string, get func(reflect.Value) reflect.Value) []change {
	t.Helper()
	leaf := func(f func(v reflect.Value)) []change {
		return []change{{path, func(r reflect.Value) { f(get(r)) }}}
	}
	if typ == reflect.TypeFor[time.Time]() { // a value: moved on, not walked
		return leaf(func(v reflect.Value) { v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Microsecond))) })
	}
	if typ == reflect.TypeFor[backfill.Window]() { // a value, stored as its text: each part changed in turn
		part := func(name string, f func(w *backfill.Window)) change {
			return change{path + "." + name, func(r reflect.Value) {
				w := get(r).Interface().(backfill.Window)
				w.Days = slices.Clone(w.Days)
				f(&w)
				get(r).Set(reflect.ValueOf(w))
			}}
		}
		paris, err := time.LoadLocation("Europe/Paris")
		require.NoError(t, err)
		return []change{
			part("Days", func(w *backfill.Window) { w.Days = append(w.Days, time.Tuesday) }),
			part("Start", func(w *backfill.Window) { w.Start += time.Minute }),
			part("End", func(w *backfill.Window) { w.End += time.Minute }),
			part("Location", func(w *backfill.Window) { w.Location = paris }),
		}
	}
	switch typ.Kind() {
	case reflect.Struct:
		var out []change
		for i := range typ.NumField() {
			f := typ.Field(i)
			out = append(out, changes(t, f.Type, path+"."+f.Name, func(r reflect.Value) reflect.Value { return get(r).Field(i) })...)
		}
		return out
	case reflect.Pointer:
		out := leaf(func(v reflect.Value) { v.Set(reflect.Zero(typ)) }) // the base has it set
		return append(out, changes(t, typ.Elem(), path, func(r reflect.Value) reflect.Value { return get(r).Elem() })...)
	case reflect.Slice:
		if typ.Elem().Kind() == reflect.Interface {
			return nil
		}
		more := reflect.Zero(typ.Elem())
		if typ.Elem() == reflect.TypeFor[backfill.Window]() {
			more = reflect.ValueOf(backfill.Window{Start: 2 * time.Hour, End: 3 * time.Hour}) // the zero window means nothing
		}
		out := leaf(func(v reflect.Value) { v.Set(reflect.Append(v, more)) })
		return append(out, changes(t, typ.Elem(), path+"[0]", func(r reflect.Value) reflect.Value { return get(r).Index(0) })...)
	case reflect.String:
		return leaf(func(v reflect.Value) { v.SetString(v.String() + " ") })
	case reflect.Bool:
		return leaf(func(v reflect.Value) { v.SetBool(!v.Bool()) })
	case reflect.Int, reflect.Int64:
		return leaf(func(v reflect.Value) { v.SetInt(v.Int() + 1) })
	case reflect.Uint8:
		return leaf(func(v reflect.Value) { v.SetUint(v.Uint() + 1) })
	case reflect.Float64:
		return leaf(func(v reflect.Value) { v.SetFloat(v.Float() / 2) })
	case reflect.Func:
		return leaf(func(v reflect.Value) {
			v.Set(reflect.ValueOf(backfill.ChunkFunc(func(context.Context, *sqlx.Tx, []map[string]any) (int64, error) { return 0, nil })))
		})
	case reflect.Interface:
		return nil
	}
	t.Fatalf("%s: no change for a %s: teach the test this kind", path, typ.Kind())
	return nil
}

// Changing any field of the plan, of an operation or of a backfill job
// changes the definition hash; hot queries do not count.
func TestHashCoversEveryField(t *testing.T) {
	t.Parallel()
	base, err := rollout.DefinitionHash(hashPlan())
	require.NoError(t, err)
	again, err := rollout.DefinitionHash(hashPlan())
	require.NoError(t, err)
	require.Equal(t, base, again, "stable for an unchanged plan")
	require.True(t, strings.HasPrefix(base, "v2:"), base)

	seen := 0
	for _, c := range changes(t, reflect.TypeFor[rollout.Plan](), "Plan", func(r reflect.Value) reflect.Value { return r }) {
		p := hashPlan()
		c.apply(reflect.ValueOf(&p).Elem())
		h, err := rollout.DefinitionHash(p)
		require.NoError(t, err, c.path)
		if strings.HasPrefix(c.path, "Plan.HotQueries") {
			assert.Equal(t, base, h, "%s: hot queries are not part of the definition", c.path)
			continue
		}
		assert.NotEqual(t, base, h, "%s: a change of it must change the hash", c.path)
		seen++
	}
	for _, want := range []string{"Plan.Backfills[0].Func", "Plan.Backfills[0].Into.Key", "Plan.Backfills[0].Down[0].Expr",
		"Plan.Guardrails[0].Phases[0]", "Plan.Thresholds.Window", "Plan.Expand[0].Down", "Plan.Sunset.At", "Plan.Sunset.Warn", "Plan.RunWindows[0].Location"} {
		assert.True(t, slices.ContainsFunc(changes(t, reflect.TypeFor[rollout.Plan](), "Plan", func(r reflect.Value) reflect.Value { return r }),
			func(c change) bool { return c.path == want }), "the walk reaches %s", want)
	}
	t.Logf("%d plan fields changed", seen)

	for _, part := range []string{"ExpandOps", "ContractOps"} {
		for i, op := range hashOps() {
			with := func(o ddl.Op) rollout.Plan {
				p := hashPlan()
				if part == "ExpandOps" {
					p.ExpandOps = []ddl.Op{o}
				} else {
					p.ContractOps = []ddl.Op{o}
				}
				return p
			}
			opBase, err := rollout.DefinitionHash(with(op))
			require.NoError(t, err)
			require.NotEqual(t, base, opBase, "%s: adding %T changes the hash", part, op)
			typ := reflect.TypeOf(op)
			require.Positive(t, typ.NumField())
			for _, c := range changes(t, typ, typ.Name(), func(r reflect.Value) reflect.Value { return r }) {
				v := reflect.New(typ).Elem()
				v.Set(reflect.ValueOf(hashOps()[i]))
				c.apply(v)
				h, err := rollout.DefinitionHash(with(v.Interface().(ddl.Op)))
				require.NoError(t, err, c.path)
				assert.NotEqual(t, opBase, h, "%s %s: a change of it must change the hash", part, c.path)
			}
		}
	}
}

// hashOps names every operation type package ddl declares: a type with
// an Up method is an operation, and one added there must be added here.
func TestHashOpsListsEveryOperation(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "ddl", "*.go"))
	require.NoError(t, err)
	var declared []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || fn.Name.Name != "Up" {
				continue
			}
			recv := fn.Recv.List[0].Type
			if star, ok := recv.(*ast.StarExpr); ok {
				recv = star.X
			}
			if id, ok := recv.(*ast.Ident); ok && id.IsExported() {
				declared = append(declared, id.Name)
			}
		}
	}
	var listed []string
	for _, o := range hashOps() {
		listed = append(listed, reflect.TypeOf(o).Name())
	}
	slices.Sort(declared)
	slices.Sort(listed)
	require.NotEmpty(t, declared)
	assert.Equal(t, declared, listed)
}

// The legacy hash is the one builds before the versioned form recorded:
// this value was computed by that code (commit 350b592) for goldenPlan.
func TestLegacyHashIsTheOldOne(t *testing.T) {
	t.Parallel()
	h, err := rollout.LegacyHash(goldenPlan())
	require.NoError(t, err)
	assert.Equal(t, "056f5ee3709e2af877ef722eb393d0ea", h)
}

func goldenPlan() rollout.Plan {
	return rollout.Plan{
		Migration: "users_split_name",
		ExpandOps: []ddl.Op{
			ddl.AddColumn{Table: "users", Column: "given_name", Type: "text", Default: "''"},
			ddl.CreateIndex{Name: "users_given_name", Table: "users", Columns: []string{"given_name"}, Where: "given_name IS NOT NULL"},
		},
		Expand:      []rollout.Step{{SQL: "ALTER TABLE users ADD COLUMN family_name text", Down: "ALTER TABLE users DROP COLUMN family_name"}},
		Columns:     []rollout.Column{{Table: "users", Column: "given_name"}, {Table: "users", Column: "family_name"}},
		Backfills:   []backfill.Job{{Name: "users_split_name", Table: "users", Set: []backfill.Assign{{Column: "given_name", Expr: "split_part(full_name, ' ', 1)"}}}},
		ContractOps: []ddl.Op{ddl.DropColumn{Table: "users", Column: "full_name"}},
		Thresholds:  rollout.Thresholds{ShadowConsistency: 0.99, MinComparisons: 50, Window: 2 * time.Minute},
		Guardrails:  []rollout.Guardrail{{Phases: []ledger.Phase{ledger.Shadow}, MinConsistency: 0.95}},
	}
}

// A changed operation under the same name is a conflict: the fields its
// String leaves out (an index's columns, uniqueness and predicate, a
// column's default) included.
func TestChangedOperationConflicts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		require.NoError(t, rollout.Register(ctx, db, goldenPlan()))
		for name, change := range map[string]func(p *rollout.Plan){
			"index columns": func(p *rollout.Plan) {
				p.ExpandOps[1] = ddl.CreateIndex{Name: "users_given_name", Table: "users", Columns: []string{"given_name", "id"}, Where: "given_name IS NOT NULL"}
			},
			"index unique": func(p *rollout.Plan) {
				p.ExpandOps[1] = ddl.CreateIndex{Name: "users_given_name", Table: "users", Columns: []string{"given_name"}, Unique: true, Where: "given_name IS NOT NULL"}
			},
			"index predicate": func(p *rollout.Plan) {
				p.ExpandOps[1] = ddl.CreateIndex{Name: "users_given_name", Table: "users", Columns: []string{"given_name"}}
			},
			"column default": func(p *rollout.Plan) {
				p.ExpandOps[0] = ddl.AddColumn{Table: "users", Column: "given_name", Type: "text", Default: "'?'"}
			},
			"job down": func(p *rollout.Plan) {
				p.Backfills[0].Down = []backfill.Assign{{Column: "full_name", Expr: "given_name"}}
			},
		} {
			p := goldenPlan()
			change(&p)
			legacy, err := rollout.LegacyHash(p)
			require.NoError(t, err)
			old, err := rollout.LegacyHash(goldenPlan())
			require.NoError(t, err)
			if name != "job down" {
				require.Equal(t, old, legacy, "%s: the legacy hash cannot see this change", name)
			}
			require.ErrorIs(t, rollout.Register(ctx, db, p), rollout.ErrPlanConflict, name)
		}
		require.NoError(t, rollout.Register(ctx, db, goldenPlan()), "the same plan registers again")
	})
}

// A ledger row a build before the versioned hash registered keeps
// working: the same plan registers (and the legacy hash stays, so that
// instances of the old build still register too), a plan changed in a
// way the legacy hash cannot see is still refused through the stored
// definition, and a row without a stored definition is taken on its hash.
func TestLegacyHashInTheLedger(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		require.NoError(t, rollout.Register(ctx, db, goldenPlan()))
		const golden = "056f5ee3709e2af877ef722eb393d0ea" // what the old build recorded
		db.MustExecContext(ctx, `UPDATE schemashift_migrations SET definition_hash = $1 WHERE migration = $2`, golden, "users_split_name")
		stored := func() string {
			var h string
			require.NoError(t, db.GetContext(ctx, &h, `SELECT definition_hash FROM schemashift_migrations WHERE migration = $1`, "users_split_name"))
			return h
		}

		require.NoError(t, rollout.Register(ctx, db, goldenPlan()), "the same plan registers after the upgrade")
		_, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{goldenPlan()})
		require.NoError(t, err)
		assert.Equal(t, golden, stored(), "the legacy hash stays for the old build's instances")

		changed := goldenPlan()
		changed.ExpandOps[1] = ddl.CreateIndex{Name: "users_given_name", Table: "users", Columns: []string{"given_name", "id"}, Where: "given_name IS NOT NULL"}
		err = rollout.Register(ctx, db, changed)
		require.ErrorIs(t, err, rollout.ErrPlanConflict, "the stored definition tells what the legacy hash cannot")

		other := goldenPlan()
		other.Expand[0].Down = "ALTER TABLE users DROP COLUMN IF EXISTS family_name"
		require.ErrorIs(t, rollout.Register(ctx, db, other), rollout.ErrPlanConflict, "a change the legacy hash sees")

		db.MustExecContext(ctx, `UPDATE schemashift_migrations SET definition = NULL WHERE migration = $1`, "users_split_name")
		require.NoError(t, rollout.Register(ctx, db, goldenPlan()), "no stored definition: the legacy hash is all there is")
		assert.Equal(t, golden, stored())
	})
}
