package board_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// The board judges everything at one time of the coordinator's clock, and
// says how long ago by it.
func TestBoardTimesAreTheClocks(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	ctx := t.Context()
	clk := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.UsersPlan(db)}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	_, err = c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "setup"})
	require.NoError(t, err)
	in := rollouttest.InstanceAt(t, db, "api-1", "users_split_name", clk.Now)
	rollouttest.Beat(t, in, flags.Off)
	b, err := board.New(c)
	require.NoError(t, err)
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)

	at := clk.Add(50 * time.Second) // within the default age-out of a minute
	snap, err := b.Snapshot(ctx)
	require.NoError(t, err)
	assert.True(t, snap.GeneratedAt.Equal(at), "%v", snap.GeneratedAt)
	require.Len(t, snap.Migrations, 1)
	assert.True(t, snap.Migrations[0].Fleet.Now.Equal(at), "%v", snap.Migrations[0].Fleet.Now)
	res, err := http.Get(srv.URL + "/")
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	assert.Contains(t, string(body), "since 50 s ago", "the phase began 50 s before, by the clock")
	assert.Contains(t, string(body), "<td>50 s ago</td>", "the instance was last seen 50 s before")
	assert.Contains(t, string(body), "Generated 2032-01-01 00:00:49 UTC")
}
