package rollout_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// govPlan has no DDL and no gate before backfill: the expand needs two
// approvals, only carol may enter dualwrite, and every forced advance
// needs one approval by alice, bob or dave. Its name is hostile.
func govPlan() rollout.Plan {
	return rollout.Plan{Migration: "gov/<b>\"x\"", Owner: "team <data>",
		Policies: []rollout.Policy{
			{To: ledger.Expanded, Needs: 2},
			{To: ledger.DualWrite, Actors: []string{"carol"}},
			{Force: true, Needs: 1, Approvers: []string{"alice", "bob", "dave"}},
		}}
}

func govCoordinator(t *testing.T, db *sqlx.DB) *rollout.Coordinator {
	t.Helper()
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{govPlan()})
	require.NoError(t, err)
	return c
}

// An advance into a phase whose policy needs approvals is refused until
// enough distinct others approved it at the migration's version: the
// performer's own approval does not count, an actor who asked cannot
// approve, the same approver twice counts once, and the refusal says
// what is missing. Every approval and refusal is in the audit trail.
func TestApprovalsHoldAnAdvance(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		c := govCoordinator(t, db)
		m := govPlan().Migration
		bob := rollout.Request{Migration: m, Actor: "bob", Reason: "ship it"}

		_, err := c.Advance(ctx, bob)
		var pe *rollout.PolicyError
		require.ErrorAs(t, err, &pe)
		require.ErrorIs(t, err, rollout.ErrNotApproved)
		assert.Equal(t, "needs 2 approvals, has 0", pe.Missing)

		_, err = c.RequestApproval(ctx, rollout.Approval{Migration: m, To: ledger.Expanded, Actor: "bob", Reason: "please"})
		require.NoError(t, err)
		_, err = c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.Expanded, Actor: "bob", Reason: "mine"})
		require.ErrorIs(t, err, rollout.ErrSelfApproval, "the requester cannot approve")
		for range 2 {
			_, err = c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.Expanded, Actor: "alice", Reason: "looked at it"})
			require.NoError(t, err)
		}
		_, err = c.RequestApproval(ctx, rollout.Approval{Migration: m, To: ledger.Expanded, Actor: "alice", Reason: "me too"})
		require.ErrorIs(t, err, rollout.ErrSelfApproval, "an approver cannot then ask")

		_, err = c.Advance(ctx, bob)
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "needs 2 approvals, has 1: alice", pe.Missing, "alice twice counts once")
		s, err := c.Approvals(ctx, m)
		require.NoError(t, err)
		assert.Equal(t, "team <data>", s.Owner)
		assert.Equal(t, ledger.Expanded, s.Next)
		assert.Equal(t, "needs 2 approvals, has 1: alice", s.Missing)

		_, err = c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.Expanded, Actor: "dave", Reason: "fine\nforged line"})
		require.NoError(t, err)
		// alice performing: her own approval is set aside, so dave's is one.
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "alice"})
		require.ErrorAs(t, err, &pe)
		assert.Contains(t, pe.Missing, `needs 2 approvals, has 1: dave ("alice"'s own approval does not count`)
		st, err := c.Advance(ctx, bob)
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, st.Phase)

		events, err := ledger.Audit(ctx, db, m, 100)
		require.NoError(t, err)
		var approvals, refusedApprovals, refusedAdvances []string
		for _, e := range events {
			switch {
			case e.Kind == "approve" && e.Accepted:
				approvals = append(approvals, e.Actor)
			case e.Kind == "approve" || e.Kind == "request-approval" && !e.Accepted:
				refusedApprovals = append(refusedApprovals, e.Actor)
			case e.Kind == "advance" && !e.Accepted:
				refusedAdvances = append(refusedAdvances, e.Actor+": "+e.Reason)
			}
		}
		assert.Equal(t, []string{"alice", "alice", "dave"}, approvals)
		assert.Equal(t, []string{"bob", "alice"}, refusedApprovals)
		require.Len(t, refusedAdvances, 3)
		assert.Contains(t, refusedAdvances[1], "needs 2 approvals, has 1: alice")
	})
}

// An approval is of one version of the migration: once it moves (a
// rollback, then the advance again) the approvals are gone, and fresh
// ones are needed. An approval of what the approver read, stale since,
// is refused, as is one of an advance that is not the next.
func TestApprovalExpiresWhenTheMigrationMoves(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		c := govCoordinator(t, db)
		m := govPlan().Migration
		approve := func(actor string, version int64) error {
			_, err := c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.Expanded, Actor: actor, Version: version, Reason: "ok"})
			return err
		}
		read, err := ledger.Get(ctx, db, m)
		require.NoError(t, err)
		require.NoError(t, approve("alice", read.Version))
		require.NoError(t, approve("dave", 0))
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "bob"})
		require.NoError(t, err)
		_, err = c.Rollback(ctx, rollout.Request{Migration: m, Actor: "bob", Reason: "undo"}) // rollbacks are never held
		require.NoError(t, err)

		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "bob"})
		var pe *rollout.PolicyError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "needs 2 approvals, has 0", pe.Missing, "the approvals of the earlier version expired")
		require.ErrorIs(t, approve("alice", read.Version), rollout.ErrConflict, "approving what moved since it was read")
		_, err = c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.DualWrite, Actor: "alice", Reason: "ahead"})
		require.ErrorIs(t, err, rollout.ErrInvalidArgument, "not the next advance")
		_, err = c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.Expanded, Actor: "alice"})
		require.ErrorIs(t, err, rollout.ErrReasonRequired)
		for _, who := range []string{"", " ", "unknown", "eve\r\nadvance accepted"} {
			_, err = c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.Expanded, Actor: who, Reason: "x"})
			require.ErrorIs(t, err, rollout.ErrNotPermitted, "%q", who)
		}
		require.NoError(t, approve("alice", 0))
		require.NoError(t, approve("dave", 0))
		st, err := c.Advance(ctx, rollout.Request{Migration: m, Actor: "bob"})
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, st.Phase)
	})
}

// A policy naming its performers refuses anyone else, and a caller who
// names no one; a forced advance needs the force policy's approvals, by
// its approvers only, of the forced advance (an approval of the plain
// advance does not count for it). A coordinator opened from the stored
// plan judges alike.
func TestPolicyPerformersAndForce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		c := govCoordinator(t, db)
		m := govPlan().Migration
		for _, who := range []string{"alice", "dave"} {
			_, err := c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.Expanded, Actor: who, Reason: "ok"})
			require.NoError(t, err)
		}
		_, err := c.Advance(ctx, rollout.Request{Migration: m, Actor: "bob"})
		require.NoError(t, err)

		opened, err := rollout.Open(ctx, db)
		require.NoError(t, err)
		for _, co := range []*rollout.Coordinator{c, opened} {
			for _, who := range []string{"mallory", "", "Carol"} {
				_, err = co.Advance(ctx, rollout.Request{Migration: m, Actor: who})
				require.ErrorIs(t, err, rollout.ErrNotPermitted, "%q", who)
			}
		}
		// Forced: carol may perform it, but it needs one approval of the
		// forced advance, by alice, bob or dave.
		force := rollout.Request{Migration: m, Actor: "carol", Force: true, Reason: "gate is wrong"}
		_, err = c.Advance(ctx, force)
		require.ErrorIs(t, err, rollout.ErrNotApproved)
		_, err = c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.DualWrite, Actor: "eve", Force: true, Reason: "me"})
		require.ErrorIs(t, err, rollout.ErrNotPermitted, "eve is no approver of a force")
		_, err = c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.DualWrite, Actor: "alice", Reason: "plain only"})
		require.ErrorIs(t, err, rollout.ErrInvalidArgument, "no policy asks for approvals of the plain advance into dualwrite")
		s, err := opened.Approvals(ctx, m)
		require.NoError(t, err)
		assert.Equal(t, "", s.Missing)
		assert.Equal(t, "needs 1 approval, has 0", s.MissingForce)

		_, err = c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.DualWrite, Actor: "alice", Force: true, Reason: "checked by hand"})
		require.NoError(t, err)
		_, err = opened.Advance(ctx, rollout.Request{Migration: m, Actor: "mallory", Force: true, Reason: "x"})
		require.ErrorIs(t, err, rollout.ErrNotPermitted, "approved, but not by its performer")
		st, err := opened.Advance(ctx, force)
		require.NoError(t, err)
		assert.Equal(t, ledger.DualWrite, st.Phase)
		// A plain advance is held by no policy into backfill; a forced one
		// by the force policy, with the approvals of the new version.
		_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "carol", Force: true, Reason: "again"})
		require.ErrorIs(t, err, rollout.ErrNotApproved, "the force's approval was of dualwrite's version")
	})
}

// Policies that could never be judged as meant are refused; policies
// and the owner are part of the definition.
func TestPolicyValidation(t *testing.T) {
	t.Parallel()
	for name, pols := range map[string][]rollout.Policy{
		"negative":           {{To: ledger.Live, Needs: -1}},
		"unknown phase":      {{To: ledger.Phase(42), Needs: 1}},
		"planned":            {{To: ledger.Planned, Needs: 1}},
		"holds nothing":      {{To: ledger.Live}},
		"duplicate":          {{To: ledger.Live, Needs: 1}, {To: ledger.Live, Actors: []string{"a"}}},
		"duplicate force":    {{Force: true, Needs: 1}, {Force: true, Needs: 2}},
		"blank actor":        {{To: ledger.Live, Actors: []string{" "}}},
		"actor twice":        {{To: ledger.Live, Actors: []string{"a", "a"}}},
		"newline approver":   {{To: ledger.Live, Needs: 1, Approvers: []string{"a\nb"}}},
		"anonymous":          {{To: ledger.Live, Actors: []string{"unknown"}}},
		"unmeetable":         {{To: ledger.Live, Needs: 3, Approvers: []string{"a", "b"}}},
		"approvers no needs": {{To: ledger.Live, Actors: []string{"a"}, Approvers: []string{"b"}}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := rollout.Plan{Migration: "m", Policies: pols}
			require.ErrorIs(t, p.Normalize(), rollout.ErrInvalidPlan)
		})
	}
	p := rollout.Plan{Migration: "m", Owner: "x\ny"}
	require.ErrorIs(t, p.Normalize(), rollout.ErrInvalidPlan)

	base := govPlan()
	require.NoError(t, base.Normalize())
	h0, err := base.DefinitionHash()
	require.NoError(t, err)
	for name, change := range map[string]func(*rollout.Plan){
		"owner":     func(p *rollout.Plan) { p.Owner = "team data" },
		"needs":     func(p *rollout.Plan) { p.Policies[0].Needs = 3 },
		"actors":    func(p *rollout.Plan) { p.Policies[1].Actors = []string{"carol", "erin"} },
		"approvers": func(p *rollout.Plan) { p.Policies[2].Approvers = []string{"alice", "bob"} },
		"force":     func(p *rollout.Plan) { p.Policies[0].Force = true },
		"none":      func(p *rollout.Plan) { p.Policies = nil },
	} {
		q := govPlan()
		change(&q)
		require.NoError(t, q.Normalize(), name)
		h, err := q.DefinitionHash()
		require.NoError(t, err)
		assert.NotEqual(t, h0, h, name)
	}
}

// Two coordinators (one per pool on the same database) race: approvers
// approve what they read while performers advance and roll back. The
// ledger stays consistent: every advance into expanded that was made had
// two distinct approvals, neither the performer's, of the version it
// moved from, recorded before it.
func TestApprovalRace(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		plan := rollout.Plan{Migration: "race-approvals", Policies: []rollout.Policy{{To: ledger.Expanded, Needs: 2}}}
		c1, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
		require.NoError(t, err)
		c2, err := rollout.Open(ctx, db)
		require.NoError(t, err)
		m := plan.Migration
		const rounds = 15
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		approver := func(c *rollout.Coordinator, who string) {
			defer wg.Done()
			for range rounds * 2 {
				st, err := ledger.Get(ctx, db, m)
				if err != nil {
					errs <- err
					return
				}
				if st.Phase != ledger.Planned {
					continue
				}
				_, err = c.Approve(ctx, rollout.Approval{Migration: m, To: ledger.Expanded, Version: st.Version, Actor: who, Reason: "race"})
				if err != nil && !errors.Is(err, rollout.ErrConflict) && !errors.Is(err, rollout.ErrInvalidArgument) {
					errs <- err
					return
				}
			}
		}
		performer := func(c *rollout.Coordinator, who string) {
			defer wg.Done()
			for range rounds {
				st, err := ledger.Get(ctx, db, m)
				if err != nil {
					errs <- err
					return
				}
				r := rollout.Request{Migration: m, Version: st.Version, Actor: who, Reason: "race"}
				if st.Phase == ledger.Planned {
					_, err = c.Advance(ctx, r)
				} else {
					_, err = c.Rollback(ctx, r)
				}
				if err != nil && !errors.Is(err, rollout.ErrConflict) && !errors.Is(err, rollout.ErrNotApproved) {
					errs <- err
					return
				}
			}
		}
		wg.Add(4)
		go approver(c1, "alice")
		go approver(c2, "bob")
		go performer(c1, "alice")
		go performer(c2, "carol")
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}

		events, err := ledger.Audit(ctx, db, m, 10000)
		require.NoError(t, err)
		var rows []struct {
			Version int64  `db:"version"`
			Actor   string `db:"actor"`
			Kind    string `db:"kind"`
		}
		require.NoError(t, sqlx.SelectContext(ctx, db, &rows, `SELECT version, actor, kind FROM schemashift_approvals WHERE migration = 'race-approvals'`))
		approvedAt := map[int64]map[string]bool{}
		for _, r := range rows {
			require.Equal(t, "approval", r.Kind)
			if approvedAt[r.Version] == nil {
				approvedAt[r.Version] = map[string]bool{}
			}
			approvedAt[r.Version][r.Actor] = true
		}
		approvedSoFar := map[int64]map[string]bool{} // approvals in the audit trail before each advance
		made := 0
		var last int64
		for _, e := range events {
			switch {
			case e.Accepted && e.Kind != "register":
				require.NotNil(t, e.Version, "%+v", e)
			}
			switch {
			case e.Kind == "approve" && e.Accepted:
				if approvedSoFar[*e.Version] == nil {
					approvedSoFar[*e.Version] = map[string]bool{}
				}
				approvedSoFar[*e.Version][e.Actor] = true
				require.True(t, approvedAt[*e.Version][e.Actor], "an approval in the audit trail is in the table: %+v", e)
			case (e.Kind == "advance" || e.Kind == "rollback") && e.Accepted:
				if last != 0 {
					require.Equal(t, last+1, *e.Version, "versions move one at a time")
				}
				last = *e.Version
				if e.Kind == "advance" {
					made++
					from := *e.Version - 1
					others := 0
					for who := range approvedSoFar[from] {
						if who != e.Actor {
							others++
						}
					}
					require.GreaterOrEqual(t, others, 2, "advance by %s from version %d: approvals %v", e.Actor, from, approvedSoFar[from])
				}
			}
		}
		st, err := ledger.Get(ctx, db, m)
		require.NoError(t, err)
		if last == 0 {
			// No move won the race: the migration is still at the version
			// it was registered with.
			assert.EqualValues(t, 1, st.Version)
		} else {
			assert.Equal(t, last, st.Version)
		}
		t.Logf("advances made: %d; approvals: %d", made, len(rows))
	})
}
