package backfill_test

import (
	"context"
	"errors"
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
// per resume. Each run is killed once its job has crossed a random number of
// rows beyond the last run's: a kill before the job's row exists, or before
// the run did any work, would test nothing (and under load a fixed delay
// lands there).
func TestKilledAndResumed(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	db := open(t, url)
	const rows = 20000
	usersTable(t, db, rows)

	stop := dualWrites(t, db, rows, time.Millisecond)
	defer stop()

	// spawn starts a worker; its exit status arrives on the channel.
	spawn := func() (*exec.Cmd, <-chan error) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"=1", workerURLEnv+"="+url)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		return cmd, exited
	}
	// rowsDone waits until the job has done at least atLeast rows and
	// returns how many; it fails if the worker exits first.
	rowsDone := func(exited <-chan error, atLeast int64) int64 {
		deadline := time.NewTimer(30 * time.Second)
		defer deadline.Stop()
		poll := time.NewTicker(2 * time.Millisecond)
		defer poll.Stop()
		for {
			st, err := backfill.State(t.Context(), db, "killed")
			if err == nil && st.RowsDone >= atLeast {
				return st.RowsDone
			}
			if err != nil && !errors.Is(err, backfill.ErrUnknownJob) { // unknown: not registered yet
				require.NoError(t, err)
			}
			select {
			case <-poll.C:
			case err := <-exited:
				require.FailNowf(t, "worker exited early", "before %d rows done (last: %d): %v", atLeast, st.RowsDone, err)
			case <-deadline.C:
				require.FailNowf(t, "worker too slow", "%d rows done after 30 s, waiting for %d", st.RowsDone, atLeast)
			}
		}
	}
	kills := 0
	var done int64
	for range 5 {
		cmd, exited := spawn()
		// One to nine chunks of 200 past the last run (five runs: at most
		// 45% of the rows, so the last run still has work).
		reached := rowsDone(exited, done+1+rand.Int64N(1800))
		if err := cmd.Process.Kill(); err == nil {
			kills++
		}
		<-exited // killed: the status says so
		st, err := backfill.State(t.Context(), db, "killed")
		require.NoError(t, err)
		require.GreaterOrEqual(t, st.RowsDone, reached, "a checkpoint was lost")
		done = st.RowsDone
		t.Logf("killed past %d rows done (%d at exit), %d chunks redone", reached, st.RowsDone, st.ChunksRedone)
	}
	_, exited := spawn()
	require.NoError(t, <-exited, "the last run finishes")
	writes := stop()

	st, err := backfill.State(t.Context(), db, "killed")
	require.NoError(t, err)
	assert.Equal(t, backfill.Done, st.Status)
	assert.Equal(t, int64(rows), st.RowsDone, "every chunk counted once")
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
	assert.Equal(t, int64(rows), rep.Compared)
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
