package main

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
)

// The board is mounted under /schemashift/ (http.StripPrefix): a button's
// POST comes back within the mount, to the board or to the migration's
// page it was posted from, as a browser resolves the Location against the
// URL it posted to, and that page shows the message.
func TestActionRedirectStaysInTheMount(t *testing.T) {
	db := dbtest.SQLite(t)
	require.NoError(t, createUsers(t.Context(), db))
	a, err := newApp(t.Context(), db, "s3cret")
	require.NoError(t, err)
	defer a.Close()
	srv := httptest.NewServer(a)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method string, u *url.URL, form url.Values) (*http.Response, string) {
		req, err := http.NewRequest(method, u.String(), strings.NewReader(form.Encode()))
		require.NoError(t, err)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		res, err := c.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		return res, string(body)
	}
	at := func(path string) *url.URL {
		u, err := url.Parse(srv.URL + path)
		require.NoError(t, err)
		return u
	}
	res, _ := do(http.MethodGet, at("/schemashift/"), nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	var token string
	for _, ck := range jar.Cookies(at("/schemashift/")) {
		if ck.Name == "schemashift_csrf" {
			token = ck.Value
		}
	}
	require.Len(t, token, 64)
	res, _ = do(http.MethodPost, at("/schemashift/login"), url.Values{"operator": {"ada"}, "token": {"s3cret"}})
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	action := at("/schemashift/action")
	for _, tc := range []struct{ from, page string }{
		{"", "/schemashift/"},
		{"migration", "/schemashift/migrations/" + url.PathEscape(migration)},
	} {
		res, _ = do(http.MethodPost, action, url.Values{"action": {"advance"}, "migration": {migration}, "csrf": {token}, "from": {tc.from}})
		require.Equal(t, http.StatusSeeOther, res.StatusCode, tc.from)
		loc, err := url.Parse(res.Header.Get("Location"))
		require.NoError(t, err)
		back := action.ResolveReference(loc)
		assert.Equal(t, tc.page, back.EscapedPath(), "from %q: Location %s", tc.from, loc)
		res, page := do(http.MethodGet, back, nil)
		require.Equal(t, http.StatusOK, res.StatusCode, "from %q: %s", tc.from, page)
		assert.Contains(t, page, `<p class="note" id="message">`+html.EscapeString("advance "+migration+": "), "from %q", tc.from)
	}
}
