package rollout_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

// 1000 transition attempts from eight goroutines and a second process:
// each transition is won exactly once, the versions have no gap, and every
// attempt, won or refused, is in the audit trail.
func TestConcurrentAdvances(t *testing.T) {
	t.Parallel()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url := pgtest.URL(t)
		testConcurrentAdvances(t, rollouttest.Open(t, url), "pgx", url)
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "race.db")
		db, err := sqlite.Open(t.Context(), path)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		testConcurrentAdvances(t, db, sqlite.DriverName, path)
	})
}

// testConcurrentAdvances races on db; the second process opens source
// with driver.
func testConcurrentAdvances(t *testing.T, db *sqlx.DB, driver, source string) {
	ctx := t.Context()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{racePlan()})
	require.NoError(t, err)

	const goroutines, each, remote = 8, 75, 400 // 8×75 + 400 = 1000
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), racerEnv+"=1", racerURL+"="+source, racerDriver+"="+driver, racerTries+"="+strconv.Itoa(remote))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())

	var wins atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				won, err := attempt(ctx, c, db, "process-1/"+strconv.Itoa(g))
				if err != nil {
					t.Error(err)
					return
				}
				if won {
					wins.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, cmd.Wait(), out.String())
	remoteWins, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out.String()), "wins")))
	require.NoError(t, err, out.String())
	total := wins.Load() + int64(remoteWins)

	trail, err := ledger.Audit(ctx, db, "race", 10000)
	require.NoError(t, err)
	var attempts, accepted int64
	var versions []int64
	prev := "planned"
	for _, e := range trail {
		if e.Kind == "register" {
			continue
		}
		attempts++
		if !e.Accepted {
			assert.Contains(t, e.Reason, "changed since it was read")
			continue
		}
		accepted++
		require.NotNil(t, e.Version)
		versions = append(versions, *e.Version)
		assert.Equal(t, prev, e.FromPhase, "each win starts where the previous one ended")
		prev = e.ToPhase
	}
	assert.Equal(t, int64(goroutines*each+remote), attempts, "every attempt is in the audit trail")
	assert.Equal(t, total, accepted, "every win is recorded once")
	for i, v := range versions {
		require.Equal(t, int64(i+2), v, "versions run without a gap")
	}
	st, err := ledger.Get(ctx, db, "race")
	require.NoError(t, err)
	assert.Equal(t, int64(len(versions)+1), st.Version)
	assert.Greater(t, total, int64(50), "enough transitions were won to mean something")
	t.Logf("%d attempts, %d won (%d by the second process)", attempts, total, remoteWins)
}
