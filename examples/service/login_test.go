package main

import (
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
	"github.com/schemashift/schemashift/ledger"
)

// A browser works the board: its click is refused until the operator
// logs in with the token, then recorded under the operator's name; a
// login posted from another origin, or with a wrong token, opens nothing.
func TestBoardLoginFromABrowser(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	require.NoError(t, createUsers(t.Context(), db))
	a, err := newApp(t.Context(), db, "s3cret")
	require.NoError(t, err)
	defer a.Close()
	srv := httptest.NewServer(a)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values, hdr ...string) (*http.Response, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(form.Encode()))
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := browser.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res, string(body)
	}
	_, page := do(http.MethodGet, "/schemashift/", nil)
	i := strings.Index(page, `name="csrf" value="`)
	require.GreaterOrEqual(t, i, 0)
	token := page[i+len(`name="csrf" value="`) : i+len(`name="csrf" value="`)+64]
	advance := url.Values{"action": {"advance"}, "migration": {migration}, "csrf": {token}}

	res, body := do(http.MethodPost, "/schemashift/action", advance)
	assert.Equal(t, http.StatusForbidden, res.StatusCode)
	assert.Contains(t, body, "log in at /schemashift/login")

	res, body = do(http.MethodGet, "/schemashift/login", nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, body, `<form method="post" action="login">`)
	res, _ = do(http.MethodPost, "/schemashift/login", url.Values{"operator": {"mallory"}, "token": {"guess"}})
	assert.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Contains(t, res.Header.Get("Location"), "error=")
	res, _ = do(http.MethodPost, "/schemashift/login", url.Values{"operator": {"mallory"}, "token": {"s3cret"}}, "Sec-Fetch-Site", "cross-site")
	assert.Equal(t, http.StatusForbidden, res.StatusCode, "a login posted from another site")
	res, _ = do(http.MethodPost, "/schemashift/action", advance)
	assert.Equal(t, http.StatusForbidden, res.StatusCode, "no session was opened")

	res, _ = do(http.MethodPost, "/schemashift/login", url.Values{"operator": {"ada"}, "token": {"s3cret"}}, "Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, "/schemashift/", res.Header.Get("Location"))
	var session *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	require.NotNil(t, session)
	assert.True(t, session.HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, session.SameSite)
	res, _ = do(http.MethodPost, "/schemashift/action", advance, "Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	st, err := ledger.Get(t.Context(), db, migration)
	require.NoError(t, err)
	assert.Equal(t, ledger.Expanded, st.Phase)
	trail, err := ledger.Audit(t.Context(), db, migration, 1)
	require.NoError(t, err)
	assert.Equal(t, "ada", trail[0].Actor)
}

func TestMaskedConnectionString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://app:hunter2@db.internal:5432/users?sslmode=disable": "postgres://app:xxxxx@db.internal:5432/users?sslmode=disable",
		"postgres://app@db/users?password=hunter2":                      "postgres://app@db/users?password=xxxxx",
		"host=db user=app password=hunter2 dbname=users":                "host=db user=app password=xxxxx dbname=users",
		"host=db password='hun ter2' dbname=users":                      "host=db password=xxxxx dbname=users",
		"host=db user=app": "host=db user=app",
	} {
		assert.Equal(t, want, masked(in), in)
		assert.NotContains(t, masked(in), "hunter2")
	}
}
