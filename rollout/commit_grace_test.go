package rollout_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// A transition whose COMMIT hangs on the server (synchronous replication
// waiting for a standby that is not there) ends within the caller's
// deadline and the commit grace, and says the truth: made (the ledger
// shows it), not made, or ErrOutcomeUnknown; never an error while the
// ledger shows it made. Meanwhile and after, the migration is not locked
// for good: another operator's advance gets its answer once the server
// commits again.
func TestTransitionCommitThatHangsEndsWithinItsGrace(t *testing.T) {
	t.Parallel()
	srv := pgtest.Cluster(t) // ALTER SYSTEM below: a cluster of this test's own
	ctx := t.Context()
	url, err := srv.CreateDatabase(ctx, "commit_grace")
	require.NoError(t, err)
	admin := rollouttest.Open(t, srv.URL())
	db := rollouttest.Open(t, url)
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{rollouttest.LedgerPlan()}, rollout.WithCommitGrace(300*time.Millisecond))
	require.NoError(t, err)

	var name string
	require.NoError(t, db.GetContext(ctx, &name, `SELECT current_database()`))
	// The cluster runs with synchronous_commit off on its command line,
	// which only a database's (or a role's) setting overrides.
	admin.MustExecContext(ctx, `ALTER DATABASE "`+name+`" SET synchronous_commit = on`)
	admin.MustExecContext(ctx, `ALTER SYSTEM SET synchronous_standby_names = 'nobody'`)
	admin.MustExecContext(ctx, `SELECT pg_reload_conf()`)
	reset := func() {
		admin.MustExecContext(context.Background(), `ALTER SYSTEM RESET synchronous_standby_names`)
		admin.MustExecContext(context.Background(), `SELECT pg_reload_conf()`)
	}
	t.Cleanup(reset)
	// New connections read the database's settings, and every one the
	// reloaded file: wait until one does.
	db.SetMaxIdleConns(0)
	waitSetting(t, db, "synchronous_standby_names", "nobody")
	waitSetting(t, db, "synchronous_commit", "on")

	callCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Advance(callCtx, rollout.Request{Migration: "users_split_name", Actor: "ci"})
		done <- err
	}()
	var got error
	select {
	case got = <-done:
	case <-time.After(30 * time.Second):
		reset()
		<-done
		t.Fatal("an advance with a 300 ms deadline and a 300 ms grace was still running after 30 s")
	}
	reset()
	waitSetting(t, db, "synchronous_standby_names", "")
	st, err := ledger.Get(ctx, db, "users_split_name")
	require.NoError(t, err)
	switch {
	case got == nil:
		assert.Equal(t, ledger.Expanded, st.Phase, "a success is a transition made")
	case errors.Is(got, rollout.ErrOutcomeUnknown):
		t.Logf("outcome unknown, as it may be: %v (now at %s)", got, st.Phase)
	default:
		assert.Equal(t, ledger.Planned, st.Phase, "an error is a transition not made: %v", got)
	}
	// The migration is not held: the next advance gets an answer.
	next, err := c.Advance(ctx, rollout.Request{Migration: "users_split_name", Actor: "ci", Version: st.Version})
	require.NoError(t, err)
	assert.Equal(t, st.Phase+1, next.Phase)
}

// waitSetting waits until a new connection of db reads setting as want.
func waitSetting(t *testing.T, db *sqlx.DB, setting, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := db.Connx(t.Context())
		require.NoError(t, err)
		var got string
		err = conn.GetContext(t.Context(), &got, `SELECT current_setting($1)`, setting)
		conn.Close()
		require.NoError(t, err)
		if got == want {
			return
		}
		require.True(t, time.Now().Before(deadline), "%s is %q, not %q", setting, got, want)
	}
}
