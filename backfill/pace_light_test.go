package backfill_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// lightForeground runs point reads of users(n), one every 20ms (50 a
// second, open loop: what the backfill does cannot slow it), until stop.
func lightForeground(t *testing.T, db *sqlx.DB, n int) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			var email string
			if err := db.GetContext(context.WithoutCancel(t.Context()), &email, `SELECT email FROM users WHERE id = $1`, 3*(1+rand.IntN(n))); err != nil {
				t.Errorf("foreground: %v", err)
				return
			}
		}
	})
	return sync.OnceFunc(func() { close(quit); wg.Wait() })
}

// A steady foreground of 50 transactions a second arrives (the first
// chunk waits, holding no lock, until the default pace has taken its
// reference); the pace starts at a tenth and grows. The foreground runs
// throughout, unharmed (open loop): every reading judged against the
// reference must see it, although the backfill's own rate soon passes
// it. Eight judged readings, or the run's end after two, pass; one that
// reads "no foreground in the window" (the pace would freeze where it
// is: each reference sees the foreground again) fails.
func TestDefaultPaceKeepsSightOfALightForeground(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	db := open(t, url)
	const n = 300_000
	usersTable(t, db, n)
	stop := lightForeground(t, open(t, url), n) // a pool of its own, as an application's
	defer stop()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	arrived := make(chan struct{})
	var arrivedOnce, verdictOnce sync.Once
	var mu sync.Mutex
	var paces []string
	judged := map[string]bool{}
	blind := ""
	verdict := func(pace string) {
		verdictOnce.Do(func() { blind = pace; cancel() })
	}
	b := mustNew(t, db, emailJob("light"),
		// Each report is a transaction of the backfill's own: 4 a second.
		backfill.WithProgress(250*time.Millisecond, func(p backfill.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if len(paces) == 0 || paces[len(paces)-1] != p.Pace {
				paces = append(paces, p.Pace)
			}
			switch {
			case p.Pace == "duty 0.10, a foreground arrived: starting":
				arrivedOnce.Do(func() { close(arrived) })
			case strings.Contains(p.Pace, "no foreground in the window"):
				verdict(p.Pace)
			case strings.Contains(p.Pace, "throughput "):
				if judged[p.Pace] = true; len(judged) >= 8 {
					verdict("")
				}
			}
		}),
		backfill.WithAfterClaim(func(seq int64) {
			if seq == 1 {
				select {
				case <-arrived:
				case <-ctx.Done():
				}
			}
		}))
	_, err := b.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("paces: %q", paces)
	// Its windows hold too few operations to judge its throughput by
	// (see minJudgedOps): the pace may grow to full and end the run first.
	if err != nil {
		require.True(t, errors.Is(err, context.Canceled), "run: %v", err)
	}
	require.NoError(t, t.Context().Err())
	assert.Empty(t, blind, "a foreground of 50 tx/s that ran throughout read as none once the backfill's own rate passed it")
	assert.GreaterOrEqual(t, len(judged), 2, "readings judged against the reference")
}
