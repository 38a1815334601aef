package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// The CLI approves as its actor (--actor, else SCHEMASHIFT_ACTOR): an
// advance its plan's policy holds is refused (exit 3) saying what is
// missing, the requester's own approval is refused, status shows what is
// missing (as text and JSON), and once two others approved, the advance
// is made. On both databases.
func TestCLIApprove(t *testing.T) {
	t.Parallel()
	plan := rollout.Plan{Migration: "gov", Owner: "team data", Policies: []rollout.Policy{{To: ledger.Expanded, Needs: 2}}}
	for name, open := range emptyDatabases() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, db := open(t)
			_, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan})
			require.NoError(t, err)
			as := func(who string, args ...string) result { return cliAs(t, url, who, args...) }

			r := as("bob", "advance", "gov")
			assert.Equal(t, 3, r.code, "refused: %s", r.stderr)
			assert.Contains(t, r.stderr, "needs 2 approvals, has 0")

			r = as("bob", "approve", "gov", "--to", "expanded", "--reason", "please", "--request")
			require.Equal(t, 0, r.code, r.stderr)
			r = as("bob", "approve", "gov", "--to", "expanded", "--reason", "mine")
			assert.Equal(t, 3, r.code, r.stderr)
			assert.Contains(t, r.stderr, "cannot approve their own request")
			r = as("bob", "approve", "gov", "--reason", "x")
			assert.Equal(t, 2, r.code, "--to is required")
			r = as("bob", "approve", "gov", "--to", "live", "--reason", "x")
			assert.Equal(t, 2, r.code, "not the next advance: %s", r.stderr)
			r = as("bob", "approve", "gov", "--to", "expanded")
			assert.Equal(t, 2, r.code, "--reason is required")

			r = as("alice", "approve", "gov", "--to", "expanded", "--reason", "looked at it")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "gov: alice approved the advance into expanded at version ")
			assert.Contains(t, r.stdout, "needs 2 approvals, has 1: alice")
			r = cliEnv(t, map[string]string{"DATABASE_URL": url}, "--actor", "alice", "approve", "gov", "--to", "expanded", "--reason", "again", "--json")
			require.Equal(t, 0, r.code, r.stderr)
			var a rollout.Approval
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &a))
			assert.Equal(t, "alice", a.Actor, "--actor names who approves")
			assert.Equal(t, ledger.Expanded, a.To)

			r = as("x", "status", "gov")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "gov: owner team data; advance into expanded: needs 2 approvals, has 1: alice; forced: needs 2 approvals, has 0; approvals at version")
			r = as("x", "status", "gov", "--json")
			require.Equal(t, 0, r.code, r.stderr)
			var ms []struct {
				Approvals rollout.ApprovalState `json:"approvals"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &ms))
			require.Len(t, ms, 1)
			assert.Equal(t, "needs 2 approvals, has 1: alice", ms[0].Approvals.Missing)
			assert.Equal(t, "team data", ms[0].Approvals.Owner)

			r = as("dave", "approve", "gov", "--to", "expanded", "--reason", "ok")
			require.Equal(t, 0, r.code, r.stderr)
			r = as("bob", "advance", "gov")
			require.Equal(t, 0, r.code, r.stderr)
			r = as("x", "status", "gov")
			assert.Contains(t, r.stdout, "no policy holds its next advance")
		})
	}
}
