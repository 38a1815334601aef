package board_test

import (
	"bufio"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// hostile is a migration name with everything a link or a page could
// trip on: slashes (one escaped already), spaces, markup, quotes, a
// percent sign and a question mark.
const hostile = `ops/users "split" <b>&'x' 100%2F?y #z`

func hostileBoard(t *testing.T, opts ...board.Option) (string, *rollout.Coordinator) {
	t.Helper()
	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	plan := rollouttest.UsersPlan(db)
	plan.Migration = hostile
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan})
	require.NoError(t, err)
	_, err = c.Advance(t.Context(), rollout.Request{Migration: hostile, Actor: "setup"})
	require.NoError(t, err)
	b, err := board.New(c, opts...)
	require.NoError(t, err)
	srv := newServer(t, b)
	return srv, c
}

func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, client *http.Client, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	return res, string(body)
}

// A migration's name reaches its page, its runbook and its retrospective
// through links that keep it whole, and is escaped wherever it is shown.
func TestMigrationPagesOfAHostileName(t *testing.T) {
	t.Parallel()
	srv, _ := hostileBoard(t, allowAll())
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	_, main := get(t, client, srv+"/")
	escaped := url.PathEscape(hostile)
	require.Contains(t, escaped, "%2F")
	assert.Contains(t, main, `href="migrations/`+html.EscapeString(escaped)+`"`)
	assert.Contains(t, main, `href="runbook/`+html.EscapeString(escaped)+`"`)
	assert.NotContains(t, main, "<b>&", "the name is escaped")

	res, page := get(t, client, srv+"/migrations/"+escaped)
	require.Equal(t, http.StatusOK, res.StatusCode, page)
	assert.Contains(t, page, `<h1 id="title">`+html.EscapeString(hostile)+`</h1>`)
	assert.Contains(t, page, `href="../runbook/`+html.EscapeString(escaped)+`"`)
	assert.Contains(t, page, `data-phase="expanded" data-state="current"`)
	assert.Contains(t, page, `data-phase="dualwrite" data-state="next"`)
	assert.Contains(t, res.Header.Get("Content-Security-Policy"), "script-src 'nonce-")
	nonce := between(res.Header.Get("Content-Security-Policy"), "'nonce-", "'")
	require.NotEmpty(t, nonce)
	assert.Contains(t, page, `<script nonce="`+nonce+`">`, "the page's one script carries the response's nonce")
	assert.Equal(t, 1, strings.Count(page, "<script"))
	_, again := get(t, client, srv+"/migrations/"+escaped)
	assert.NotContains(t, again, nonce, "a nonce serves one response")

	res, rb := get(t, client, srv+"/runbook/"+escaped)
	require.Equal(t, http.StatusOK, res.StatusCode, rb)
	assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Contains(t, rb, "<h1>Runbook: "+html.EscapeString(hostile)+"</h1>")
	assert.Contains(t, rb, `<a href="../" id="back">`)
	assert.Contains(t, rb, `<code class="advance">schemashift advance `+html.EscapeString(hostile)+` --confirm</code>`)
	res, md := get(t, client, srv+"/runbook/"+escaped+"?format=md")
	assert.Equal(t, "text/markdown; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Contains(t, md, "# Runbook: "+hostile+"\n")
	res, md2 := get(t, client, srv+"/runbook/"+escaped, "Accept", "text/markdown")
	assert.Equal(t, "text/markdown; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Equal(t, md, md2)

	res, retro := get(t, client, srv+"/retrospective/"+escaped)
	require.Equal(t, http.StatusOK, res.StatusCode, retro)
	assert.Contains(t, retro, "<h1>Retrospective: "+html.EscapeString(hostile)+"</h1>")
	assert.Contains(t, retro, `<td>expanded (now)</td>`)
	_, doc := get(t, client, srv+"/retrospective/"+escaped+"?format=json")
	var r report.Retrospective
	require.NoError(t, json.Unmarshal([]byte(doc), &r))
	assert.Equal(t, hostile, r.Migration)
	_, md = get(t, client, srv+"/retrospective/"+escaped, "Accept", "text/markdown")
	assert.Contains(t, md, "# Retrospective: "+hostile+"\n")

	for _, path := range []string{"/migrations/", "/runbook/", "/retrospective/"} {
		res, _ := get(t, client, srv+path+url.PathEscape("ops/users"))
		assert.Equal(t, http.StatusNotFound, res.StatusCode, path)
	}

	// An action from the migration's page comes back to it.
	token := between(page, `name="csrf" value="`, `"`)
	require.Len(t, token, 64)
	form := url.Values{"action": {"rollback"}, "migration": {hostile}, "csrf": {token}, "from": {"migration"}}
	req, _ := http.NewRequest(http.MethodPost, srv+"/action", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := client.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	loc, err := res.Location()
	require.NoError(t, err)
	assert.Equal(t, "/migrations/"+escaped, loc.EscapedPath())
	assert.Equal(t, "rollback "+hostile+": done", loc.Query().Get("msg"))
}

// The phase's shadow consistency below the plan's threshold is flagged,
// in the JSON and on the pages.
func TestConsistencyBelowThresholdIsHighlighted(t *testing.T) {
	t.Parallel()
	srv, _, db := boardServerOn(t, dbtest.SQLite(t))
	in, err := fleet.NewInstance(db, "users-api", "v2", []string{"users_split_name"}, fleet.WithID("api-9"))
	require.NoError(t, err)
	for i := range 10 {
		in.Observer().ObserveComparison(t.Context(), dualwrite.Comparison{Migration: "users_split_name", Stage: flags.Shadow, Match: i < 8})
	}
	in.Observer().ObserveCall(t.Context(), dualwrite.Call{Migration: "users_split_name", Stage: flags.Shadow, Origin: dualwrite.New,
		Duration: 3 * time.Millisecond, Err: io.ErrUnexpectedEOF})
	require.NoError(t, in.Beat(t.Context()))
	var snap board.Status
	_, doc := get(t, http.DefaultClient, srv.URL+"/api/status")
	require.NoError(t, json.Unmarshal([]byte(doc), &snap))
	m := snap.Migrations[0]
	assert.InDelta(t, 0.8, m.Consistency.Ratio, 1e-9)
	assert.Equal(t, 0.9, m.Threshold)
	assert.True(t, m.Below)
	require.Len(t, m.Paths, 2)
	assert.Equal(t, board.Path{Path: "new", Calls: 1, Errors: 1, ErrorRate: 1, P50: 3200 * time.Microsecond, P99: 3200 * time.Microsecond}, m.Paths[1])
	for _, page := range []string{"/", "/migrations/users_split_name"} {
		_, body := get(t, http.DefaultClient, srv.URL+page)
		assert.Contains(t, body, `<span data-field="consistency" class="below" title="below the plan's threshold">0.8000</span>, below the threshold 0.9`, page)
	}
}

// An action posted from another origin is refused, token or not: the
// browser's Sec-Fetch-Site, or its Origin, says where it comes from.
func TestCrossOriginActionRefused(t *testing.T) {
	t.Parallel()
	srv, c := boardServer(t, allowAll())
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	_, page := get(t, client, srv.URL+"/")
	token := between(page, `name="csrf" value="`, `"`)
	require.Len(t, token, 64)
	post := func(hdr ...string) int {
		form := url.Values{"action": {"advance"}, "migration": {"users_split_name"}, "csrf": {token}}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/action", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := client.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	assert.Equal(t, http.StatusForbidden, post("Sec-Fetch-Site", "cross-site"))
	assert.Equal(t, http.StatusForbidden, post("Sec-Fetch-Site", "same-site"), "a sibling subdomain is another origin")
	assert.Equal(t, http.StatusForbidden, post("Origin", "https://evil.example"))
	assert.Equal(t, http.StatusForbidden, post("Origin", "null"))
	st, err := c.Check(t.Context(), "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, ledger.Expanded, st.From, "nothing moved")
	assert.Equal(t, http.StatusSeeOther, post("Sec-Fetch-Site", "same-origin", "Origin", srv.URL))
	st, err = c.Check(t.Context(), "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, ledger.DualWrite, st.From)
}

// The event stream says "change" when the ledger moves, says nothing
// while it stands still, and ends when the client goes (goleak, in
// TestMain, sees no handler left) or the board closes.
func TestEventStream(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.UsersPlan(db)})
	require.NoError(t, err)
	b, err := board.New(c, board.WithPollInterval(10*time.Millisecond))
	require.NoError(t, err)
	srv := newServer(t, b)

	open := func(ctx context.Context, since string) *bufio.Reader {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv+"/events?since="+url.QueryEscape(since), nil)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { res.Body.Close() })
		require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
		return bufio.NewReader(res.Body)
	}
	next := func(r *bufio.Reader) (event, data string) {
		for {
			line, err := r.ReadString('\n')
			require.NoError(t, err)
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "" && event != "":
				return event, data
			case strings.HasPrefix(line, "event: "):
				event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				data = line[len("data: "):]
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r := open(ctx, "stale")
	ev, first := next(r)
	require.Equal(t, "change", ev, "a page rendered from another state hears of it at once")
	require.NotEmpty(t, first)

	// From the current state, the first event is the advance's.
	sctx, stop := context.WithCancel(ctx)
	r2 := open(sctx, first)
	_, err = c.Advance(t.Context(), rollout.Request{Migration: "users_split_name", Actor: "t"})
	require.NoError(t, err)
	ev, moved := next(r2)
	assert.Equal(t, "change", ev)
	assert.NotEqual(t, first, moved)
	// A reading may straddle the advance's commit; both streams come to
	// the state a page rendered now is of, and say so.
	_, page := get(t, http.DefaultClient, srv+"/")
	now := between(page, `data-fingerprint="`, `"`)
	require.NotEmpty(t, now)
	for i, stream := range []*bufio.Reader{r, r2} {
		data := ""
		if i == 1 {
			data = moved
		}
		for data != now {
			ev, data = next(stream)
			require.Equal(t, "change", ev)
		}
	}
	stop() // the client goes: its handler ends

	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close is idempotent")
	_, err = r.ReadString('\n')
	for err == nil { // what was in flight, then the end of the stream
		_, err = r.ReadString('\n')
	}
	assert.ErrorIs(t, err, io.EOF, "Close ends the streams")
	res, _ := get(t, http.DefaultClient, srv+"/events")
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode, "a closed board opens no stream")
}

// Advice's `…` spans become code on the runbook's page; the rest is
// escaped.
func TestRunbookAdviceCode(t *testing.T) {
	t.Parallel()
	srv, _ := boardServer(t)
	_, page := get(t, http.DefaultClient, srv.URL+"/runbook/users_split_name")
	assert.Contains(t, page, "check <code>backfill status</code>; resume it")
	assert.NotContains(t, page, "`")
}
