package board_test

import (
	"html"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// The runbook page carries what the Markdown runbook does of a plan's
// governance: its owner and policies, its aggregates and its sunset,
// every name escaped.
func TestRunbookPageGovernanceSections(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	plan := rollouttest.UsersPlan(db)
	plan.Owner = "<i>team data</i>"
	plan.Policies = []rollout.Policy{{To: ledger.Contracted, Needs: 2}}
	side := rollout.AggregateSide{Table: "users"}
	plan.Aggregates = []rollout.Aggregate{{Name: "rows <all>", Kind: rollout.AggregateCount, Old: side, New: side}}
	plan.Sunset = rollout.Sunset{At: time.Date(2032, 3, 1, 12, 0, 0, 0, time.UTC)}
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	require.NoError(t, err)
	b, err := board.New(c, allowAll())
	require.NoError(t, err)
	srv := newServer(t, b)
	res, page := get(t, http.DefaultClient, srv+"/runbook/"+url.PathEscape(plan.Migration))
	require.Equal(t, http.StatusOK, res.StatusCode, page)
	assert.Contains(t, page, "<h2>Owner and approvals</h2>")
	assert.Contains(t, page, `<b class="owner">`+html.EscapeString("<i>team data</i>")+`</b>`)
	assert.NotContains(t, page, "<i>team data</i>")
	assert.Contains(t, page, "<h2>Aggregates</h2>")
	assert.Contains(t, page, "<td>"+html.EscapeString("rows <all>")+"</td>")
	assert.Contains(t, page, "<h2>Sunset</h2>")
	assert.Contains(t, page, "2032-03-01")
	assert.Contains(t, page, `<code class="estimate">schemashift backfill estimate users_split_name</code>`, "the backfill's step says how to predict it")
}
