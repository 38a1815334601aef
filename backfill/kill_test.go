package backfill_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/pgtest"
)

const (
	workerEnv    = "SCHEMASHIFT_BACKFILL_WORKER"
	workerURLEnv = "SCHEMASHIFT_BACKFILL_WORKER_URL"
)

// workerMain is the subprocess of TestKilledAndResumed: it runs the job
// until done, unless killed first.
func workerMain() int {
	ctx := context.Background()
	db, err := sqlx.Open("pgx", os.Getenv(workerURLEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	b, err := backfill.New(ctx, db, emailJob("killed"), backfill.WithWorkerID("worker-1"),
		backfill.WithChunkSize(200, 200, 200), backfill.WithRate(8000), backfill.WithRetries(50, 5*time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := b.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// A backfill SIGKILLed at random points under dual-write traffic, and
// resumed each time, ends with every row right and at most one chunk redone
// per resume.
func TestKilledAndResumed(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	db := open(t, url)
	usersTable(t, db, 20000)

	stop := dualWrites(t, db, 20000, time.Millisecond)
	defer stop()

	spawn := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"=1", workerURLEnv+"="+url)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		return cmd
	}
	kills := 0
	for range 5 {
		cmd := spawn()
		time.Sleep(time.Duration(300+rand.IntN(500)) * time.Millisecond)
		if err := cmd.Process.Kill(); err == nil {
			kills++
		}
		_ = cmd.Wait()
		st, err := backfill.State(t.Context(), db, "killed")
		require.NoError(t, err)
		t.Logf("killed at %d rows done, %d chunks redone", st.RowsDone, st.ChunksRedone)
	}
	final := spawn()
	require.NoError(t, final.Wait(), "the last run finishes")
	writes := stop()

	st, err := backfill.State(t.Context(), db, "killed")
	require.NoError(t, err)
	assert.Equal(t, backfill.Done, st.Status)
	assert.Equal(t, int64(20000), st.RowsDone, "every chunk counted once")
	assert.LessOrEqual(t, st.ChunksRedone, int64(kills), "at most one chunk redone per resume")
	assert.Greater(t, st.Runs, int64(1), "the resumes are counted")
	assert.LessOrEqual(t, st.Runs, int64(kills+1))
	var maxAttempts int
	require.NoError(t, db.GetContext(t.Context(), &maxAttempts, `SELECT max(attempts) FROM schemashift_backfill_chunks`))
	assert.LessOrEqual(t, maxAttempts, 2)

	b := mustNew(t, db, emailJob("killed"))
	rep, err := b.Verify(t.Context(), backfill.VerifyOptions{})
	require.NoError(t, err)
	assert.Zero(t, rep.Divergent, "%+v", rep.Diverged)
	assert.Equal(t, int64(20000), rep.Compared)
	t.Logf("%d kills, %d chunks redone, %d dual writes during the backfill", kills, st.ChunksRedone, writes)
}

func TestFirstCheckpointWithinASecond(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	usersTable(t, db, 50000)
	b := mustNew(t, db, emailJob("first"), backfill.WithRate(20000))
	start := time.Now()
	done := runInBackground(t, b)
	st := waitRows(t, db, "first", 1)
	assert.Less(t, time.Since(start), time.Second, "first checkpoint after %v", time.Since(start))
	assert.Positive(t, st.RowsDone)
	require.NoError(t, backfill.Cancel(t.Context(), db, "first"))
	assert.ErrorIs(t, <-done, backfill.ErrCancelled)
}
