package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// syncBuffer is a bytes.Buffer the server's goroutines may write while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// call makes a request of the service, as ada when auth is set.
func call(t *testing.T, method, url, body string, auth bool) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	if auth {
		req.SetBasicAuth("ada", "s3cret")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return res
}

// The program as the README describes it, on PostgreSQL through openPool
// (pgx's driver) and on the embedded SQLite default: the API answers
// through the adapters, the board asks for credentials and records the
// operator's name, an operator's advance reaches the service's writes
// within a poll, the plan's backfill fills the rows written before, and
// the service stops cleanly while a board page's event stream is open
// (the board is closed from RegisterOnShutdown; without it Shutdown
// would wait out its timeout and serve would fail).
func TestServe(t *testing.T) {
	pgURL := pgtest.URL(t)
	for _, which := range []string{"postgres", "sqlite"} {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			var out syncBuffer
			url := ""
			if which == "postgres" {
				url = pgURL // the service's own database: openPool
			}
			db, release, err := database(t.Context(), &out, url, which)
			require.NoError(t, err)
			t.Cleanup(release)
			testServe(t, db, &out)
		})
	}
}

func testServe(t *testing.T, db *sqlx.DB, out *syncBuffer) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, out, ln, db, map[string]string{"ada": "s3cret"}) }()
	// The listener is open: requests wait in its backlog until Serve.

	res := call(t, http.MethodPut, base+"/users/1", `{"given_name":"Ada","family_name":"Lovelace King"}`, false)
	res.Body.Close()
	require.Equal(t, http.StatusNoContent, res.StatusCode, out.String())
	res = call(t, http.MethodGet, base+"/users/1", "", false)
	var u User
	require.NoError(t, json.NewDecoder(res.Body).Decode(&u))
	res.Body.Close()
	assert.Equal(t, User{ID: 1, GivenName: "Ada", FamilyName: "Lovelace King"}, u, "read back through the old shape, at off")

	res = call(t, http.MethodGet, base+"/schemashift/api/status", "", false)
	res.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "the board asks who it is")
	assert.Contains(t, res.Header.Get("WWW-Authenticate"), "Basic ")
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/schemashift/api/status", nil)
	require.NoError(t, err)
	req.SetBasicAuth("ada", "wrong")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "a wrong password")

	// The operator's commands, as the CLI runs them: advance, advance,
	// force (the fleet window of 5 minutes is not waited for here),
	// backfill run.
	coord, err := rollout.Open(t.Context(), db)
	require.NoError(t, err)
	for range 2 {
		_, err = coord.Advance(t.Context(), rollout.Request{Migration: migration, Actor: "ada"})
		require.NoError(t, err)
	}
	// The service's stage follows the ledger within a poll: its next
	// write fills the new columns too.
	require.Eventually(t, func() bool {
		res := call(t, http.MethodPut, base+"/users/2", `{"given_name":"Grace","family_name":"Hopper"}`, false)
		res.Body.Close()
		var given *string
		require.NoError(t, db.GetContext(t.Context(), &given, `SELECT given_name FROM users WHERE id = 2`))
		return res.StatusCode == http.StatusNoContent && given != nil && *given == "Grace"
	}, 20*time.Second, 50*time.Millisecond, "the dual write reaches the new shape")
	_, err = coord.Advance(t.Context(), rollout.Request{Migration: migration, Actor: "ada", Force: true, Reason: "test: no fleet window"})
	require.NoError(t, err)
	require.NoError(t, coord.RunBackfills(t.Context(), migration))
	var given, family string
	require.NoError(t, db.QueryRowxContext(t.Context(), `SELECT given_name, family_name FROM users WHERE id = 1`).Scan(&given, &family))
	assert.Equal(t, []string{"Ada", "Lovelace King"}, []string{given, family}, "the plan's backfill, on this database")

	res = call(t, http.MethodGet, base+"/schemashift/api/status", "", true)
	require.Equal(t, http.StatusOK, res.StatusCode)
	var status board.Status
	require.NoError(t, json.NewDecoder(res.Body).Decode(&status))
	res.Body.Close()
	require.Len(t, status.Migrations, 1)
	assert.Equal(t, ledger.Backfill, status.Migrations[0].Phase)
	assert.False(t, status.ReadOnly, "operators are given: the board acts")
	require.Len(t, status.Migrations[0].Fleet.Instances, 1, "the service's heartbeat")
	assert.Equal(t, "users-api", status.Migrations[0].Fleet.Instances[0].Service)

	// A page's event stream is open when the service is told to stop.
	stream := call(t, http.MethodGet, base+"/schemashift/events", "", true)
	require.Equal(t, http.StatusOK, stream.StatusCode)
	first, err := bufio.NewReader(stream.Body).ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(first, "retry: "), "%q", first)
	stop()
	select {
	case err := <-done:
		require.NoError(t, err, "a clean shutdown, the stream ended by the board's Close")
	case <-time.After(30 * time.Second): // a bound on failure, not a wait for success
		t.Fatal("serve did not return after its context ended")
	}
	_, err = io.ReadAll(stream.Body)
	assert.NoError(t, err, "the stream ended, not cut")
	stream.Body.Close()
	assert.Contains(t, out.String(), "msg=serving")
}

// Every Go block of the README's "Integrating a service" is this
// program's code, as it is here: the README's code compiles and does
// what this package's tests say.
func TestREADMEShowsThisProgram(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	src, err := os.ReadFile("main.go")
	require.NoError(t, err)
	text := string(readme)
	start := strings.Index(text, "\n## Integrating a service\n")
	require.GreaterOrEqual(t, start, 0, "the README has the section")
	section := text[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	assert.Contains(t, section, "examples/integration", "the section says where the program is")
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(section, -1)
	require.GreaterOrEqual(t, len(blocks), 5, "the section shows the program in pieces")
	for _, b := range blocks {
		assert.True(t, strings.Contains(string(src), b[1]), "a README block that is not main.go's code:\n%s", b[1])
	}
}

// parseOperators takes passwords with colons, skips blanks, and never
// repeats an entry (which may hold a password) in its error.
func TestParseOperators(t *testing.T) {
	t.Parallel()
	ops, err := parseOperators(" ada:s3:cr:et , ,grace:x")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"ada": "s3:cr:et", "grace": "x"}, ops)
	ops, err = parseOperators("")
	require.NoError(t, err)
	assert.Empty(t, ops, "none: the board is read-only")
	for _, bad := range []string{"hunter2", ":hunter2", "ada:", "ada:x,hunter2"} {
		_, err := parseOperators(bad)
		require.Error(t, err, bad)
		assert.NotContains(t, err.Error(), "hunter2", "the entry is not repeated")
	}
}
