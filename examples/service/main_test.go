package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/rollout"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The service's API keeps answering the same through the stages, the
// board is mounted and refuses actions without the token.
func TestServiceAcrossStages(t *testing.T) {
	db := pgtest.DB(t)
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, full_name text)`)
	a, err := newApp(t.Context(), db, "s3cret")
	require.NoError(t, err)
	defer a.Close()
	srv := httptest.NewServer(a)
	defer srv.Close()

	put := func(id, given, family string) {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/users/"+id, strings.NewReader(`{"given_name":"`+given+`","family_name":"`+family+`"}`))
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusNoContent, res.StatusCode)
	}
	get := func(id string) User {
		res, err := http.Get(srv.URL + "/users/" + id)
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		var u User
		require.NoError(t, json.NewDecoder(res.Body).Decode(&u))
		return u
	}
	put("1", "Ada", "Lovelace")
	assert.Equal(t, User{ID: 1, GivenName: "Ada", FamilyName: "Lovelace"}, get("1"))

	coord, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan})
	require.NoError(t, err)
	flag, err := a.svc.Flag(migration)
	require.NoError(t, err)
	for _, want := range []flags.Stage{flags.Off, flags.DualWrite, flags.DualWrite, flags.DualWrite, flags.Shadow, flags.Live, flags.Rampdown, flags.Complete} {
		_, err := coord.Advance(t.Context(), rollout.Request{Migration: migration, Actor: "test", Force: true, Reason: "walk the stages"})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return flag.Stage(t.Context()) == want }, 5*time.Second, 20*time.Millisecond)
		if want >= flags.DualWrite {
			backfillRow(t, db) // what the backfill does for rows written before
		}
		put("2", "Grace", want.String())
		assert.Equal(t, User{ID: 2, GivenName: "Grace", FamilyName: want.String()}, get("2"), "at %s", want)
		assert.Equal(t, "Ada", get("1").GivenName, "at %s", want)
	}

	res, err := http.Get(srv.URL + "/schemashift/api/status")
	require.NoError(t, err)
	var snap rollout.BoardStatus
	require.NoError(t, json.NewDecoder(res.Body).Decode(&snap))
	res.Body.Close()
	require.Len(t, snap.Migrations, 1)
	assert.Equal(t, rollout.Complete, snap.Migrations[0].Phase)
	assert.False(t, snap.ReadOnly)

	res, err = http.PostForm(srv.URL+"/schemashift/action", url.Values{"action": {"rollback"}, "migration": {migration}})
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusForbidden, res.StatusCode, "no token, no CSRF cookie: refused")
}

func backfillRow(t *testing.T, db *sqlx.DB) {
	t.Helper()
	db.MustExecContext(t.Context(), `UPDATE users SET given_name = split_part(full_name, ' ', 1),
		family_name = substr(full_name, length(split_part(full_name, ' ', 1)) + 2) WHERE given_name IS NULL`)
}
