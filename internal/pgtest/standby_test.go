package pgtest_test

import (
	"os"
	"path"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, msg)
		}
		<-tick.C
	}
}

// A standby streams what its primary writes, is read-only, shows in the
// primary's pg_stat_replication under its name (quotes and backslashes
// kept), goes from there when stopped, and leaves no files or slot when
// closed.
func TestStandby(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	primary := pgtest.Cluster(t)
	name := `it's a \ standby`
	sb, err := primary.StartStandby(ctx, pgtest.StandbyOptions{Name: name, StatusInterval: time.Second})
	require.NoError(t, err)
	dir := pgtest.StandbyDir(sb)
	require.DirExists(t, dir)

	dbURL, err := primary.CreateDatabase(ctx, "replicated")
	require.NoError(t, err)
	p, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer p.Close(ctx)
	_, err = p.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)`)
	require.NoError(t, err)

	u, err := dbName(dbURL)
	require.NoError(t, err)
	sURL, err := sb.DatabaseURL(u)
	require.NoError(t, err)
	var s *pgx.Conn
	eventually(t, 30*time.Second, func() bool {
		s, err = pgx.Connect(ctx, sURL)
		return err == nil
	}, "the database reaches the standby")
	defer s.Close(ctx)
	eventually(t, 30*time.Second, func() bool {
		var n int
		return s.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n) == nil && n == 100
	}, "the rows reach the standby")
	var inRecovery bool
	require.NoError(t, s.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery))
	assert.True(t, inRecovery)
	_, err = s.Exec(ctx, `INSERT INTO t VALUES (101)`)
	require.Error(t, err, "a standby is read-only")

	var got string
	require.NoError(t, p.QueryRow(ctx, `SELECT application_name FROM pg_stat_replication`).Scan(&got))
	assert.Equal(t, name, got)

	require.NoError(t, sb.FreezeReceiver(ctx))
	require.Error(t, sb.FreezeReceiver(ctx), "frozen already")
	require.NoError(t, sb.ThawReceiver())

	require.NoError(t, sb.Stop())
	eventually(t, 30*time.Second, func() bool {
		var n int
		return p.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication`).Scan(&n) == nil && n == 0
	}, "the stopped standby leaves pg_stat_replication")
	require.NoError(t, sb.Stop(), "again")
	require.NoError(t, sb.Close())
	require.NoError(t, sb.Close(), "again")
	_, err = os.Stat(dir)
	assert.ErrorIs(t, err, os.ErrNotExist)
	var slots int
	require.NoError(t, p.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots`).Scan(&slots))
	assert.Zero(t, slots, "the slot is dropped")
}

// Only a private cluster has files to copy a standby from.
func TestStandbyOfExistingServer(t *testing.T) { // not parallel: t.Setenv
	primary := pgtest.Cluster(t)
	t.Setenv("PGTEST_STANDBY_URL", primary.URL())
	existing, err := pgtest.Start(t.Context(), pgtest.Options{URLEnv: "PGTEST_STANDBY_URL"})
	require.NoError(t, err)
	defer existing.Close()
	_, err = existing.StartStandby(t.Context(), pgtest.StandbyOptions{})
	require.ErrorContains(t, err, "not a private cluster")
}

func dbName(dbURL string) (string, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return "", err
	}
	return path.Base(cfg.Database), nil
}
