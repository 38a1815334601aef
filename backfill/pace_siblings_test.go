package backfill_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
		// It reads the statistics itself, but seldom: the others, every
		// 2s, must find its row moved in every window of theirs.
		{"one on a budget read over 5s windows", []backfill.Option{backfill.WithRate(4 * rate), backfill.WithLatencyBudget(backfill.LatencyBudget{
			Throughput: 0.9, Window: 5 * time.Second, Baseline: 10 * time.Millisecond})}},
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
			if !strings.HasPrefix(p, "duty 1.00, ") || strings.Contains(p, "unread") {
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

// A Backfill run again (after a cancel, say) carries its counts over: the
// other processes must not take all it counted before off one window of
// the statistics, which would hide a foreground of that many
// transactions. Before, each Run wrote its row under a new name, which
// the others read as new, all its counts this window's.
func TestARunAgainDoesNotHideAForeground(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	admin := open(t, u)
	usersTable(t, admin, 30_000)
	first, cancelFirst := context.WithCancel(t.Context())
	defer cancelFirst()
	var again atomic.Bool
	claimed, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	apps := open(t, withApplication(t, u, "run-again"))
	a := mustNew(t, apps, emailJob("run-again"), backfill.WithChunkSize(50, 50, 50),
		backfill.WithAfterClaim(func(seq int64) {
			if !again.Load() {
				if seq == 200 {
					cancelFirst()
				}
				return
			}
			once.Do(func() { close(claimed) })
			select {
			case <-release:
			case <-t.Context().Done():
			}
		}))
	_, err := a.Run(first)
	require.ErrorIs(t, err, context.Canceled)
	t.Logf("the first Run counted %d transactions of its own", a.OwnTx())
	require.Greater(t, a.OwnTx(), int64(300))
	backfill.NewOutside(t, u, admin).Gone(apps, "run-again")

	read := mustNew(t, open(t, u), emailJob("run-again")).StatsReader() // another process's
	_, err = read(t.Context())
	require.NoError(t, err)

	again.Store(true)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(release)
	second, cancelSecond := context.WithCancel(t.Context())
	defer cancelSecond()
	wg.Go(func() { _, _ = a.Run(second) })
	<-claimed // its board's first row is written before its workers start

	const fg = 300
	backfill.StatsTxs(t, u, fg)
	f, err := read(t.Context())
	require.NoError(t, err)
	// Less the reading's own few statements, taken off before the
	// statistics show them (they are owed, see Others).
	assert.GreaterOrEqual(t, f.Ops, int64(fg-10), "the foreground's %d transactions were taken off as the Backfill's", fg)
}

// withApplication is u with application_name app.
func withApplication(t *testing.T, u, app string) string {
	t.Helper()
	p, err := url.Parse(u)
	require.NoError(t, err)
	q := p.Query()
	q.Set("application_name", app)
	p.RawQuery = q.Encode()
	return p.String()
}

// An application role granted the checkpoint tables as they were, but
// not schemashift_backfill_runs (added since): the backfill cannot read
// the other backfills' load. It paces as it did before the board (a
// backfill alone works at full pace), says so in its pace, and never
// reads the failure as a foreground's.
func TestAnUnreadableBoardDoesNotStopThePace(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	owner := open(t, u)
	usersTable(t, owner, 10_000)
	require.NoError(t, backfill.EnsureSchema(t.Context(), owner))
	role := fmt.Sprintf("board_app_%d", time.Now().UnixNano())
	owner.MustExecContext(t.Context(), `CREATE ROLE `+role+` LOGIN PASSWORD 'app'`)
	t.Cleanup(func() {
		owner.MustExecContext(context.Background(), `DROP OWNED BY `+role)
		owner.MustExecContext(context.Background(), `DROP ROLE `+role)
	})
	owner.MustExecContext(t.Context(), `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO `+role)
	owner.MustExecContext(t.Context(), `REVOKE ALL ON schemashift_backfill_runs FROM `+role)
	p, err := url.Parse(u)
	require.NoError(t, err)
	p.User = url.UserPassword(role, "app")
	var mu sync.Mutex
	var paces []string
	b := mustNew(t, open(t, p.String()), emailJob("rights"), backfill.WithRate(2000), backfill.WithChunkSize(100, 100, 100),
		backfill.WithProgress(100*time.Millisecond, func(pr backfill.Progress) {
			mu.Lock()
			defer mu.Unlock()
			paces = append(paces, pr.Pace)
		}))
	st, err := b.Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, backfill.Done, st.Status)
	mu.Lock()
	defer mu.Unlock()
	paces = slices.Compact(paces)
	warned := false
	for _, pace := range paces {
		assert.True(t, strings.HasPrefix(pace, "duty 1.00, "), "no foreground, yet the pace is %q", pace)
		warned = warned || strings.Contains(pace, "permission denied for table schemashift_backfill_runs")
	}
	assert.True(t, warned, "the pace never said the board is unread: %q", paces)
}
