package board_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// checkName is a check's name with markup and quotes: shown, never run.
const checkName = `no <b>negative</b> "balances"`

// checksBoard registers a plan with a failing SQL check and a check
// never run, and makes one advance that the check refuses.
func checksBoard(t *testing.T, db *sqlx.DB) (*rollout.Coordinator, *board.Board) {
	t.Helper()
	ctx := t.Context()
	db.MustExecContext(ctx, `CREATE TABLE accounts (id integer PRIMARY KEY, balance integer NOT NULL)`)
	db.MustExecContext(ctx, `INSERT INTO accounts VALUES (1, 10), (2, -5)`)
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{{Migration: "checked", Checks: []rollout.Check{
		{Name: checkName, Before: []ledger.Phase{ledger.Expanded}, SQL: `SELECT id, balance FROM accounts WHERE balance < 0`},
		{Name: "later", Before: []ledger.Phase{ledger.Shadow, ledger.Live}, URL: "http://127.0.0.1:1/health"},
	}}})
	require.NoError(t, err)
	_, err = c.Advance(ctx, rollout.Request{Migration: "checked", Actor: "carol"})
	require.ErrorIs(t, err, rollout.ErrGateRefused)
	b, err := board.New(c)
	require.NoError(t, err)
	return c, b
}

// The board's status (and so the CLI's status --json) carries each
// check of the plan with its last run, on both databases.
func TestBoardChecksJSON(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		_, b := checksBoard(t, db)
		snap, err := b.Snapshot(t.Context())
		require.NoError(t, err)
		require.Len(t, snap.Migrations, 1)
		checks := snap.Migrations[0].Checks
		require.Len(t, checks, 2)
		assert.Equal(t, checkName, checks[0].Name)
		assert.Equal(t, "sql", checks[0].Kind)
		require.NotNil(t, checks[0].Last)
		assert.False(t, checks[0].Last.Passed)
		assert.Equal(t, "carol", checks[0].Last.Actor)
		assert.Contains(t, checks[0].Last.Detail, "balance=-5")
		assert.Equal(t, "http", checks[1].Kind)
		assert.Nil(t, checks[1].Last, "never run")

		raw, err := json.Marshal(snap.Migrations[0])
		require.NoError(t, err)
		var doc struct {
			Checks []map[string]any `json:"checks"`
		}
		require.NoError(t, json.Unmarshal(raw, &doc))
		require.Len(t, doc.Checks, 2)
		assert.Equal(t, checkName, doc.Checks[0]["name"])
		assert.Equal(t, []any{"expanded"}, doc.Checks[0]["before"])
		last := doc.Checks[0]["last"].(map[string]any)
		assert.Equal(t, false, last["passed"])
		assert.Contains(t, last, "duration_ns")
	})
}

// The migration page in Chromium shows each check, what it gates and its
// last result, the markup of its name and detail escaped; a passing run
// then replaces the failed one.
func TestBoardChecksInChromium(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	c, b := checksBoard(t, db)
	srv := newServer(t, b)
	d := browser(t)
	d.call(http.MethodPost, "/session/"+d.session+"/url", map[string]string{"url": srv + "/migrations/checked"})
	row := fmt.Sprintf(`#checks tr[data-check=%q]`, checkName)
	require.Eventually(t, func() bool { return d.poll(row+` [data-field="result"]`) == "failed" }, 30*time.Second, 50*time.Millisecond)
	text := d.text(row)
	assert.Contains(t, text, checkName, "the name is text, not markup")
	assert.Contains(t, text, "expanded")
	assert.Contains(t, text, "carol")
	assert.Contains(t, d.text(row+` [data-field="detail"]`), "first offending row: id=2, balance=-5")
	assert.Equal(t, "—", d.text(`#checks tr[data-check="later"] [data-field="result"]`))
	assert.Contains(t, d.text(`#checks tr[data-check="later"]`), "shadow, live")
	assert.Contains(t, d.text(`[data-field="reason"]`), fmt.Sprintf("check %q failed", checkName), "the unmet gate names the check")
	// No element of the name's markup made it into the page.
	out := d.call(http.MethodPost, "/session/"+d.session+"/execute/sync",
		map[string]any{"script": "return document.querySelectorAll('#checks b').length", "args": []any{}})
	assert.Equal(t, float64(0), out["value"])

	db.MustExecContext(t.Context(), `UPDATE accounts SET balance = 5`)
	_, err := c.Advance(t.Context(), rollout.Request{Migration: "checked", Actor: "dave"})
	require.NoError(t, err)
	d.call(http.MethodPost, "/session/"+d.session+"/url", map[string]string{"url": srv + "/migrations/checked"})
	require.Eventually(t, func() bool { return d.poll(row+` [data-field="result"]`) == "passed" }, 30*time.Second, 50*time.Millisecond)
	assert.True(t, strings.Contains(d.text(row), "dave"), "the last run is the one shown")
	d.screenshot("checks.png")
}
