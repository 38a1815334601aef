package rollout_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

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

// A tripped guardrail refuses every advance until it is acknowledged: no
// wait makes it pass, so AdvanceWhenMet ends at once with the guardrail's
// refusal. (Its check once ignored the trip and saw the gate met, and the
// advance's refusal was waited out like a flickering gate: with a clock
// that stands still, until the context ended, a refused advance recorded
// at every poll.)
func TestAdvanceWhenMetEndsOnATrippedGuardrail(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clk := rollouttest.NewClock()
		p := rollouttest.LedgerPlan()
		p.Guardrails = []rollout.Guardrail{{MinConsistency: 0.9, MinSamples: 1}}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{p}, rollout.WithClock(clk.Now))
		require.NoError(t, err)
		rollouttest.Forced(t, c, p.Migration, 5) // expanded … shadow
		in := rollouttest.InstanceAt(t, db, "a", p.Migration, clk.Now)
		in.Observer().ObserveComparison(ctx, dualwrite.Comparison{Migration: p.Migration, Stage: flags.Shadow, Match: false})
		require.NoError(t, in.Beat(ctx))
		trips, err := c.Guard(ctx)
		require.NoError(t, err)
		require.Len(t, trips, 1)
		st, err := ledger.Get(ctx, db, p.Migration)
		require.NoError(t, err)
		require.Equal(t, ledger.Verify, st.Phase)
		require.NotEmpty(t, st.Tripped)

		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		start := time.Now()
		_, _, err = c.AdvanceWhenMet(short, rollout.Request{Migration: p.Migration, Actor: "t"}, 10*time.Millisecond, time.Hour)
		elapsed := time.Since(start)
		events, aerr := ledger.Audit(ctx, db, p.Migration, 10000)
		require.NoError(t, aerr)
		refusals := 0
		for _, e := range events {
			if e.Kind == "advance" && !e.Accepted {
				refusals++
			}
		}
		var re *rollout.RefusedError
		require.False(t, errors.Is(err, context.DeadlineExceeded),
			"AdvanceWhenMet waited a tripped guardrail out until its context ended (%v, %d refused advances recorded): %v", elapsed, refusals, err)
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "guardrail", re.Gate)
		assert.LessOrEqual(t, refusals, 1, "one refusal in the audit trail, not one per poll")
	})
}

// One reading of the clock, one decision: the contract's ddl operations
// run only as part of a transition that is then made. (They were once
// decided by a check of their own at one reading of the clock, and the
// transition by the ledger transaction's gate at a later one. With a
// clock that moves a microsecond at each reading, as a real one does, the
// instance's last call at complete is inside the window at the first and
// outside it at the second: the operations run (full_name is dropped),
// and the transition was refused: the migration stayed at complete with
// its old column gone, and no irreversible step was recorded.)
func TestContractOpsRunOnlyWhenTheTransitionIsMade(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clk, p, _ := atComplete(t, db)
		in := rollouttest.InstanceAt(t, db, "a", p.Migration, clk.Now)
		rollouttest.Beat(t, in, flags.Complete) // first seen
		clk.Add(rollouttest.Window / 2)
		last := clk.Now()
		rollouttest.Beat(t, in, flags.Complete) // its last call at complete

		// The check's reading is the first of the transition on
		// PostgreSQL, the second on SQLite (after the lease's).
		leaseReads := 0
		if db.DriverName() == "sqlite" {
			leaseReads = 1
		}
		checkAt := last.Add(rollouttest.Window - time.Microsecond) // the call still in the window
		clk.Add(checkAt.Add(-10 * time.Second).Sub(clk.Now()))
		require.NoError(t, in.Beat(ctx)) // idle since: live, no call
		clk.Add(checkAt.Add(-time.Duration(leaseReads+1) * time.Microsecond).Sub(clk.Now()))
		ticking := func() time.Time { return clk.Add(time.Microsecond) }
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{p}, rollout.WithClock(ticking))
		require.NoError(t, err)
		clk.Add(checkAt.Add(-time.Duration(leaseReads+1) * time.Microsecond).Sub(clk.Now()))
		_, err = c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t", Confirm: true})
		st, gerr := ledger.Get(ctx, db, p.Migration)
		require.NoError(t, gerr)
		dropped := !hasColumn(t, db, "users", "full_name")
		assert.Equal(t, st.Phase == ledger.Contracted, dropped,
			"the contract's operation ran (full_name dropped: %v) but the ledger says %s; the advance: %v", dropped, st.Phase, err)
	})
}

// A heartbeat committed while a contract runs (here, sent from the
// coordinator's clock at a later reading) shows an instance at rampdown:
// the contract, decided, is made all the same, and no rollback towards
// off (where old code reads full_name) follows a dropped column. (The
// operations' own check and the ledger transaction's gate once read the
// fleet at two moments; the operation ran on the first, the transition
// was refused on the second.)
func TestContractOpsAndAHeartbeatInBetween(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		clk, p, _ := atComplete(t, db)
		a := rollouttest.InstanceAt(t, db, "a", p.Migration, clk.Now)
		b := rollouttest.InstanceAt(t, db, "b", p.Migration, clk.Now)
		rollouttest.Beat(t, a, flags.Complete)
		rollouttest.Beat(t, b, flags.Complete)
		clk.Add(rollouttest.Window)
		rollouttest.Beat(t, a, flags.Complete)
		rollouttest.Beat(t, b, flags.Complete)

		txRead := 2 // a reading after the decision's, were there one
		if db.DriverName() == "sqlite" {
			txRead = 3 // after the lease's
		}
		var reads atomic.Int64
		var armed atomic.Bool
		hook := func() time.Time {
			if armed.Load() && reads.Add(1) == int64(txRead) {
				b.Record(p.Migration, flags.Rampdown, false) // b's flag moved back a step
				if err := b.Beat(context.Background()); err != nil {
					panic(err)
				}
			}
			return clk.Now()
		}
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{p}, rollout.WithClock(hook))
		require.NoError(t, err)
		armed.Store(true)
		_, err = c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t", Confirm: true})
		armed.Store(false)
		st, gerr := ledger.Get(ctx, db, p.Migration)
		require.NoError(t, gerr)
		dropped := !hasColumn(t, db, "users", "full_name")
		assert.Equal(t, st.Phase == ledger.Contracted, dropped,
			"the contract's operation ran (full_name dropped: %v) but the ledger says %s; the advance: %v", dropped, st.Phase, err)
		if dropped && st.Phase != ledger.Contracted {
			back, err := c.Rollback(ctx, rollout.Request{Migration: p.Migration, Actor: "t", ToOff: true})
			assert.ErrorIs(t, err, rollout.ErrIrreversible, "rolled back to %s with full_name gone", back.Phase)
		}
	})
}

// A contract cut off between its operations and the ledger (here its
// second operation fails, a view still reading the column; a process
// killed there leaves the same: the first operation applied, the
// transition not recorded) has begun: its intent is in the ledger, so no
// rollback towards old code is accepted, and the next advance completes
// it, without the gate (the decision was made when it began: the fleet
// may have moved since, the column is gone all the same) and without a
// second confirmation.
func TestContractCutOffMidwayIsCompletedNeverRolledBack(t *testing.T) {
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
		c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{p}, rollout.WithClock(clk.Now))
		require.NoError(t, err)
		rollouttest.Forced(t, c, p.Migration, 8) // expanded … complete
		in := rollouttest.InstanceAt(t, db, "a", p.Migration, clk.Now)
		rollouttest.Beat(t, in, flags.Complete)
		clk.Add(rollouttest.Window)
		rollouttest.Beat(t, in, flags.Complete)

		_, err = c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t", Confirm: true})
		require.Error(t, err, "the view holds nickname")
		require.NotErrorIs(t, err, rollout.ErrGateRefused)
		st, err := ledger.Get(ctx, db, p.Migration)
		require.NoError(t, err)
		require.Equal(t, ledger.Complete, st.Phase)
		require.False(t, hasColumn(t, db, "users", "full_name"), "the first operation ran")
		require.True(t, hasColumn(t, db, "users", "nickname"))

		for _, toOff := range []bool{false, true} {
			back, err := c.Rollback(ctx, rollout.Request{Migration: p.Migration, Actor: "t", ToOff: toOff})
			require.ErrorIs(t, err, rollout.ErrIrreversible, "rolled back (to off: %v) to %s with full_name gone", toOff, back.Phase)
		}
		st, err = ledger.Get(ctx, db, p.Migration)
		require.NoError(t, err)
		require.Equal(t, ledger.Complete, st.Phase)
		ready, err := c.Check(ctx, p.Migration)
		require.NoError(t, err)
		assert.True(t, ready.Met, "%+v", ready)
		assert.Equal(t, ledger.Contracted, ready.Next)
		assert.Equal(t, "contract begun", ready.Gate)

		// The fleet moved back a step since: the contract's gate would
		// refuse now; what was decided is completed all the same.
		rollouttest.Beat(t, in, flags.Rampdown)
		db.MustExecContext(ctx, `DROP VIEW users_nicknames`)
		st, err = c.Advance(ctx, rollout.Request{Migration: p.Migration, Actor: "t"})
		require.NoError(t, err, "the next advance completes the contract")
		assert.Equal(t, ledger.Contracted, st.Phase)
		assert.False(t, hasColumn(t, db, "users", "nickname"))
		_, err = c.Rollback(ctx, rollout.Request{Migration: p.Migration, Actor: "t", ToOff: true})
		require.ErrorIs(t, err, rollout.ErrIrreversible)

		events, err := ledger.Audit(ctx, db, p.Migration, 1000)
		require.NoError(t, err)
		intents, contracted := 0, 0
		for _, e := range events {
			switch {
			case e.Kind == "contracting" && e.Accepted:
				intents++
			case e.Kind == "advance" && e.Accepted && e.ToPhase == ledger.Contracted.String():
				contracted++
				assert.Contains(t, e.Reason, "completes the contract begun at")
			}
		}
		assert.Equal(t, 1, intents, "one intent, recorded before the operations ran")
		assert.Equal(t, 1, contracted)
	})
}

// atComplete is the worked example at complete, with a contract that
// drops full_name, on a coordinator reading clk.
func atComplete(t *testing.T, db *sqlx.DB) (*rollouttest.Clock, rollout.Plan, *rollout.Coordinator) {
	t.Helper()
	rollouttest.UsersDB(t, db)
	clk := rollouttest.NewClock()
	p := rollouttest.LedgerPlan()
	p.ContractOps = []ddl.Op{ddl.DropColumn{Table: "users", Column: "full_name"}}
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{p}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	rollouttest.Forced(t, c, p.Migration, 8) // expanded … complete
	return clk, p, c
}
