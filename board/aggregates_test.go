package board_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/rollout"
)

// A migration's page in Chromium shows the last comparison of its
// aggregates: each group's old, new and snapshot values, the difference
// and the tolerance, the group over it marked; names and group values
// with markup in them are shown as text. The status (what status --json
// prints) carries the same comparison.
func TestAggregatesOnTheMigrationPageInChromium(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := dbtest.SQLite(t)
	db.MustExecContext(ctx, `CREATE TABLE orders (id integer PRIMARY KEY, amount_cents integer, currency text)`)
	db.MustExecContext(ctx, `INSERT INTO orders VALUES (1, 100, 'EUR'), (2, 250, '<script>alert(1)</script>')`)
	const name = `<b>"sums"</b>`
	plan := rollout.Plan{Migration: "orders_move_amount",
		Expand: []rollout.Step{{SQL: `CREATE TABLE order_totals (order_id integer PRIMARY KEY, amount_cents integer, currency text)`, Down: `DROP TABLE order_totals`}},
		Aggregates: []rollout.Aggregate{{Name: name, Kind: rollout.AggregateSum, Tolerance: rollout.Tolerance{Absolute: 10},
			Old: rollout.AggregateSide{Table: "orders", Column: "amount_cents", GroupBy: "currency"},
			New: rollout.AggregateSide{Table: "order_totals", Column: "amount_cents", GroupBy: "currency"}}}}
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	require.NoError(t, err)
	_, err = c.Advance(ctx, rollout.Request{Migration: plan.Migration, Actor: "ci"})
	require.NoError(t, err)
	db.MustExecContext(ctx, `INSERT INTO order_totals VALUES (1, 100, 'EUR'), (2, 200, '<script>alert(1)</script>')`)
	for range 4 {
		_, err = c.Advance(ctx, rollout.Request{Migration: plan.Migration, Actor: "ci", Force: true, Reason: "setup"})
		require.NoError(t, err)
	}
	_, err = c.Advance(ctx, rollout.Request{Migration: plan.Migration, Actor: "ci"})
	require.ErrorIs(t, err, rollout.ErrGateRefused)

	b, err := board.New(c)
	require.NoError(t, err)
	snap, err := b.Snapshot(ctx)
	require.NoError(t, err)
	doc, err := json.Marshal(snap.Migrations[0])
	require.NoError(t, err)
	var status struct {
		Aggregates rollout.AggregateComparison `json:"aggregates"`
	}
	require.NoError(t, json.Unmarshal(doc, &status))
	assert.False(t, status.Aggregates.Passed)
	assert.Equal(t, "live", status.Aggregates.Phase)
	require.Len(t, status.Aggregates.Aggregates, 1)
	assert.Equal(t, "<script>alert(1)</script>", status.Aggregates.Aggregates[0].Worst.Group)

	srv := newServer(t, b)
	d := browser(t)
	d.call(http.MethodPost, "/session/"+d.session+"/url", map[string]string{"url": srv + "/migrations/" + url.PathEscape(plan.Migration)})
	assert.Equal(t, "false", d.call(http.MethodPost, "/session/"+d.session+"/execute/sync",
		map[string]any{"script": "return document.getElementById('aggregates').dataset.passed", "args": []any{}})["value"])
	assert.Contains(t, d.text(`#aggregates p`), "before live")
	assert.Contains(t, d.text(`#aggregates p`), "not within their tolerance")
	over := d.text(`#aggregates tr.refused`)
	assert.Contains(t, over, name+" (sum)")
	assert.Contains(t, over, `"<script>alert(1)</script>"`)
	assert.Contains(t, over, "250")
	assert.Contains(t, over, "-50 against old")
	assert.Contains(t, over, "±10")
	assert.Contains(t, over, "over")
	assert.Contains(t, d.text(`#aggregates tr[data-group='"EUR"']`), "0 against old")
	assert.Equal(t, float64(0), d.call(http.MethodPost, "/session/"+d.session+"/execute/sync",
		map[string]any{"script": "return document.querySelectorAll('#aggregates b, #aggregates script').length", "args": []any{}})["value"],
		"markup in names and values is text")
	d.screenshot("aggregates.png")
}
