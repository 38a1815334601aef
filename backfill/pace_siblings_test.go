package backfill_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// siblings runs k Backfills of one job at once, each with a pool of its
// own (as k processes of a fleet would), each limited to rate rows a
// second in chunks of 100 rows (so each commits some 2·rate/100
// transactions a second, above DefaultBusyRate), and returns the paces
// each reported and how long the slowest ran.
func siblings(t *testing.T, url string, k int, rate float64, extra ...[]backfill.Option) (paces [][]string, took time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	paces = make([][]string, k)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range k {
		opts := append(quick(),
			backfill.WithRate(rate), backfill.WithChunkSize(100, 100, 100),
			backfill.WithProgress(200*time.Millisecond, func(p backfill.Progress) {
				mu.Lock()
				paces[i] = append(paces[i], p.Pace)
				mu.Unlock()
			}))
		if i < len(extra) {
			opts = append(opts, extra[i]...)
		}
		b, err := backfill.New(ctx, open(t, url), emailJob("siblings"), opts...)
		require.NoError(t, err)
		wg.Go(func() {
			p, err := b.Run(ctx)
			if assert.NoError(t, err) {
				assert.Equal(t, backfill.Done, p.Status)
			}
		})
	}
	wg.Wait()
	return paces, time.Since(start)
}

// Three processes run one job on a database nothing else uses. Each
// commits its chunks at a rate the statistics would show as a foreground
// if it were not a backfill: each must take the others' transactions
// off the statistics, as it takes its own, and work at full pace
// throughout (before, each read the others as a foreground and took
// references, resting seconds at a time for nothing).
//
// A run that does not read the statistics itself (a duty cycle given, a
// budget read from the application's latencies) writes its load all the
// same, for the others to take off.
func TestSiblingRunsAreNotAForeground(t *testing.T) {
	t.Parallel()
	const rate, k = 1500.0, 3
	for _, c := range []struct {
		name  string
		first []backfill.Option // the first process's own
	}{
		{"defaults", nil},
		// Four times as fast as the others: its load alone is past
		// what the others allow for their own (see DefaultBusyRate).
		{"one given a duty cycle", []backfill.Option{backfill.WithRate(4 * rate), backfill.WithDutyCycle(1)}},
		{"one on the application's latencies", []backfill.Option{backfill.WithRate(4 * rate), backfill.WithLatencyBudget(backfill.LatencyBudget{
			Throughput: 0.9, Signal: backfill.NewForegroundRecorder(nil), Baseline: 10 * time.Millisecond})}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			url := pgtest.URL(t)
			total := rate * k
			if c.first != nil {
				total += 3 * rate
			}
			// Long enough for five readings of the statistics in each.
			n := int(total * 5 * backfill.DefaultPaceWindow.Seconds())
			usersTable(t, open(t, url), n)
			paces, took := siblings(t, url, k, rate, c.first)
			require.Greater(t, took, 4*backfill.DefaultPaceWindow, "the job ran too briefly to be read")
			first := 0
			if c.first != nil {
				first = 1 // its pace is its own
			}
			notResting(t, paces, first)
			assert.Zero(t, divergent(t, open(t, url)))
		})
	}
}

// notResting fails t for each process from first whose paces show it
// rested.
func notResting(t *testing.T, paces [][]string, first int) {
	t.Helper()
	for i, ps := range paces[first:] {
		i += first
		require.NotEmpty(t, ps)
		ps = slices.Compact(ps)
		for _, p := range ps {
			if !strings.HasPrefix(p, "duty 1.00, ") {
				t.Errorf("process %d rested with no foreground: %q", i, ps)
				break
			}
		}
	}
}

// Two processes under a real foreground: taking each other off the
// statistics must not hide it. The first chunk of each waits, holding no
// lock, until one of them has seen the foreground arrive; from there each
// paces itself, working well under its whole time.
func TestSiblingRunsStillSeeAForeground(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	const n = 20_000
	usersTable(t, open(t, url), n)
	stop := foregroundLoad(t, open(t, url), n, 2, backfill.NewForegroundRecorder(nil))
	defer stop()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	seen := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	logs := []*chunkLog{{}, {}}
	ends := make([]time.Time, len(logs))
	for i, log := range logs {
		b, err := backfill.New(ctx, open(t, url), emailJob("siblings-under-load"), append(quick(),
			backfill.WithObserver(log),
			backfill.WithProgress(200*time.Millisecond, func(p backfill.Progress) {
				if strings.Contains(p.Pace, "a foreground arrived") {
					once.Do(func() { close(seen) })
				}
			}),
			backfill.WithAfterClaim(func(seq int64) {
				if seq <= int64(len(logs)) {
					select {
					case <-seen:
					case <-ctx.Done():
					}
				}
			}))...)
		require.NoError(t, err)
		wg.Go(func() {
			p, err := b.Run(ctx)
			ends[i] = time.Now()
			if assert.NoError(t, err) {
				assert.Equal(t, backfill.Done, p.Status)
			}
		})
	}
	wg.Wait()
	select {
	case <-seen:
	default:
		t.Fatal("neither process saw the foreground arrive")
	}
	for i, log := range logs {
		var worked time.Duration
		for _, c := range log.all() {
			worked += c.Duration
		}
		if len(log.all()) > 0 {
			assert.Less(t, worked.Seconds(), 0.6*ends[i].Sub(log.firstStart()).Seconds(), "process %d worked %v", i, worked)
		}
	}
}
