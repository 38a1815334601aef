package rollout_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// namedRows counts the rows with a name on each side of the worked
// example.
func namedRows() rollout.Aggregate {
	return rollout.Aggregate{Name: "named rows", Kind: rollout.AggregateCount,
		Old: rollout.AggregateSide{Table: "users", Column: "full_name"},
		New: rollout.AggregateSide{Table: "users", Column: "given_name"}}
}

func refusedGate(t *testing.T, err error) *rollout.RefusedError {
	t.Helper()
	var refused *rollout.RefusedError
	require.True(t, errors.As(err, &refused), "%v", err)
	return refused
}

func lastComparison(t *testing.T, c *rollout.Coordinator, migration string) *rollout.AggregateComparison {
	t.Helper()
	cmp, err := c.LastAggregateComparison(t.Context(), migration)
	require.NoError(t, err)
	require.NotNil(t, cmp)
	return cmp
}

// The users.full_name split: the rows with a name are counted on the old
// side when the expand is applied, and again on both sides before reads
// switch and before the contract. Agreeing, the gate passes on to the
// next condition (shadow consistency); a name lost on the new side fails
// it, naming the aggregate and the figures, at live and at contracted;
// each comparison is in the audit trail; a check reports the same and
// records nothing.
func TestAggregatesUsersSplitName(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		rollouttest.UsersDB(t, db)
		plan := rollouttest.UsersPlan(db)
		plan.Aggregates = []rollout.Aggregate{namedRows()}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
		require.NoError(t, err)
		m := plan.Migration

		st, err := c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		require.NoError(t, err)
		require.Equal(t, ledger.Expanded, st.Phase)
		events, err := ledger.Audit(ctx, db, m, 10)
		require.NoError(t, err)
		require.True(t, hasEvent(events, "aggregates-snapshot", `named rows = 500`), "%+v", events)

		// Rows written after the expand: the snapshot stays what it was.
		db.MustExecContext(ctx, `INSERT INTO users (id, full_name) VALUES (501, 'Grace Hopper')`)
		db.MustExecContext(ctx, `UPDATE users SET given_name = substr(full_name, 1, 3), family_name = 'x'`)
		rollouttest.Forced(t, c, m, 4) // to shadow

		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		assert.Equal(t, "shadow consistency", refusedGate(t, err).Gate, "the aggregates agree: the next condition decides")
		cmp := lastComparison(t, c, m)
		assert.True(t, cmp.Passed)
		assert.Equal(t, "live", cmp.Phase)
		require.Len(t, cmp.Aggregates, 1)
		g := cmp.Aggregates[0].Groups
		require.Len(t, g, 1)
		assert.Equal(t, rollout.AggregateGroup{Old: "501", New: "501", Snapshot: "500", Difference: "0", Within: true, SnapshotDifference: "1"}, g[0])
		assert.NotNil(t, cmp.Aggregates[0].SnapshotAt)

		db.MustExecContext(ctx, `UPDATE users SET given_name = NULL WHERE id = 7`)
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		refused := refusedGate(t, err)
		assert.Equal(t, "aggregates", refused.Gate)
		assert.Equal(t, `aggregate "named rows" (count): new 500 against old 501, difference -1, allowed exact`, refused.Reason)
		cmp = lastComparison(t, c, m)
		assert.False(t, cmp.Passed)
		assert.Equal(t, "-1", cmp.Aggregates[0].Worst.Difference)

		// A check computes nothing (the board polls it) and reports the
		// last advance's comparison.
		r, err := c.Check(ctx, m)
		require.NoError(t, err)
		assert.Equal(t, "aggregates", r.Gate)
		assert.Equal(t, refused.Reason+" (at the last advance; the next compares again)", r.Reason)

		// At the contract too.
		rollouttest.Forced(t, c, m, 3) // live, rampdown, complete
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci", Confirm: true})
		refused = refusedGate(t, err)
		assert.Equal(t, "aggregates", refused.Gate)
		assert.Equal(t, ledger.Contracted, refused.To)
		assert.Equal(t, "contracted", lastComparison(t, c, m).Phase)
		db.MustExecContext(ctx, `UPDATE users SET given_name = 'Ada' WHERE id = 7`)
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci", Confirm: true})
		assert.Equal(t, "fleet only complete", refusedGate(t, err).Gate)
		assert.True(t, lastComparison(t, c, m).Passed)

		events, err = ledger.Audit(ctx, db, m, 100)
		require.NoError(t, err)
		n := 0
		for _, e := range events {
			if e.Kind == "aggregates" {
				n++
			}
		}
		assert.Equal(t, 4, n, "each advance's comparison is recorded, the check's is not")
	})
}

func hasEvent(events []ledger.Event, kind, reason string) bool {
	for _, e := range events {
		if e.Kind == kind && strings.Contains(e.Reason, reason) {
			return true
		}
	}
	return false
}

// ordersPlanWith moves orders.amount_cents to order_totals.amount and
// compares the sums of the amounts per currency, within tol (in cents).
func ordersPlanWith(tol rollout.Tolerance) rollout.Plan {
	return rollout.Plan{Migration: "orders_move_amount",
		Expand: []rollout.Step{{SQL: `CREATE TABLE order_totals (order_id bigint PRIMARY KEY, amount numeric, currency text)`,
			Down: `DROP TABLE order_totals`}},
		Thresholds: rollout.Thresholds{Window: rollouttest.Window, MinComparisons: 1},
		Aggregates: []rollout.Aggregate{{Name: "amounts", Kind: rollout.AggregateSum, Tolerance: tol,
			Old: rollout.AggregateSide{Table: "orders", Column: "amount_cents", GroupBy: "currency"},
			New: rollout.AggregateSide{Table: "order_totals", Expr: "round(amount * 100)", GroupBy: "currency"}}},
	}
}

// The orders move: the sums of the amounts per currency, the NULL
// currency a group of its own, agree once the rows are moved; an amount
// changed on the new side by less than the tolerance passes, by more it
// fails, naming the currency.
func TestAggregatesOrdersMove(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE orders (id bigint PRIMARY KEY, amount_cents integer, currency text)`)
		db.MustExecContext(ctx, `INSERT INTO orders VALUES (1, 1234, 'EUR'), (2, 100, 'EUR'), (3, 999, 'USD'), (4, 5, NULL), (5, 1, 'USD')`)
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{ordersPlanWith(rollout.Tolerance{Absolute: 100})})
		require.NoError(t, err)
		m := "orders_move_amount"
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		require.NoError(t, err)
		db.MustExecContext(ctx, `INSERT INTO order_totals SELECT id, amount_cents / 100.0, currency FROM orders`)
		rollouttest.Forced(t, c, m, 4)

		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		assert.Equal(t, "shadow consistency", refusedGate(t, err).Gate)
		cmp := lastComparison(t, c, m)
		require.True(t, cmp.Passed, "%+v", cmp)
		groups := cmp.Aggregates[0].Groups
		require.Len(t, groups, 3)
		assert.Equal(t, []string{`"EUR"`, `"USD"`, "NULL"}, []string{groups[0].Label(), groups[1].Label(), groups[2].Label()})
		assert.Equal(t, "1334", groups[0].Old)
		assert.Equal(t, "1334", groups[0].Snapshot)
		for _, g := range groups {
			assert.True(t, g.Within, "%+v", g)
		}

		// 50 cents off: within a dollar.
		db.MustExecContext(ctx, `UPDATE order_totals SET amount = 10.49 WHERE order_id = 3`)
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		assert.Equal(t, "shadow consistency", refusedGate(t, err).Gate)
		// 5 dollars off in USD, 1 cent in EUR: the worst group is USD.
		db.MustExecContext(ctx, `UPDATE order_totals SET amount = 14.99 WHERE order_id = 3`)
		db.MustExecContext(ctx, `UPDATE order_totals SET amount = 12.35 WHERE order_id = 1`)
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		refused := refusedGate(t, err)
		assert.Equal(t, "aggregates", refused.Gate)
		assert.Contains(t, refused.Reason, `aggregate "amounts" (sum): group "USD": new 1500`)
		assert.Contains(t, refused.Reason, "against old 1000, difference 500")
		assert.Contains(t, refused.Reason, "allowed ±100")
		cmp = lastComparison(t, c, m)
		assert.False(t, cmp.Passed)
		assert.Equal(t, "USD", cmp.Aggregates[0].Worst.Group)

		// Rows lost on the new side: the NULL currency's only one (5
		// cents, within the tolerance, its group gone) and 12.34 EUR.
		db.MustExecContext(ctx, `UPDATE order_totals SET amount = 9.99 WHERE order_id = 3`)
		db.MustExecContext(ctx, `DELETE FROM order_totals WHERE order_id IN (1, 4)`)
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		refused = refusedGate(t, err)
		assert.Equal(t, "aggregates", refused.Gate)
		want := `aggregate "amounts" (sum): group "EUR": new 100 against old 1334, difference -1234, allowed ±100`
		if dbtest.IsSQLite(t, db) { // its numeric column keeps a real, spelt with a decimal
			want = `aggregate "amounts" (sum): group "EUR": new 100.0 against old 1334, difference -1234.0, allowed ±100`
		}
		assert.Equal(t, want, refused.Reason)
		cmp = lastComparison(t, c, m)
		null := cmp.Aggregates[0].Groups[2]
		assert.Equal(t, rollout.AggregateGroup{Null: true, Old: "5", Snapshot: "5", Difference: "-5", Within: true, SnapshotDifference: "-5"}, null)
	})
}

// A relative tolerance: 1% of 200 rows lets 2 through, not 3.
func TestAggregateRelativeTolerance(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE a (id integer PRIMARY KEY)`)
		db.MustExecContext(ctx, `CREATE TABLE b (id integer PRIMARY KEY)`)
		db.MustExecContext(ctx, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200)
			INSERT INTO a SELECT i FROM s`)
		db.MustExecContext(ctx, `INSERT INTO b SELECT id FROM a WHERE id > 2`)
		plan := rollout.Plan{Migration: "ab", Thresholds: rollout.Thresholds{Window: rollouttest.Window, MinComparisons: 1},
			Aggregates: []rollout.Aggregate{{Name: "rows", Kind: rollout.AggregateCountDistinct, Tolerance: rollout.Tolerance{Relative: 0.01},
				Old: rollout.AggregateSide{Table: "a", Column: "id"}, New: rollout.AggregateSide{Table: "b", Column: "id"}}}}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
		require.NoError(t, err)
		rollouttest.Forced(t, c, "ab", 5)
		_, err = c.Advance(ctx, rollout.Request{Migration: "ab", Actor: "ci"})
		assert.Equal(t, "shadow consistency", refusedGate(t, err).Gate)
		cmp := lastComparison(t, c, "ab")
		assert.Nil(t, cmp.Aggregates[0].SnapshotAt, "the expand was forced: no snapshot")
		db.MustExecContext(ctx, `DELETE FROM b WHERE id = 3`)
		_, err = c.Advance(ctx, rollout.Request{Migration: "ab", Actor: "ci"})
		refused := refusedGate(t, err)
		assert.Equal(t, "aggregates", refused.Gate)
		assert.Equal(t, `aggregate "rows" (count distinct): new 197 against old 200, difference -3, allowed ±1%`, refused.Reason)
	})
}

// When the old side is gone, the new side is held to the snapshot.
func TestAggregateAgainstSnapshotWhenOldGone(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE olds (id integer PRIMARY KEY)`)
		db.MustExecContext(ctx, `INSERT INTO olds VALUES (1), (2), (3)`)
		plan := rollout.Plan{Migration: "gone", Thresholds: rollout.Thresholds{Window: rollouttest.Window, MinComparisons: 1},
			Expand: []rollout.Step{{SQL: `CREATE TABLE news (id integer PRIMARY KEY)`, Down: `DROP TABLE news`}},
			Aggregates: []rollout.Aggregate{{Name: "rows", Kind: rollout.AggregateCount,
				Old: rollout.AggregateSide{Table: "olds"}, New: rollout.AggregateSide{Table: "news"}}}}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
		require.NoError(t, err)
		_, err = c.Advance(ctx, rollout.Request{Migration: "gone", Actor: "ci"})
		require.NoError(t, err)
		db.MustExecContext(ctx, `INSERT INTO news VALUES (1), (2)`)
		db.MustExecContext(ctx, `DROP TABLE olds`)
		rollouttest.Forced(t, c, "gone", 4)
		_, err = c.Advance(ctx, rollout.Request{Migration: "gone", Actor: "ci"})
		refused := refusedGate(t, err)
		assert.Equal(t, "aggregates", refused.Gate)
		assert.Equal(t, `aggregate "rows" (count): new 2 against snapshot 3, difference -1, allowed exact`, refused.Reason)
		db.MustExecContext(ctx, `INSERT INTO news VALUES (3)`)
		_, err = c.Advance(ctx, rollout.Request{Migration: "gone", Actor: "ci"})
		assert.Equal(t, "shadow consistency", refusedGate(t, err).Gate)
		assert.Equal(t, "snapshot", lastComparison(t, c, "gone").Aggregates[0].Against)
	})
}

// Names are quoted, never spliced: a table whose name holds quotes and a
// semicolon is counted as itself; a name that is not a table refuses
// the expand (the old side is not there to snapshot), and touches
// nothing.
func TestAggregateHostileNames(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE "we""ird; name" ("co""l" integer)`)
		db.MustExecContext(ctx, `INSERT INTO "we""ird; name" VALUES (1), (2), (NULL)`)
		db.MustExecContext(ctx, `CREATE TABLE victim (id integer)`)
		plans := []rollout.Plan{
			{Migration: "weird", Aggregates: []rollout.Aggregate{{Name: "x", Kind: rollout.AggregateCount,
				Old: rollout.AggregateSide{Table: `we"ird; name`, Column: `co"l`}, New: rollout.AggregateSide{Table: `we"ird; name`}}}},
			{Migration: "injected", Aggregates: []rollout.Aggregate{{Name: "x", Kind: rollout.AggregateCount,
				Old: rollout.AggregateSide{Table: `victim; DROP TABLE victim; --`}, New: rollout.AggregateSide{Table: "victim"}}}},
		}
		c, err := rollout.NewCoordinator(ctx, db, plans)
		require.NoError(t, err)
		_, err = c.Advance(ctx, rollout.Request{Migration: "weird", Actor: "ci"})
		require.NoError(t, err)
		events, err := ledger.Audit(ctx, db, "weird", 10)
		require.NoError(t, err)
		assert.True(t, hasEvent(events, "aggregates-snapshot", "x = 2"), "%+v", events)

		_, err = c.Advance(ctx, rollout.Request{Migration: "injected", Actor: "ci"})
		refused := refusedGate(t, err)
		assert.Equal(t, "aggregates", refused.Gate)
		assert.Contains(t, refused.Reason, "is not there to snapshot")
		var n int
		require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM victim`))
	})
}

// Two tables of one name in two schemas: each side counts the one it
// names, and an unqualified name the one the search path finds.
func TestAggregateSchemaCollision(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE SCHEMA a; CREATE SCHEMA b; CREATE TABLE a.items (id integer); CREATE TABLE b.items (id integer);
		CREATE TABLE public.items (id integer); INSERT INTO a.items VALUES (1); INSERT INTO b.items VALUES (1), (2); INSERT INTO public.items VALUES (1), (2), (3)`)
	plan := rollout.Plan{Migration: "schemas", Thresholds: rollout.Thresholds{Window: rollouttest.Window, MinComparisons: 1},
		Aggregates: []rollout.Aggregate{
			{Name: "a vs b", Kind: rollout.AggregateCount, Old: rollout.AggregateSide{Table: "a.items"}, New: rollout.AggregateSide{Table: "b.items"}},
			{Name: "plain vs public", Kind: rollout.AggregateCount, Old: rollout.AggregateSide{Table: "items"}, New: rollout.AggregateSide{Table: "public.items"}},
		}}
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	require.NoError(t, err)
	_, err = c.Advance(ctx, rollout.Request{Migration: "schemas", Actor: "ci"})
	require.NoError(t, err)
	rollouttest.Forced(t, c, "schemas", 4)
	_, err = c.Advance(ctx, rollout.Request{Migration: "schemas", Actor: "ci"})
	refused := refusedGate(t, err)
	assert.Equal(t, `aggregate "a vs b" (count): new 2 against old 1, difference 1, allowed exact`, refused.Reason)
	cmp := lastComparison(t, c, "schemas")
	assert.True(t, cmp.Aggregates[1].Passed)
	assert.Equal(t, "3", cmp.Aggregates[1].Groups[0].New)
}

// Each side's statement is read-only and timed: an expression whose
// function writes is refused by the database, one that runs past the
// timeout is stopped; the advance fails, the ledger does not move, and
// the transaction it ran in is not left read-only.
func TestAggregateReadOnlyAndTimed(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE TABLE t (id integer); INSERT INTO t VALUES (1); CREATE TABLE log (id integer);
		CREATE FUNCTION bump() RETURNS integer LANGUAGE sql VOLATILE AS 'INSERT INTO log VALUES (1) RETURNING 1'`)
	side := rollout.AggregateSide{Table: "t", Column: "id"}
	plans := []rollout.Plan{
		{Migration: "writes", Aggregates: []rollout.Aggregate{{Name: "w", Kind: rollout.AggregateSum, Old: rollout.AggregateSide{Table: "t", Expr: "bump()"}, New: side}}},
		{Migration: "slow", Aggregates: []rollout.Aggregate{{Name: "s", Kind: rollout.AggregateCount, Timeout: 50 * time.Millisecond,
			Old: rollout.AggregateSide{Table: "t", Expr: "pg_sleep(5)"}, New: side}}},
	}
	c, err := rollout.NewCoordinator(ctx, db, plans)
	require.NoError(t, err)
	_, err = c.Advance(ctx, rollout.Request{Migration: "writes", Actor: "ci"})
	require.ErrorContains(t, err, "read-only transaction")
	start := time.Now()
	_, err = c.Advance(ctx, rollout.Request{Migration: "slow", Actor: "ci"})
	require.ErrorContains(t, err, "statement timeout")
	assert.Less(t, time.Since(start), 4*time.Second)
	for _, m := range []string{"writes", "slow"} {
		st, err := ledger.Get(ctx, db, m)
		require.NoError(t, err)
		assert.Equal(t, ledger.Planned, st.Phase)
	}
	var n int
	require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM log`))
	assert.Zero(t, n)
}

// A plan whose aggregates could not be computed as declared is refused
// before it is registered: an expression smuggling a subquery, a second
// statement, a comment or a second expression, a side naming both a
// column and an expression, grouping on one side only, a tolerance that
// is not a number.
func TestAggregatePlanRefused(t *testing.T) {
	t.Parallel()
	ok := namedRows()
	cases := map[string]func(a *rollout.Aggregate){
		"no name":          func(a *rollout.Aggregate) { a.Name = " " },
		"kind":             func(a *rollout.Aggregate) { a.Kind = "avg" },
		"subquery":         func(a *rollout.Aggregate) { a.New.Expr, a.New.Column = "(SELECT count(*) FROM users)", "" },
		"exists subquery":  func(a *rollout.Aggregate) { a.New.Expr, a.New.Column = "EXISTS (SELECT 1)", "" },
		"second statement": func(a *rollout.Aggregate) { a.New.Expr, a.New.Column = "1; DELETE FROM users", "" },
		"closing paren": func(a *rollout.Aggregate) {
			a.New.Expr, a.New.Column = "given_name) FROM users; DROP TABLE users; SELECT count(1", ""
		},
		"comment":           func(a *rollout.Aggregate) { a.New.Expr, a.New.Column = "given_name -- x", "" },
		"two expressions":   func(a *rollout.Aggregate) { a.New.Expr, a.New.Column = "given_name, family_name", "" },
		"clause":            func(a *rollout.Aggregate) { a.New.Expr, a.New.Column = "given_name FROM users", "" },
		"both":              func(a *rollout.Aggregate) { a.New.Expr = "given_name" },
		"sum of nothing":    func(a *rollout.Aggregate) { a.Kind, a.New.Column = rollout.AggregateSum, "" },
		"one side grouped":  func(a *rollout.Aggregate) { a.Old.GroupBy = "id" },
		"nan":               func(a *rollout.Aggregate) { a.Tolerance.Absolute = math.NaN() },
		"negative relative": func(a *rollout.Aggregate) { a.Tolerance.Relative = -0.1 },
		"empty table":       func(a *rollout.Aggregate) { a.Old.Table = "" },
		"empty schema":      func(a *rollout.Aggregate) { a.Old.Table = ".users" },
		"long column":       func(a *rollout.Aggregate) { a.Old.Column = strings.Repeat("x", 64) },
		"nul group":         func(a *rollout.Aggregate) { a.Old.GroupBy, a.New.GroupBy = "a\x00b", "a" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := ok
			mutate(&a)
			p := rollout.Plan{Migration: "m", Aggregates: []rollout.Aggregate{a}}
			err := p.Normalize()
			require.ErrorIs(t, err, rollout.ErrInvalidPlan)
			assert.Contains(t, err.Error(), "aggregate 1")
		})
	}
	t.Run("duplicate", func(t *testing.T) {
		t.Parallel()
		p := rollout.Plan{Migration: "m", Aggregates: []rollout.Aggregate{ok, ok}}
		require.ErrorIs(t, p.Normalize(), rollout.ErrInvalidPlan)
	})
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		a := ok
		a.New.Expr, a.New.Column = "NULLIF(given_name, '')", ""
		p := rollout.Plan{Migration: "m", Aggregates: []rollout.Aggregate{a}}
		require.NoError(t, p.Normalize())
	})
}

// The aggregates are part of the definition: stored with the plan (a
// coordinator opened from the ledger compares them alike) and hashed, so
// that a changed tolerance is a changed plan.
func TestAggregatesInDefinition(t *testing.T) {
	t.Parallel()
	base := rollout.Plan{Migration: "m", Aggregates: []rollout.Aggregate{namedRows()}}
	h1, err := base.DefinitionHash()
	require.NoError(t, err)
	looser := base
	looser.Aggregates = []rollout.Aggregate{namedRows()}
	looser.Aggregates[0].Tolerance.Absolute = 1
	h2, err := looser.DefinitionHash()
	require.NoError(t, err)
	none := rollout.Plan{Migration: "m"}
	h3, err := none.DefinitionHash()
	require.NoError(t, err)
	assert.NotEqual(t, h1, h2)
	assert.NotEqual(t, h1, h3)

	db := dbtest.SQLite(t)
	ctx := t.Context()
	_, err = rollout.NewCoordinator(ctx, db, []rollout.Plan{base})
	require.NoError(t, err)
	_, err = rollout.NewCoordinator(ctx, db, []rollout.Plan{looser})
	require.ErrorIs(t, err, rollout.ErrPlanConflict)
	opened, err := rollout.Open(ctx, db)
	require.NoError(t, err)
	p, err := opened.Plan("m")
	require.NoError(t, err)
	assert.Equal(t, base.Aggregates, p.Aggregates)
}

// A check (readiness, status, the board's every poll) runs no aggregate
// (each is a pass over a whole table): before any advance into live it
// says nothing of a disagreement it has not computed; after an advance
// found one, it reports that comparison, and the advance after the data
// agree again passes.
func TestAggregateCheckComputesNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		rollouttest.UsersDB(t, db)
		plan := rollouttest.UsersPlan(db)
		plan.Aggregates = []rollout.Aggregate{namedRows()}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
		require.NoError(t, err)
		m := plan.Migration
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		require.NoError(t, err)
		db.MustExecContext(ctx, `UPDATE users SET given_name = substr(full_name, 1, 3), family_name = 'x' WHERE id <> 7`)
		rollouttest.Forced(t, c, m, 4) // to shadow

		r, err := c.Check(ctx, m)
		require.NoError(t, err)
		assert.NotEqual(t, "aggregates", r.Gate, "a check computed the aggregates: %+v", r)
		none, err := c.LastAggregateComparison(ctx, m)
		require.NoError(t, err)
		assert.Nil(t, none)

		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		assert.Equal(t, "aggregates", refusedGate(t, err).Gate)
		r, err = c.Check(ctx, m)
		require.NoError(t, err)
		assert.Equal(t, "aggregates", r.Gate)
		assert.Contains(t, r.Reason, "at the last advance")

		db.MustExecContext(ctx, `UPDATE users SET given_name = 'Ada' WHERE id = 7`)
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
		assert.Equal(t, "shadow consistency", refusedGate(t, err).Gate)
		r, err = c.Check(ctx, m)
		require.NoError(t, err)
		assert.NotEqual(t, "aggregates", r.Gate)
	})
}
