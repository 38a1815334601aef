package rollout_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// hasColumn reports whether table has column, on either database.
func hasColumn(t *testing.T, db *sqlx.DB, table, column string) bool {
	t.Helper()
	cols, err := dbtest.Dialect(t, db).Columns(t.Context(), db, ident.Table{Name: table})
	require.NoError(t, err)
	for _, c := range cols {
		if c.Name == column {
			return true
		}
	}
	return false
}

// hasIndex reports whether table has an index named name, on either database.
func hasIndex(t *testing.T, db *sqlx.DB, table, name string) bool {
	t.Helper()
	idx, err := dbtest.Dialect(t, db).Indexes(t.Context(), db, ident.Table{Name: table})
	require.NoError(t, err)
	for _, i := range idx {
		if i.Name == name {
			return true
		}
	}
	return false
}

// lastEvent returns the newest audit event of the migration.
func lastEvent(t *testing.T, db *sqlx.DB) ledger.Event {
	t.Helper()
	ev, err := ledger.Audit(t.Context(), db, "users_split_name", 1)
	require.NoError(t, err)
	require.Len(t, ev, 1)
	return ev[0]
}

// refused asserts that the advance is refused by the named gate, with the
// reason in the audit trail.
func refused(t *testing.T, c *rollout.Coordinator, db *sqlx.DB, gate, reason string) {
	t.Helper()
	_, err := c.Advance(t.Context(), rollout.Request{Migration: "users_split_name", Actor: "ci"})
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	var re *rollout.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, gate, re.Gate)
	assert.Contains(t, re.Reason, reason)
	ev := lastEvent(t, db)
	assert.False(t, ev.Accepted)
	assert.Equal(t, "advance", ev.Kind)
	assert.Contains(t, ev.Reason, reason)
	assert.Equal(t, "ci", ev.Actor)
}

func advanced(t *testing.T, c *rollout.Coordinator, db *sqlx.DB, want ledger.Phase) {
	t.Helper()
	st, err := c.Advance(t.Context(), rollout.Request{Migration: "users_split_name", Actor: "ci", Reason: "gate met", Confirm: want == ledger.Contracted})
	require.NoError(t, err)
	assert.Equal(t, want, st.Phase)
	assert.Equal(t, want.Stage(), st.Stage)
	ev := lastEvent(t, db)
	assert.True(t, ev.Accepted)
	assert.Equal(t, want.String(), ev.ToPhase)
}

// Every gate refuses while its condition is unmet and passes once it is
// met, and each refusal's reason lands in the audit trail. The
// coordinator, the instance and the backfills it runs share a clock that
// moves only when the test moves it: windows pass at once, and each
// phase's time in the retrospective is exactly what the clock moved.
func TestGatesWalkThrough(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testGatesWalkThrough)
}

func testGatesWalkThrough(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	clk := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.UsersPlan(db)}, rollout.WithAgeOut(2*rollouttest.Window), rollout.WithClock(clk.Now))
	require.NoError(t, err)

	advanced(t, c, db, ledger.Expanded) // runs the expand

	// schema: the expand's columns must exist.
	db.MustExecContext(ctx, `ALTER TABLE users DROP COLUMN family_name`)
	refused(t, c, db, "schema", "users.family_name")
	db.MustExecContext(ctx, `ALTER TABLE users ADD COLUMN family_name text`)
	advanced(t, c, db, ledger.DualWrite)

	// fleet at dualwrite: seen, for a whole window, nowhere below.
	refused(t, c, db, "fleet at dualwrite", "no live instance")
	in := rollouttest.InstanceAt(t, db, "api-1", "users_split_name", clk.Now)
	rollouttest.Beat(t, in, flags.Off, flags.DualWrite)
	refused(t, c, db, "fleet at dualwrite", "not been seen for a whole window")
	clk.Add(rollouttest.Window)
	rollouttest.Beat(t, in, flags.DualWrite, flags.Off) // one request still at off (a percentage rollout)
	refused(t, c, db, "fleet at dualwrite", "api-1 (users-api v2) evaluated off")
	clk.Add(rollouttest.Window)
	rollouttest.Beat(t, in, flags.DualWrite)
	advanced(t, c, db, ledger.Backfill)

	// backfill done.
	refused(t, c, db, "backfill done", `backfill "users_split_name" is not started`)
	// A verification (its repair filling every row) before the job ran:
	// it passes, and is stale once the job finishes.
	_, err = c.VerifyBackfills(ctx, "users_split_name", backfill.VerifyOptions{Repair: true})
	require.NoError(t, err)
	reps, err := c.VerifyBackfills(ctx, "users_split_name", backfill.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, reps[0].Passed())
	clk.Add(time.Second) // the job finishes a second after that verification started
	require.NoError(t, c.RunBackfills(ctx, "users_split_name"))
	advanced(t, c, db, ledger.Verify)

	// verification passed.
	refused(t, c, db, "verification passed", "started before the job last finished")
	db.MustExecContext(ctx, `UPDATE users SET full_name = 'Changed Behind' WHERE id = 7`)
	reps, err = c.VerifyBackfills(ctx, "users_split_name", backfill.VerifyOptions{})
	require.NoError(t, err)
	require.False(t, reps[0].Passed())
	refused(t, c, db, "verification passed", "failed")
	reps, err = c.VerifyBackfills(ctx, "users_split_name", backfill.VerifyOptions{Repair: true})
	require.NoError(t, err)
	require.Equal(t, int64(1), reps[0].Repaired, reps[0].Summary())
	refused(t, c, db, "verification passed", "repaired rows; verify again")
	reps, err = c.VerifyBackfills(ctx, "users_split_name", backfill.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, reps[0].Passed())
	advanced(t, c, db, ledger.Shadow)

	// shadow consistency: enough comparisons, enough of them matching.
	refused(t, c, db, "shadow consistency", "0 comparisons since shadow began, 10 required")
	obs := in.Observer()
	compare := func(match bool, n int) {
		for range n {
			obs.ObserveComparison(ctx, comparison(match))
		}
		require.NoError(t, in.Beat(ctx))
	}
	compare(true, 8)
	compare(false, 2)
	refused(t, c, db, "shadow consistency", "consistency 0.8000 over 10 comparisons, 0.9000 required")
	compare(true, 20)
	advanced(t, c, db, ledger.Live)
	// The count starts again at live.
	refused(t, c, db, "shadow consistency", "0 comparisons since live began")
	compare(true, 10)
	advanced(t, c, db, ledger.Rampdown)

	// fleet at rampdown for a window.
	rollouttest.Beat(t, in, flags.Live)
	refused(t, c, db, "fleet at rampdown", "evaluated live")
	clk.Add(rollouttest.Window)
	rollouttest.Beat(t, in, flags.Rampdown)
	advanced(t, c, db, ledger.Complete)

	// contract: confirmation, then only complete and no old-path call for a window.
	_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "ci"})
	require.ErrorIs(t, err, rollout.ErrConfirmRequired)
	assert.False(t, lastEvent(t, db).Accepted)
	_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "ci", Confirm: true})
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, lastEvent(t, db).Reason, "evaluated rampdown")
	clk.Add(rollouttest.Window)
	in.Record("users_split_name", flags.Complete, true) // a call that still took the old path
	require.NoError(t, in.Beat(ctx))
	_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "ci", Confirm: true})
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	assert.Contains(t, lastEvent(t, db).Reason, "called the old path 0s ago")
	clk.Add(rollouttest.Window)
	rollouttest.Beat(t, in, flags.Complete)
	advanced(t, c, db, ledger.Contracted)
	assert.False(t, hasColumn(t, db, "users", "full_name"), "the contract ran")

	_, err = c.Rollback(ctx, rollout.Request{Migration: "users_split_name", Actor: "ci"})
	require.ErrorIs(t, err, rollout.ErrIrreversible)

	trail, err := ledger.Audit(ctx, db, "users_split_name", 0)
	require.NoError(t, err)
	var accepted []string
	for _, e := range trail {
		if e.Accepted && e.Kind == "advance" {
			accepted = append(accepted, e.ToPhase)
		}
	}
	assert.Equal(t, "expanded dualwrite backfill verify shadow live rampdown complete contracted", strings.Join(accepted, " "))

	// The retrospective tells the same story.
	retro, err := report.Retrospect(ctx, c, "users_split_name")
	require.NoError(t, err)
	assert.True(t, retro.Finished)
	var phases []string
	for _, p := range retro.Phases {
		phases = append(phases, p.Phase.String())
	}
	assert.Equal(t, "planned expanded dualwrite backfill verify shadow live rampdown complete contracted", strings.Join(phases, " "))
	// Each phase lasted what the clock moved in it, to the microsecond.
	for p, d := range map[ledger.Phase]time.Duration{ledger.Planned: 0, ledger.Expanded: 0, ledger.DualWrite: 2 * rollouttest.Window,
		ledger.Backfill: time.Second, ledger.Verify: 0, ledger.Rampdown: rollouttest.Window, ledger.Complete: 2 * rollouttest.Window, ledger.Contracted: 0} {
		assert.Equal(t, d, retro.Phases[p].Duration, "%s", p)
	}
	assert.True(t, retro.Phases[ledger.Contracted].Entered.Equal(clk.Now()), "%v", retro.Phases[ledger.Contracted].Entered)
	assert.GreaterOrEqual(t, retro.Refused, 14, "every refusal of the walk")
	require.Len(t, retro.Backfills, 1)
	assert.Equal(t, int64(500), retro.Backfills[0].RowsDone)
	assert.Equal(t, "passed", retro.Backfills[0].Verify)
	assert.Equal(t, int64(40), retro.Consistency.Matched+retro.Consistency.Mismatched)
	md := retro.Markdown()
	for _, want := range []string{"# Retrospective: users_split_name", "## Time per phase", "| contracted (now) |",
		"`users_split_name` (done): 500 rows walked", "## Shadow comparisons", "consistency 0.9500", "advance (refused)"} {
		assert.Contains(t, md, want)
	}
}

func TestRollbackAndForce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testRollbackAndForce)
}

func testRollbackAndForce(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.UsersPlan(db)})
	require.NoError(t, err)
	advanced(t, c, db, ledger.Expanded)
	advanced(t, c, db, ledger.DualWrite)

	_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "ops", Force: true})
	require.ErrorIs(t, err, rollout.ErrReasonRequired)
	for _, want := range []ledger.Phase{ledger.Backfill, ledger.Verify, ledger.Shadow, ledger.Live} {
		st, err := c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "ops", Force: true, Reason: "staging drill"})
		require.NoError(t, err)
		assert.Equal(t, want, st.Phase)
	}
	ev := lastEvent(t, db)
	assert.Equal(t, "force-advance", ev.Kind)
	assert.Equal(t, "forced: staging drill", ev.Reason)

	st, err := c.Rollback(ctx, rollout.Request{Migration: "users_split_name", Actor: "ops", Reason: "mismatches"})
	require.NoError(t, err)
	assert.Equal(t, ledger.Shadow, st.Phase)
	st, err = c.Rollback(ctx, rollout.Request{Migration: "users_split_name", Actor: "ops", ToOff: true, Reason: "incident"})
	require.NoError(t, err)
	assert.Equal(t, ledger.Expanded, st.Phase)
	assert.Equal(t, flags.Off, st.Stage)
	// At off, one more step back undoes the expand.
	st, err = c.Rollback(ctx, rollout.Request{Migration: "users_split_name", Actor: "ops", Reason: "abandon"})
	require.NoError(t, err)
	assert.Equal(t, ledger.Planned, st.Phase)
	assert.False(t, hasColumn(t, db, "users", "given_name") || hasColumn(t, db, "users", "family_name"), "the expand was undone")
	_, err = c.Rollback(ctx, rollout.Request{Migration: "users_split_name", Actor: "ops"})
	assert.ErrorContains(t, err, "nothing to roll back")

	// A stale version is a conflict.
	_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "ops", Version: 1})
	require.ErrorIs(t, err, rollout.ErrConflict)
	assert.False(t, lastEvent(t, db).Accepted)
}

func TestPlanConflictAndUnknownMigration(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testPlanConflictAndUnknownMigration)
}

func testPlanConflictAndUnknownMigration(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	_, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.UsersPlan(db)})
	require.NoError(t, err)
	changed := rollouttest.UsersPlan(db)
	changed.Contract = []rollout.Step{{SQL: `ALTER TABLE users DROP COLUMN full_name CASCADE`}}
	_, err = rollout.NewCoordinator(ctx, db, []rollout.Plan{changed})
	require.ErrorIs(t, err, rollout.ErrPlanConflict)
	_, err = rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.UsersPlan(db)})
	require.NoError(t, err, "the same plan registers again")

	c, err := rollout.NewCoordinator(ctx, db, nil)
	require.NoError(t, err)
	_, err = c.Advance(ctx, rollout.Request{Migration: "nope"})
	require.ErrorIs(t, err, ledger.ErrUnknownMigration)
	_, err = ledger.Get(ctx, db, "nope")
	require.ErrorIs(t, err, ledger.ErrUnknownMigration)
	_, err = rollout.NewCoordinator(ctx, db, []rollout.Plan{{}})
	require.ErrorIs(t, err, rollout.ErrInvalidPlan)
}

var _ = context.Background

func TestPlanWithDDLOpsAndLint(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testPlanWithDDLOpsAndLint)
}

func testPlanWithDDLOpsAndLint(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	plan := rollout.Plan{Migration: "users_email_index",
		ExpandOps: []ddl.Op{
			ddl.AddColumn{Table: "users", Column: "email", Type: "text"},
			ddl.CreateIndex{Name: "users_email", Table: "users", Columns: []string{"email"}},
		},
		Columns: []rollout.Column{{Table: "users", Column: "email"}},
	}
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	require.NoError(t, err)
	has := func() (col, idx bool) {
		return hasColumn(t, db, "users", "email"), hasIndex(t, db, "users", "users_email")
	}
	for range 2 { // expand, undo, expand again
		_, err = c.Advance(ctx, rollout.Request{Migration: "users_email_index", Actor: "t"})
		require.NoError(t, err)
		col, idx := has()
		assert.True(t, col && idx, "the expand's operations ran")
		_, err = c.Rollback(ctx, rollout.Request{Migration: "users_email_index", Actor: "t"})
		require.NoError(t, err)
		col, idx = has()
		assert.False(t, col || idx, "undoing the expand reverted them")
	}

	// What SQLite could not do safely is in the audit trail; PostgreSQL
	// had nothing to note.
	trail, err := ledger.Audit(ctx, db, "users_email_index", 0)
	require.NoError(t, err)
	var notes []string
	for _, e := range trail {
		if e.Kind == "ddl-note" {
			notes = append(notes, e.Reason)
		}
	}
	if db.DriverName() == "sqlite" {
		require.Len(t, notes, 4, "the index build of each expand, the column drop of each undo")
		assert.Contains(t, notes[0], "up users_email_index: sqlite: CREATE INDEX without CONCURRENTLY")
		assert.Contains(t, notes[1], "down users_email_index: sqlite: DROP COLUMN rewrites the table")
	} else {
		assert.Empty(t, notes)
	}

	unsafe := rollout.Plan{Migration: "unsafe", Expand: []rollout.Step{{SQL: `CREATE INDEX users_full ON users (full_name)`}}}
	_, err = rollout.NewCoordinator(ctx, db, []rollout.Plan{unsafe})
	require.ErrorIs(t, err, rollout.ErrInvalidPlan)
	assert.Contains(t, err.Error(), "index-not-concurrent")
	unsafe.Expand[0].SQL = "-- schemashift:ignore index-not-concurrent\nCREATE INDEX users_full ON users (full_name)"
	_, err = rollout.NewCoordinator(ctx, db, []rollout.Plan{unsafe})
	require.NoError(t, err, "a silenced rule is the author's decision")
}

// A process without the plans' code reads them back from the ledger and
// coordinates them: gates, DDL operations and backfills included.
func TestOpenReadsPlansFromTheLedger(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testOpenReadsPlansFromTheLedger)
}

func testOpenReadsPlansFromTheLedger(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	rollouttest.UsersDB(t, db)
	ctx := t.Context()
	plan := rollouttest.UsersPlan(db)
	plan.ExpandOps = []ddl.Op{ddl.CreateIndex{Name: "users_full_name", Table: "users", Columns: []string{"full_name"}}}
	_, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	require.NoError(t, err)

	c, err := rollout.Open(ctx, db)
	require.NoError(t, err)
	assert.Equal(t, []string{"users_split_name"}, c.Migrations())
	got, err := c.Plan("users_split_name")
	require.NoError(t, err)
	assert.Equal(t, plan.ExpandOps, got.ExpandOps)
	assert.Equal(t, plan.Backfills[0].Set, got.Backfills[0].Set)
	assert.Equal(t, plan.Thresholds, got.Thresholds)

	advanced(t, c, db, ledger.Expanded)
	assert.True(t, hasIndex(t, db, "users", "users_full_name"))
	advanced(t, c, db, ledger.DualWrite) // the schema gate reads the stored columns
	refused(t, c, db, "fleet at dualwrite", "no live instance")
}
