package board_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

func boardServer(t *testing.T, opts ...board.Option) (*httptest.Server, *rollout.Coordinator) {
	srv, c, _ := boardServerDB(t, opts...)
	return srv, c
}

func boardServerDB(t *testing.T, opts ...board.Option) (*httptest.Server, *rollout.Coordinator, *sqlx.DB) {
	t.Helper()
	return boardServerOn(t, pgtest.DB(t), opts...)
}

func boardServerOn(t *testing.T, db *sqlx.DB, opts ...board.Option) (*httptest.Server, *rollout.Coordinator, *sqlx.DB) {
	t.Helper()
	rollouttest.UsersDB(t, db)
	plan := rollouttest.UsersPlan(db)
	plan.HotQueries = []rollout.HotQuery{{Name: "user by id", SQL: `SELECT full_name FROM users WHERE id = $1`, Args: []any{7}}}
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan})
	require.NoError(t, err)
	_, err = c.Advance(t.Context(), rollout.Request{Migration: "users_split_name", Actor: "setup"})
	require.NoError(t, err)
	in, err := fleet.NewInstance(db, "users-api", "v2", []string{"users_split_name"}, fleet.WithID("api-1"))
	require.NoError(t, err)
	rollouttest.Beat(t, in, flags.Off)
	b, err := board.New(c, opts...)
	require.NoError(t, err)
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return srv, c, db
}

func allowAll() board.Option {
	return board.WithAuthorizer(board.AuthorizerFunc(func(r *http.Request, a board.Action) (string, error) {
		if r.Header.Get("X-Deny") != "" {
			return "", errors.New("denied by policy")
		}
		return "board-user", nil
	}))
}

// The JSON document has the shape clients rely on.
func TestBoardJSON(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testBoardJSON)
}

func testBoardJSON(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	srv, _, _ := boardServerOn(t, db)
	res, err := http.Get(srv.URL + "/api/status")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
	var doc map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&doc))

	schema := map[string]string{"generated_at": "string", "read_only": "bool", "migrations": "array", "audit": "array"}
	for k, typ := range schema {
		assert.Equal(t, typ, kind(doc[k]), k)
	}
	ms := doc["migrations"].([]any)
	require.Len(t, ms, 1)
	m := ms[0].(map[string]any)
	for k, typ := range map[string]string{"migration": "string", "phase": "string", "stage": "string", "version": "number",
		"phase_since": "string", "next": "object", "backfills": "array", "consistency": "object", "fleet": "object"} {
		assert.Equal(t, typ, kind(m[k]), "migrations[0].%s", k)
	}
	assert.Equal(t, "expanded", m["phase"])
	assert.Equal(t, "off", m["stage"])
	next := m["next"].(map[string]any)
	for k, typ := range map[string]string{"from": "string", "next": "string", "gate": "string", "met": "bool"} {
		assert.Equal(t, typ, kind(next[k]), "next.%s", k)
	}
	assert.Equal(t, "dualwrite", next["next"])
	assert.Equal(t, true, next["met"])
	bf := m["backfills"].([]any)[0].(map[string]any)
	for k, typ := range map[string]string{"job": "string", "status": "string", "rows_done": "number", "total_estimate": "number",
		"rate": "number", "eta_seconds": "number", "chunk_size": "number", "throttle": "string", "foreground": "string", "pace": "string", "verify": "string"} {
		assert.Equal(t, typ, kind(bf[k]), "backfills[0].%s", k)
	}
	assert.Equal(t, "not started", bf["status"])
	fleet := m["fleet"].(map[string]any)
	inst := fleet["instances"].([]any)[0].(map[string]any)
	for k, typ := range map[string]string{"id": "string", "service": "string", "build": "string", "last_seen": "string", "min_stage": "string", "old_calls": "number",
		"shadow_drops": "number"} {
		assert.Equal(t, typ, kind(inst[k]), "fleet.instances[0].%s", k)
	}
	ev := doc["audit"].([]any)
	require.GreaterOrEqual(t, len(ev), 2)
	last := ev[len(ev)-1].(map[string]any)
	assert.Equal(t, "advance", last["kind"])
	assert.Equal(t, true, last["accepted"])
	assert.Equal(t, true, doc["read_only"])
}

func kind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// Mutations are refused without an authorizer, without the CSRF token,
// across origins, and when the authorizer says no.
func TestBoardRefusesUnauthorizedMutations(t *testing.T) {
	t.Parallel()
	ro, c1 := boardServer(t)
	form := url.Values{"action": {"advance"}, "migration": {"users_split_name"}}
	res, err := http.PostForm(ro.URL+"/action", form)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusForbidden, res.StatusCode, "read-only board")
	page, err := http.Get(ro.URL + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	assert.NotContains(t, string(body), "<form", "a read-only board offers no action")

	srv, c2 := boardServer(t, allowAll())
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err = client.Get(srv.URL + "/")
	require.NoError(t, err)
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	token := between(string(body), `name="csrf" value="`, `"`)
	require.Len(t, token, 64)

	post := func(form url.Values, hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/action", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := client.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	assert.Equal(t, http.StatusForbidden, post(form, nil), "no CSRF token")
	withToken := url.Values{"action": {"advance"}, "migration": {"users_split_name"}, "csrf": {token}}
	assert.Equal(t, http.StatusForbidden, post(withToken, map[string]string{"Origin": "https://evil.example"}), "cross-origin")
	assert.Equal(t, http.StatusForbidden, post(withToken, map[string]string{"X-Deny": "1"}), "authorizer says no")
	unknown := url.Values{"action": {"advance"}, "migration": {"nope"}, "csrf": {token}}
	assert.Equal(t, http.StatusNotFound, post(unknown, nil))
	for _, c := range []*rollout.Coordinator{c1, c2} {
		fleet, err := c.Check(t.Context(), "users_split_name")
		require.NoError(t, err)
		assert.Equal(t, ledger.Expanded, fleet.From, "nothing moved")
	}
	assert.Equal(t, http.StatusSeeOther, post(withToken, nil), "authorized")
	st, err := c2.Check(t.Context(), "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, ledger.DualWrite, st.From)
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	if j := strings.Index(s, end); j >= 0 {
		return s[:j]
	}
	return ""
}

// webdriver is the little of the W3C WebDriver protocol the test needs.
type webdriver struct {
	t       *testing.T
	base    string
	session string
}

func (d *webdriver) call(method, path string, body any) map[string]any {
	d.t.Helper()
	out, status, err := d.try(method, path, body)
	require.NoError(d.t, err)
	require.Less(d.t, status, 300, "webdriver %s %s: %v", method, path, out)
	return out
}

// try makes a WebDriver call without failing the test: for polling while
// a page loads.
func (d *webdriver) try(method, path string, body any) (map[string]any, int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, d.base+path, rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	var out map[string]any
	err = json.NewDecoder(res.Body).Decode(&out)
	return out, res.StatusCode, err
}

// poll returns the text of css once it is there, or "".
func (d *webdriver) poll(css string) string {
	found, status, err := d.try(http.MethodPost, "/session/"+d.session+"/element", map[string]string{"using": "css selector", "value": css})
	if err != nil || status >= 300 {
		return ""
	}
	v, _ := found["value"].(map[string]any)
	for _, id := range v {
		text, status, err := d.try(http.MethodGet, "/session/"+d.session+"/element/"+id.(string)+"/text", nil)
		if err != nil || status >= 300 {
			return ""
		}
		s, _ := text["value"].(string)
		return s
	}
	return ""
}

func (d *webdriver) find(css string) string {
	d.t.Helper()
	v := d.call(http.MethodPost, "/session/"+d.session+"/element", map[string]string{"using": "css selector", "value": css})["value"].(map[string]any)
	for _, id := range v {
		return id.(string)
	}
	d.t.Fatalf("no element %s", css)
	return ""
}

func (d *webdriver) text(css string) string {
	d.t.Helper()
	return d.element(http.MethodGet, css, "text", nil)["value"].(string)
}

// element finds css and calls verb on it. A live page swaps its live part
// whenever its state changes, so an element found can be gone by the next
// call ("stale element reference"): then nothing was done to it, and
// element finds it again, for as long as the page keeps swapping it, up to
// a bound.
func (d *webdriver) element(method, css, verb string, body any) map[string]any {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		path := "/session/" + d.session + "/element/" + d.find(css) + "/" + verb
		out, status, err := d.try(method, path, body)
		require.NoError(d.t, err)
		if status < 300 {
			return out
		}
		if v, _ := out["value"].(map[string]any); v["error"] != "stale element reference" || time.Now().After(deadline) {
			require.Less(d.t, status, 300, "webdriver %s %s: %v", method, path, out)
		}
	}
}

// screenshot takes a PNG of the whole page and, when
// SCHEMASHIFT_SCREENSHOTS names a directory, saves it there as name.
func (d *webdriver) screenshot(name string) {
	d.t.Helper()
	d.call(http.MethodPost, "/session/"+d.session+"/window/rect", map[string]any{"width": 1280, "height": 900})
	h := d.call(http.MethodPost, "/session/"+d.session+"/execute/sync",
		map[string]any{"script": "return document.documentElement.scrollHeight", "args": []any{}})["value"].(float64)
	d.call(http.MethodPost, "/session/"+d.session+"/window/rect", map[string]any{"width": 1280, "height": min(max(int(h)+140, 600), 8000)})
	shot := d.call(http.MethodGet, "/session/"+d.session+"/screenshot", nil)["value"].(string)
	png, err := base64.StdEncoding.DecodeString(shot)
	require.NoError(d.t, err)
	require.True(d.t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
	if dir := os.Getenv("SCHEMASHIFT_SCREENSHOTS"); dir != "" {
		require.NoError(d.t, os.MkdirAll(dir, 0o755))
		require.NoError(d.t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// browser starts chromedriver and a headless Chromium session, both ended
// with the test.
func browser(t *testing.T) *webdriver {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	require.NoError(t, err, "the board test needs Debian's chromium (apt-get install chromium chromium-driver)")
	driverBin, err := exec.LookPath("chromedriver")
	require.NoError(t, err, "the board test needs chromedriver (apt-get install chromium-driver)")
	port := freePort(t)
	driver := exec.Command(driverBin, fmt.Sprintf("--port=%d", port))
	require.NoError(t, driver.Start())
	t.Cleanup(func() { _ = driver.Process.Kill(); _ = driver.Wait() })
	d := &webdriver{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	require.Eventually(t, func() bool {
		res, err := http.Get(d.base + "/status")
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)

	profile := t.TempDir()
	created := d.call(http.MethodPost, "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium, "args": []string{"--headless", "--no-sandbox", "--disable-gpu",
			"--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-dev-shm-usage", "--window-size=1280,900", "--user-data-dir=" + profile}},
	}}})
	d.session = created["value"].(map[string]any)["sessionId"].(string)
	t.Cleanup(func() { d.call(http.MethodDelete, "/session/"+d.session, nil) })
	return d
}

// The board in a real headless Chromium: it renders the ledger's state, and
// an authorized click advances the migration.
func TestBoardInChromium(t *testing.T) {
	t.Parallel()
	srv, c, db := boardServerDB(t, allowAll())
	d := browser(t)

	// A second instance dropped shadow reads; the board shows each one's.
	other, err := fleet.NewInstance(db, "users-api", "v2", []string{"users_split_name"}, fleet.WithID("api-2"))
	require.NoError(t, err)
	for range 3 {
		other.Observer().ObserveShadowDrop(t.Context(), dualwrite.ShadowDrop{Migration: "users_split_name", Stage: flags.Shadow, Reason: dualwrite.DropFull})
	}
	rollouttest.Beat(t, other, flags.Off)

	d.call(http.MethodPost, "/session/"+d.session+"/url", map[string]string{"url": srv.URL + "/"})
	assert.Equal(t, "expanded", d.text(`[data-migration="users_split_name"] [data-field="phase"]`))
	assert.Equal(t, "0", d.text(`[data-instance="api-1"] [data-field="shadow-drops"]`))
	assert.Equal(t, "3", d.text(`[data-instance="api-2"] [data-field="shadow-drops"]`))
	assert.Equal(t, "met", d.text(`[data-migration="users_split_name"] [data-field="gate"]`))
	assert.Contains(t, d.text(`table.fleet`), "api-1")
	assert.Contains(t, d.text(`table.audit`), "advance")
	assert.Contains(t, d.text(`table.plans`), "Index Scan on users using users_pkey", "the hot query's plan")

	// The dependency map is drawn (the SVG loads under the page's CSP).
	require.Eventually(t, func() bool {
		out, status, err := d.try(http.MethodPost, "/session/"+d.session+"/execute/sync",
			map[string]any{"script": "var i = document.getElementById('dependencies'); return i.complete ? i.naturalWidth : 0", "args": []any{}})
		w, _ := out["value"].(float64)
		return err == nil && status < 300 && w > 0
	}, 10*time.Second, 50*time.Millisecond, "the dependency map image renders")

	d.element(http.MethodPost, `#advance-users_split_name`, "click", map[string]any{})
	require.Eventually(t, func() bool {
		return d.poll(`[data-migration="users_split_name"] [data-field="phase"]`) == "dualwrite"
	}, 30*time.Second, 50*time.Millisecond)
	assert.Contains(t, d.text(`#message`), "advance users_split_name: done")
	assert.Contains(t, d.text(`[data-migration="users_split_name"] [data-field="reason"]`), "api-1",
		"the next gate's unmet condition is shown")
	st, err := c.Check(t.Context(), "users_split_name")
	require.NoError(t, err)
	assert.Equal(t, ledger.DualWrite, st.From)

	d.screenshot("board.png")

	// The runbook and the retrospective are pages one click away, with a
	// way back.
	d.element(http.MethodPost, `a[href="runbook/users_split_name"]`, "click", map[string]any{})
	require.Eventually(t, func() bool { return d.poll("h1") == "Runbook: users_split_name" }, 30*time.Second, 50*time.Millisecond)
	assert.Equal(t, "schemashift advance users_split_name --confirm", d.text(`[data-to="contracted"] code.advance`))
	assert.NotContains(t, d.text("body"), "**", "rendered, not Markdown")
	assert.Contains(t, d.text(`[data-to="expanded"] pre.ddl`), "ALTER TABLE users ADD COLUMN given_name text")
	d.screenshot("runbook.png")
	d.element(http.MethodPost, `#back`, "click", map[string]any{})
	require.Eventually(t, func() bool { return d.poll("h1") == "schemashift status" }, 30*time.Second, 50*time.Millisecond)
	d.element(http.MethodPost, `a[href="retrospective/users_split_name"]`, "click", map[string]any{})
	require.Eventually(t, func() bool { return d.poll("h1") == "Retrospective: users_split_name" }, 30*time.Second, 50*time.Millisecond)
	assert.Contains(t, d.text("table.phases"), "dualwrite (now)")
	assert.Contains(t, d.text("table.phases"), "board-user", "who entered the phase")
	assert.NotContains(t, d.text("body"), "|---|")
	d.screenshot("retrospective.png")

	// A tripped guardrail shows, and the advance form asks for the acknowledgement.
	db.MustExecContext(t.Context(), `UPDATE schemashift_migrations SET tripped = 'shadow consistency 0.8 below 0.95'`)
	d.call(http.MethodPost, "/session/"+d.session+"/url", map[string]string{"url": srv.URL + "/"})
	require.Eventually(t, func() bool {
		return strings.Contains(d.poll(`[data-field="tripped"]`), "Guardrail tripped: shadow consistency 0.8 below 0.95")
	}, 30*time.Second, 50*time.Millisecond)
	assert.Contains(t, d.text(`.actions`), "acknowledge the trip")
}

// The board serves the dependency map, as JSON and as a picture.
func TestBoardServesTheDependencyMap(t *testing.T) {
	t.Parallel()
	srv, _ := boardServer(t)
	res, err := http.Get(srv.URL + "/api/dependencies")
	require.NoError(t, err)
	var served report.DependencyMap
	require.NoError(t, json.NewDecoder(res.Body).Decode(&served))
	res.Body.Close()
	assert.Len(t, served.Migrations, 1)
	res, err = http.Get(srv.URL + "/dependencies.svg")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, "image/svg+xml", res.Header.Get("Content-Type"))
	assert.Contains(t, string(body), `data-node="migration:users_split_name"`)
}
