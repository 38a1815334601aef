package backfill_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

func walPosition(t *testing.T, db *sqlx.DB) int64 {
	t.Helper()
	var pos int64
	require.NoError(t, db.GetContext(t.Context(), &pos, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint`))
	return pos
}

// walRun runs a one-worker backfill of a fresh usersTable(rows) in a new
// database of srv, in chunks of 100 rows, and returns the WAL the server
// wrote over the Run, how long it took, and the throttle reasons its State
// showed meanwhile.
func walRun(t *testing.T, srv *pgtest.Server, rows int, opts ...backfill.Option) (wal int64, took time.Duration, reasons []string) {
	t.Helper()
	ctx := t.Context()
	u, err := srv.CreateDatabase(ctx, "wal")
	require.NoError(t, err)
	db := open(t, u)
	usersTable(t, db, rows)
	b := mustNew(t, db, emailJob("wal"), append([]backfill.Option{backfill.WithChunkSize(100, 100, 100)}, opts...)...)
	db.MustExecContext(ctx, `CHECKPOINT`) // no checkpoint's log amid the run
	start, began := walPosition(t, db), time.Now()
	ran := make(chan error, 1)
	go func() {
		_, err := b.Run(ctx)
		ran <- err
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-ran:
			require.NoError(t, err)
			took = time.Since(began)
			require.Zero(t, divergent(t, db))
			return walPosition(t, db) - start, took, reasons
		case <-tick.C:
			st, err := b.State(ctx)
			require.NoError(t, err)
			if st.Throttle != "" {
				reasons = append(reasons, st.Throttle)
			}
		}
	}
}

// A WAL-rate cap holds the server's log under it over the run, shows as
// the throttle reason in State, and makes the backfill slower than one
// without it, whose log rate it would exceed.
func TestWALRateCap(t *testing.T) {
	t.Parallel()
	srv := pgtest.Cluster(t) // its whole log is the test's
	const rows = 3000
	free, freeTook, _ := walRun(t, srv, rows)
	// A cap a third of the free run's log a second: the capped run
	// takes about two seconds (the first second's worth passes at once).
	limit := max(free/3, 16<<10)
	capped, cappedTook, reasons := walRun(t, srv, rows, backfill.WithWALRate(limit))
	chunk := free / (rows / 100)
	t.Logf("free: %d bytes of WAL in %v (%.0f bytes/s); capped at %d bytes/s: %d bytes in %v (%.0f bytes/s, %.0f past the first second's worth); %d bytes a chunk",
		free, freeTook.Round(time.Millisecond), float64(free)/freeTook.Seconds(), limit,
		capped, cappedTook.Round(time.Millisecond), float64(capped)/cappedTook.Seconds(), float64(capped-limit)/cappedTook.Seconds(), chunk)

	// The bound by construction: a chunk starts only while the log is
	// within the cap plus one second's worth (the bucket), so over the
	// run the log is at most cap × time + one second's worth + the chunk
	// in flight; one chunk more covers what the Run writes before its
	// first reading (its start, its heartbeat) and the readings' own
	// distance from the test's.
	bound := float64(limit)*cappedTook.Seconds() + float64(limit) + 2*float64(chunk)
	assert.LessOrEqual(t, float64(capped), bound, "the capped run's log stays under the cap")
	assert.Greater(t, float64(free)/freeTook.Seconds(), float64(limit), "the free run writes faster than the cap: the cap binds")
	assert.Less(t, freeTook, cappedTook, "the free run is faster")
	assert.True(t, func() bool {
		for _, r := range reasons {
			if strings.HasPrefix(r, "WAL rate over") {
				return true
			}
		}
		return false
	}(), "State shows the WAL rate throttling: %q", reasons)
}

// The cap is refused where the log has no position (SQLite), and when it
// is not positive.
func TestWALRateRefused(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 10)
		_, err := backfill.New(t.Context(), db, emailJob("wal"), backfill.WithWALRate(1<<20))
		if dbtest.IsSQLite(t, db) {
			require.ErrorIs(t, err, errors.ErrUnsupported)
		} else {
			require.NoError(t, err)
		}
		for _, bad := range []int64{0, -1} {
			_, err := backfill.New(t.Context(), db, emailJob("wal"), backfill.WithWALRate(bad))
			require.ErrorContains(t, err, "not positive")
		}
	})
}
