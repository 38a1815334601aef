package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// client calls the service's API at base.
type client struct {
	t    *testing.T
	base string
}

func (c client) put(id, given, family string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, c.base+"/users/"+id, strings.NewReader(`{"given_name":"`+given+`","family_name":"`+family+`"}`))
	res, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	res.Body.Close()
	require.Equal(c.t, http.StatusNoContent, res.StatusCode)
}

func (c client) get(id string) User {
	c.t.Helper()
	res, err := http.Get(c.base + "/users/" + id)
	require.NoError(c.t, err)
	defer res.Body.Close()
	require.Equal(c.t, http.StatusOK, res.StatusCode)
	var u User
	require.NoError(c.t, json.NewDecoder(res.Body).Decode(&u))
	return u
}

func (c client) status() board.Status {
	c.t.Helper()
	res, err := http.Get(c.base + "/schemashift/api/status")
	require.NoError(c.t, err)
	defer res.Body.Close()
	var snap board.Status
	require.NoError(c.t, json.NewDecoder(res.Body).Decode(&snap))
	return snap
}

// The service's API keeps answering the same through the stages and after
// the contract, the board is mounted and refuses actions without the
// token, and what SQLite could not do safely is in the board's audit.
func TestServiceAcrossStages(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		require.NoError(t, createUsers(t.Context(), db))
		a, err := newApp(t.Context(), db, "s3cret")
		require.NoError(t, err)
		defer a.Close()
		srv := httptest.NewServer(a)
		defer srv.Close()
		c := client{t: t, base: srv.URL}

		c.put("1", "Ada", "Lovelace")
		assert.Equal(t, User{ID: 1, GivenName: "Ada", FamilyName: "Lovelace"}, c.get("1"))

		coord, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan})
		require.NoError(t, err)
		flag, err := a.svc.Flag(migration)
		require.NoError(t, err)
		for _, want := range []flags.Stage{flags.Off, flags.DualWrite, flags.DualWrite, flags.DualWrite, flags.Shadow, flags.Live,
			flags.Rampdown, flags.Complete, flags.Complete} {
			st, err := ledger.Get(t.Context(), db, migration)
			require.NoError(t, err)
			_, err = coord.Advance(t.Context(), rollout.Request{Migration: migration, Actor: "test", Force: true,
				Confirm: st.Phase == ledger.Complete, Reason: "walk the stages"})
			require.NoError(t, err)
			require.Eventually(t, func() bool { return flag.Stage(t.Context()) == want }, 5*time.Second, 20*time.Millisecond)
			if want >= flags.DualWrite && st.Phase < ledger.Complete {
				backfillRow(t, db) // what the backfill does for rows written before
			}
			put := want.String()
			c.put("2", "Grace", put)
			assert.Equal(t, User{ID: 2, GivenName: "Grace", FamilyName: put}, c.get("2"), "at %s", want)
			assert.Equal(t, User{ID: 1, GivenName: "Ada", FamilyName: "Lovelace"}, c.get("1"), "at %s", want)
		}

		snap := c.status()
		require.Len(t, snap.Migrations, 1)
		assert.Equal(t, ledger.Contracted, snap.Migrations[0].Phase)
		assert.False(t, snap.ReadOnly)
		var notes []string
		for _, e := range snap.Audit {
			if e.Kind == "ddl-note" {
				notes = append(notes, e.Reason)
			}
		}
		if db.DriverName() == "sqlite" {
			require.Len(t, notes, 1, "the contract's note")
			assert.Contains(t, notes[0], "sqlite: DROP COLUMN rewrites the table")
		} else {
			assert.Empty(t, notes)
		}

		res, err := http.PostForm(srv.URL+"/schemashift/action", url.Values{"action": {"rollback"}, "migration": {migration}})
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusForbidden, res.StatusCode, "no token, no CSRF cookie: refused")
	})
}

// backfillRow does for the rows written before the dual writes what the
// backfill would: the new columns from full_name. SQLite has no
// split_part; there the space is found with instr.
func backfillRow(t *testing.T, db *sqlx.DB) {
	t.Helper()
	q := `UPDATE users SET given_name = split_part(full_name, ' ', 1),
		family_name = substr(full_name, length(split_part(full_name, ' ', 1)) + 2) WHERE given_name IS NULL`
	if db.DriverName() == "sqlite" {
		q = `UPDATE users SET given_name = substr(full_name, 1, instr(full_name, ' ') - 1),
			family_name = substr(full_name, instr(full_name, ' ') + 1) WHERE given_name IS NULL`
	}
	db.MustExecContext(t.Context(), q)
}

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

// The program itself, with -db postgres and -db sqlite: it opens the
// database, creates its table, says what SQLite gives up, serves the API
// and the board, and stops cleanly when its context ends.
func TestServe(t *testing.T) {
	t.Setenv("DATABASE_URL", pgtest.URL(t)) // for -db postgres; -db sqlite ignores it
	for _, which := range []string{"postgres", "sqlite"} {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			ctx, stop := context.WithCancel(t.Context())
			var out syncBuffer
			done := make(chan error, 1)
			go func() { done <- serve(ctx, &out, ln, which) }()
			c := client{t: t, base: "http://" + ln.Addr().String()}
			require.Eventually(t, func() bool { return strings.Contains(out.String(), "msg=serving") }, 20*time.Second, 20*time.Millisecond, out.String())

			c.put("7", "Grace", "Hopper")
			assert.Equal(t, User{ID: 7, GivenName: "Grace", FamilyName: "Hopper"}, c.get("7"))
			snap := c.status()
			require.Len(t, snap.Migrations, 1)
			assert.Equal(t, ledger.Planned, snap.Migrations[0].Phase)
			assert.True(t, snap.ReadOnly, "no SCHEMASHIFT_BOARD_TOKEN: read-only")

			stop()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not return after its context ended")
			}
			text := out.String()
			t.Log(text)
			assert.Regexp(t, `msg=database driver=\S+ at=`, text, "which database it uses")
			if which == "sqlite" {
				assert.Contains(t, text, "Using embedded SQLite at ")
				assert.Regexp(t, `level=WARN msg="ddl note" note="sqlite: DROP COLUMN rewrites the table`, text)
			} else {
				assert.Contains(t, text, "Starting PostgreSQL")
				u, err := url.Parse(os.Getenv("DATABASE_URL"))
				require.NoError(t, err)
				assert.Contains(t, text, "@"+u.Host+"/service", "the server and the database")
				if p, ok := u.User.Password(); ok && p != "" {
					assert.NotContains(t, text, p)
				}
				assert.NotContains(t, text, "ddl note")
			}
		})
	}
}
