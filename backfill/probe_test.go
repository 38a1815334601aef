package backfill_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// A budget read by a probe spreads each window's probes across the
// window (its baseline's, its references' and the readings' between),
// rather than run them back to back at the window's end, where they
// would time a moment and not the window.
func TestABudgetSpreadsItsProbesAcrossEachWindow(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	usersTable(t, db, 1000)
	const (
		n      = 5
		window = 250 * time.Millisecond
		want   = 4 * n // the baseline's probes and three windows'
	)
	var (
		mu    sync.Mutex
		calls []time.Time
	)
	enough := make(chan struct{})
	probe := func(ctx context.Context) error {
		mu.Lock()
		calls = append(calls, time.Now())
		if len(calls) == want {
			close(enough)
		}
		mu.Unlock()
		_, err := db.ExecContext(ctx, `SELECT 1`)
		return err
	}
	b := mustNew(t, db, emailJob("probed"), backfill.WithChunkSize(100, 100, 100),
		backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Signal: backfill.ProbeForeground(n, probe), Baseline: window, Window: window}),
		// The second chunk waits for the probes of the baseline and three windows.
		secondChunkAwaits(t, enough, "probes for three windows"))
	p, err := b.Run(t.Context())
	require.NoError(t, err)
	require.Equal(t, backfill.Done, p.Status)
	assert.Zero(t, divergent(t, db))
	st, err := b.State(t.Context())
	require.NoError(t, err)
	assert.Equal(t, backfill.SourceProbe, st.Foreground)

	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(calls), want)
	var gaps []time.Duration
	for i := 1; i < want; i++ {
		gaps = append(gaps, calls[i].Sub(calls[i-1]))
	}
	slices.Sort(gaps)
	// Spread, consecutive probes are a fifth of a window apart (50ms);
	// back to back, four gaps in five are one probe's time.
	assert.GreaterOrEqual(t, gaps[len(gaps)/2], window/(2*n), "the median gap between probes; all: %v", gaps)
}

// A probe that fails is read once a window: the budget backs off
// (halving the pace) window by window, as it does for any signal that
// fails, not at every failed probe.
func TestAFailingProbeFailsOnceAWindow(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	usersTable(t, db, 1000)
	const (
		n      = 10
		window = 200 * time.Millisecond
		fails  = 5
	)
	var (
		mu     sync.Mutex
		calls  int
		failed []time.Time
	)
	enough := make(chan struct{})
	probe := func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls <= n {
			return nil // the baseline's
		}
		failed = append(failed, time.Now())
		if len(failed) == fails {
			close(enough)
		}
		return errors.New("probe down")
	}
	b := mustNew(t, db, emailJob("probe-down"), backfill.WithChunkSize(100, 100, 100),
		backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Signal: backfill.ProbeForeground(n, probe), Baseline: window, Window: window}),
		secondChunkAwaits(t, enough, "failed probes"))
	p, err := b.Run(t.Context())
	require.NoError(t, err)
	require.Equal(t, backfill.Done, p.Status)
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(failed), fails)
	// Each failed reading waits out its window: fails of them span
	// fails−1 windows at least (a reading is only ever late).
	assert.GreaterOrEqual(t, failed[fails-1].Sub(failed[0]), (fails-1)*window, "first and last of %d failed probes", fails)
}

// secondChunkAwaits holds a Run's second chunk, claimed (no row locked),
// until ready closes, so that the Run lasts as long as a test needs to
// read its pace; it fails t after 30 s without what (a bound on failure,
// not a wait for success).
func secondChunkAwaits(t *testing.T, ready <-chan struct{}, what string) backfill.Option {
	return backfill.WithAfterClaim(func(seq int64) {
		if seq != 2 {
			return
		}
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			t.Errorf("no %s in 30 s", what)
		}
	})
}
