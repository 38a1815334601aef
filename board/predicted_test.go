package board_test

import (
	"html"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// The retrospective page sets a backfill's estimate against its run, the
// estimate's pace (the caller's words, through the CLI's flags) escaped.
func TestRetrospectivePageShowsPredictedAndActual(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	plan := rollouttest.UsersPlan(db)
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	require.NoError(t, err)
	m := plan.Migration
	_, err = c.Advance(ctx, rollout.Request{Migration: m, Actor: "ci"})
	require.NoError(t, err)
	_, err = c.EstimateBackfills(ctx, rollout.EstimateRequest{Migration: m, Actor: "<b>alice</b>", Samples: 2})
	require.NoError(t, err)
	rollouttest.Forced(t, c, m, 2)
	require.NoError(t, c.RunBackfills(ctx, m))
	b, err := board.New(c, allowAll())
	require.NoError(t, err)
	srv := newServer(t, b)
	res, page := get(t, http.DefaultClient, srv+"/retrospective/"+url.PathEscape(m))
	require.Equal(t, http.StatusOK, res.StatusCode, page)
	assert.Contains(t, page, "<h2>Predicted and actual</h2>")
	assert.Contains(t, page, `<table class="predicted">`)
	assert.Contains(t, page, "<td>500</td><td>500</td><td>500</td><td>not read</td>", "changed, predicted, dead tuples; SQLite keeps no WAL")
	assert.Contains(t, page, html.EscapeString("<b>alice</b>"), "the estimate's actor in the timeline, escaped")
	assert.NotContains(t, page, "<b>alice</b>")
}
