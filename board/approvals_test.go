package board_test

import (
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// byCookie is an authorizer that knows the user by a session cookie, as
// a real one would by its own session: the board records whom it names.
func byCookie() board.Option {
	return board.WithAuthorizer(board.AuthorizerFunc(func(r *http.Request, a board.Action) (string, error) {
		c, err := r.Cookie("who")
		if err != nil || c.Value == "" {
			return "", errors.New("no session")
		}
		return c.Value, nil
	}))
}

// The migration page in Chromium shows the owner, the policies and what
// the next advance lacks; an approval posted from it (by the user the
// authorizer names, behind the CSRF token) is recorded and shown, the
// same approver twice counts once, the performer's own does not count,
// and once two others approved, the advance from the page is made.
func TestApproveFromTheBoardInChromium(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	plan := rollout.Plan{Migration: hostile, Owner: `team <i>data</i>`,
		Policies: []rollout.Policy{{To: ledger.Expanded, Needs: 2}, {Force: true, Needs: 1, Approvers: []string{"alice"}}}}
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan})
	require.NoError(t, err)
	b, err := board.New(c, byCookie(), board.WithPollInterval(50*time.Millisecond))
	require.NoError(t, err)
	srv := newServer(t, b)
	page := srv + "/migrations/" + url.PathEscape(hostile)

	d := browser(t)
	session := "/session/" + d.session
	d.call(http.MethodPost, session+"/url", map[string]string{"url": page})
	as := func(who string) {
		d.call(http.MethodPost, session+"/cookie", map[string]any{"cookie": map[string]any{"name": "who", "value": who, "path": "/"}})
		d.call(http.MethodPost, session+"/url", map[string]string{"url": page})
		require.Eventually(t, func() bool { return d.poll("#title") == hostile }, 30*time.Second, 50*time.Millisecond)
	}
	approve := func(who, reason string) {
		as(who)
		d.element(http.MethodPost, `#approve-reason`, "value", map[string]any{"text": reason})
		d.element(http.MethodPost, `form.approve button`, "click", map[string]any{})
		require.Eventually(t, func() bool { return strings.Contains(d.poll("#message"), "approve "+hostile+": ") }, 30*time.Second, 50*time.Millisecond)
	}
	missing := func() string { return d.poll(`[data-field="approvals-missing"]`) }

	as("bob")
	assert.Equal(t, `team <i>data</i>`, d.text(`[data-field="owner"]`), "the owner, as text")
	assert.Contains(t, d.text(`ul.policies`), "advances into expanded: 2 distinct approvals by anyone but the performer")
	assert.Contains(t, d.text(`ul.policies`), `every forced advance: 1 distinct approval by "alice" (not the performer)`)
	assert.Equal(t, "needs 2 approvals, has 0", missing())
	assert.Equal(t, "advances into expanded needs 2 approvals, has 0; every forced advance needs 1 approval, has 0",
		d.text(`[data-field="approvals-missing-force"]`), "a forced advance is held by both")

	d.element(http.MethodPost, `.actions button[id^="advance-"]`, "click", map[string]any{})
	require.Eventually(t, func() bool { return strings.Contains(d.poll("#message"), "not approved") }, 30*time.Second, 50*time.Millisecond)
	assert.Contains(t, d.text("#message"), "needs 2 approvals, has 0")

	approve("alice", `<script>window.pwned=1</script> looks right`)
	assert.Contains(t, d.text("#message"), ": done")
	require.Eventually(t, func() bool { return missing() == "needs 2 approvals, has 1: alice" }, 30*time.Second, 50*time.Millisecond)
	assert.Contains(t, d.text(`table.approvals [data-approver="alice"]`), `<script>window.pwned=1</script> looks right`, "the reason shown as text")
	pwned := d.call(http.MethodPost, session+"/execute/sync", map[string]any{"script": "return window.pwned || 0", "args": []any{}})["value"]
	assert.Equal(t, 0.0, pwned)
	approve("alice", "again")
	require.Eventually(t, func() bool { return missing() == "needs 2 approvals, has 1: alice" }, 30*time.Second, 50*time.Millisecond, "alice twice counts once")
	approve("bob", "mine")
	// bob's counts while no one performs: his advance sets it aside.
	require.Eventually(t, func() bool { return missing() == "approved" }, 30*time.Second, 50*time.Millisecond)
	as("bob")
	d.element(http.MethodPost, `.actions button[id^="advance-"]`, "click", map[string]any{})
	require.Eventually(t, func() bool { return strings.Contains(d.poll("#message"), `"bob"'s own approval does not count`) }, 30*time.Second, 50*time.Millisecond)
	approve("carol", "ok")
	as("bob")
	d.element(http.MethodPost, `.actions button[id^="advance-"]`, "click", map[string]any{})
	require.Eventually(t, func() bool { return d.poll(`[data-field="phase"]`) == "expanded" }, 30*time.Second, 50*time.Millisecond)
	assert.Contains(t, d.text(`#approvals`), "no approval at this version", "the approvals were of the version before")
	assert.Contains(t, d.text(`table.audit`), "approve")
	d.screenshot("approvals.png")

	events, err := ledger.Audit(t.Context(), db, hostile, 100)
	require.NoError(t, err)
	var approvers []string
	for _, e := range events {
		if e.Kind == "approve" && e.Accepted {
			approvers = append(approvers, e.Actor)
		}
	}
	assert.Equal(t, []string{"alice", "alice", "bob", "carol"}, approvers, "the authorizer's names, in the audit trail")

	// Behind the same checks as every action: no token, another origin, no session.
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"action": {"approve"}, "migration": {hostile}, "to": {"dualwrite"}, "version": {"1"}, "reason": {"x"}}
	post := func(hdr ...string) int {
		req, _ := http.NewRequest(http.MethodPost, srv+"/action", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := client.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	assert.Equal(t, http.StatusForbidden, post("Cookie", "who=mallory"), "no CSRF token")
	assert.Equal(t, http.StatusForbidden, post("Cookie", "who=mallory", "Sec-Fetch-Site", "cross-site"), "another origin")
	after, err := ledger.Audit(t.Context(), db, hostile, 100)
	require.NoError(t, err)
	assert.Len(t, after, len(events), "nothing recorded of the refused posts")
}
