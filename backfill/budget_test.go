package backfill_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// foregroundLoad runs clients point reads and point updates of users,
// timing each into rec, until the returned stop.
func foregroundLoad(t *testing.T, db *sqlx.DB, n, clients int, rec *backfill.ForegroundRecorder) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			ctx := context.WithoutCancel(t.Context())
			for i := 0; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				id := 3 * (1 + rand.IntN(n))
				start := time.Now()
				var err error
				if i%2 == 0 {
					var email string
					err = db.GetContext(ctx, &email, `SELECT email FROM users WHERE id = $1`, id)
				} else {
					_, err = db.ExecContext(ctx, `UPDATE users SET email = $1, email_lower = lower($1) WHERE id = $2`, fmt.Sprintf("Fg%d.%d@Example.COM", c, i), id)
				}
				if err != nil {
					t.Errorf("foreground: %v", err)
					return
				}
				rec.Observe(time.Since(start))
			}
		})
	}
	return sync.OnceFunc(func() { close(quit); wg.Wait() })
}

// paceLog records the progress reports of a budgeted backfill.
type paceLog struct {
	mu      sync.Mutex
	reports []backfill.Progress
}

func (l *paceLog) add(p backfill.Progress) {
	l.mu.Lock()
	l.reports = append(l.reports, p)
	l.mu.Unlock()
}

// A budget fed by the application's own latencies, under a foreground
// load of point reads and updates on real PostgreSQL: the backfill
// measures a baseline first, then works only part of the time (it starts
// at a tenth, and rests between chunks), says what it paces by in State
// and in its progress reports, and still finishes every row.
func TestLatencyBudgetPacesByTheApplication(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	const n = 2_000 // enough for a baseline, a paced stretch and rests; a budget at its floor under -race on a loaded machine walks ~100 rows/s
	usersTable(t, db, n)
	rec := backfill.NewForegroundRecorder(nil)
	stop := foregroundLoad(t, db, n, 2, rec)
	defer stop()
	log := &paceLog{}
	chunks := &chunkLog{}
	// The second chunk waits, claimed (no row locked), for a reading of
	// the budget against the baseline: a fast run may end its 2,000 rows
	// before the first window does.
	read := make(chan struct{})
	var once sync.Once
	var held time.Duration
	b := mustNew(t, db, emailJob("budgeted"), backfill.WithObserver(chunks),
		backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Throughput: 0.9, Signal: rec, Baseline: 500 * time.Millisecond, Window: 200 * time.Millisecond}),
		backfill.WithProgress(50*time.Millisecond, func(p backfill.Progress) {
			log.add(p)
			if strings.Contains(p.Pace, "latency ") {
				once.Do(func() { close(read) })
			}
		}),
		backfill.WithAfterClaim(func(seq int64) {
			if seq != 2 {
				return
			}
			at := time.Now()
			select {
			case <-read:
			case <-time.After(30 * time.Second): // a bound on failure, not a wait for success
				t.Error("no reading against the baseline in 30 s")
			}
			held = time.Since(at)
		}))
	start := time.Now()
	p, err := b.Run(t.Context())
	took := time.Since(start)
	stop()
	require.NoError(t, err)
	require.Equal(t, backfill.Done, p.Status)
	assert.Zero(t, divergent(t, db))

	st, err := b.State(t.Context())
	require.NoError(t, err)
	assert.Equal(t, backfill.SourceApplication, st.Foreground, "State names the signal in use")
	assert.Contains(t, st.Pace, "duty ")
	// The last reading against the baseline, or, when the run ended in
	// a reference window (a pace over budget takes one two windows on),
	// that reference and the pace after it.
	if !strings.Contains(st.Pace, "taking a reference (then ") {
		assert.Contains(t, st.Pace, "latency ", "the last reading against the baseline")
	}

	log.mu.Lock()
	defer log.mu.Unlock()
	var measuring, paced, judged bool
	for _, r := range log.reports {
		assert.Equal(t, backfill.SourceApplication, r.Foreground)
		measuring = measuring || r.Pace == "measuring the baseline"
		paced = paced || strings.HasPrefix(r.Pace, "duty 0.")
		judged = judged || strings.Contains(r.Pace, "latency ")
	}
	assert.True(t, measuring, "a report while the baseline was measured")
	assert.True(t, paced, "a report of a pace below full")
	assert.True(t, judged, "a report of a reading against the baseline")
	// Resting between chunks: the chunks' own time is a part of the run's.
	var worked time.Duration
	for _, c := range chunks.all() {
		worked += c.Duration
	}
	t.Logf("%d chunks, worked %v of %v (%v held waiting for a reading); last pace: %s", len(chunks.all()), worked, took, held, st.Pace)
	assert.Less(t, worked, took-500*time.Millisecond-held, "the backfill rested between chunks")
}

// Without a signal of its own, a budget reads the database's statistics:
// on PostgreSQL it says so in State; SQLite keeps none, and New refuses
// the budget.
func TestLatencyBudgetFromTheDatabase(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 3000)
		budget := backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 2, Baseline: 100 * time.Millisecond, Window: 50 * time.Millisecond})
		if isSQLite(db) {
			_, err := backfill.New(t.Context(), db, emailJob("db-budget"), budget)
			require.Error(t, err)
			assert.True(t, errors.Is(err, errors.ErrUnsupported), "%v", err)
			return
		}
		rec := backfill.NewForegroundRecorder(nil)
		stop := foregroundLoad(t, db, 3000, 1, rec)
		defer stop()
		b := mustNew(t, db, emailJob("db-budget"), budget)
		p, err := b.Run(t.Context())
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, p.Status)
		st, err := b.State(t.Context())
		require.NoError(t, err)
		assert.Equal(t, backfill.SourceDatabase, st.Foreground)
		assert.Contains(t, st.Pace, "duty ")
		assert.Zero(t, divergent(t, db))
	})
}

func TestLatencyBudgetRefusesNonsense(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	usersTable(t, db, 10)
	for _, bud := range []backfill.LatencyBudget{
		{}, {P99: 1}, {P99: 0.5}, {Throughput: 1}, {Throughput: -0.1}, {P99: 2, Window: -1},
		{P99: 2, Signal: backfill.ProbeForeground(5, nil)}, // a probe with nothing to run
	} {
		_, err := backfill.New(t.Context(), db, emailJob("nonsense"), backfill.WithLatencyBudget(bud))
		assert.ErrorContains(t, err, "latency budget", "%+v", bud)
	}
}

// By default on PostgreSQL a backfill works flat out while the
// database's statistics show no one else, and, once two readings in a
// row show a foreground, takes a reference (resting) and paces itself to
// keep DefaultThroughputKept of its throughput; it says which in State.
// The first chunk waits, after its claim and before its transaction (so
// holding no lock), until the pace has read the foreground as expected.
func TestDefaultsRestWhileTheDatabaseIsBusy(t *testing.T) {
	t.Parallel()
	for _, busy := range []bool{true, false} {
		t.Run(fmt.Sprint("busy=", busy), func(t *testing.T) {
			t.Parallel()
			db := pgtest.DB(t)
			const n = 20_000
			usersTable(t, db, n)
			if busy {
				stop := foregroundLoad(t, db, n, 2, backfill.NewForegroundRecorder(nil))
				defer stop()
			}
			want := "duty 1.00, no foreground: full pace"
			if busy {
				want = "duty 0.10, a foreground arrived: starting"
			}
			seen := make(chan struct{})
			var once sync.Once
			var mu sync.Mutex
			var paces []string
			chunks := &chunkLog{}
			b := mustNew(t, db, emailJob("default-pace"), backfill.WithObserver(chunks),
				backfill.WithProgress(time.Second, func(p backfill.Progress) {
					mu.Lock()
					paces = append(paces, p.Pace)
					mu.Unlock()
					if p.Pace == want {
						once.Do(func() { close(seen) })
					}
				}),
				backfill.WithAfterClaim(func(seq int64) {
					if seq == 1 {
						select {
						case <-seen:
						case <-t.Context().Done():
						}
					}
				}))
			p, err := b.Run(t.Context())
			end := time.Now()
			require.NoError(t, err)
			require.Equal(t, backfill.Done, p.Status)
			st, err := b.State(t.Context())
			require.NoError(t, err)
			assert.Equal(t, backfill.SourceDatabase, st.Foreground)
			if busy {
				// It started from a tenth of the time, resting after
				// each chunk nine times as long.
				var worked time.Duration
				for _, c := range chunks.all() {
					worked += c.Duration
				}
				assert.Less(t, worked.Seconds(), 0.6*end.Sub(chunks.firstStart()).Seconds(), "worked %v", worked)
			}
			mu.Lock()
			t.Logf("paces: %q", paces)
			if !busy {
				for _, p := range paces {
					assert.True(t, strings.HasPrefix(p, "duty 1.00, "), "alone on the database, the backfill never rested: %q", paces)
				}
			}
			mu.Unlock()
			select {
			case <-seen:
			default:
				t.Fatalf("the pace never read %q", want)
			}
		})
	}
	// A duty cycle given: the backfill does not look.
	db := pgtest.DB(t)
	usersTable(t, db, 100)
	b := mustNew(t, db, emailJob("given"), backfill.WithDutyCycle(1))
	_, err := b.Run(t.Context())
	require.NoError(t, err)
	st, err := b.State(t.Context())
	require.NoError(t, err)
	assert.Empty(t, st.Foreground)
	assert.Empty(t, st.Pace)
}

// The backfill's own transactions reach the database's statistics late
// (a session reports its counts at most once a second, an idle one
// later): those taken off a reading that did not show them yet are owed,
// and taken off the readings that do, so that the backfill alone never
// reads as a foreground. The debt is bounded: it cannot hide a real
// foreground for long.
func TestOwnTransactionsArrivingLateAreNotAForeground(t *testing.T) {
	t.Parallel()
	// Reading 1: the backfill ran 6 of its own; the statistics show none yet.
	ops, owed := backfill.Others(0, 6, 0)
	assert.Zero(t, ops)
	assert.EqualValues(t, 6, owed)
	// Reading 2: they arrive, with 2 more of its own and none else.
	ops, owed = backfill.Others(8, 2, owed)
	assert.Zero(t, ops, "its own six, arriving late, are not a foreground")
	assert.Zero(t, owed)
	// Reading 3: a foreground of 20 besides 5 of its own.
	ops, owed = backfill.Others(25, 5, owed)
	assert.EqualValues(t, 20, ops)
	assert.Zero(t, owed)
	// A count gone far ahead of what the statistics ever show owes at most 64.
	ops, owed = backfill.Others(0, 1000, 0)
	assert.Zero(t, ops)
	assert.EqualValues(t, 64, owed)
	ops, _ = backfill.Others(100, 0, owed)
	assert.EqualValues(t, 36, ops)
}

// The default pace rests only once two readings in a row show a
// foreground, and works flat out again at the first that does not: one
// burst of what the backfill's sessions did not count (statements
// prepared on a new connection) is not a foreground.
func TestDefaultPaceRestsOnTwoBusyReadings(t *testing.T) {
	t.Parallel()
	assert.Equal(t,
		[]bool{false, false, false, true, true, false, false, true},
		backfill.BusyReadings(true, false, true, true, true, false, true, true))
}

// Every eighth window the budget takes a reference on real PostgreSQL:
// the workers rest through it (each ends the chunk it was in first) and
// the pace says so, then the pace comes back.
func TestLatencyBudgetRestsForItsReferences(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	const n = 2_000
	usersTable(t, db, n)
	rec := backfill.NewForegroundRecorder(nil)
	stop := foregroundLoad(t, db, n, 2, rec)
	defer stop()
	var (
		mu        sync.Mutex
		resting   bool // the last report was of a reference
		refs      int  // references seen to end
		atRest    int  // claims made while the pace was 0
		b         *backfill.Backfill
		refsEnded = make(chan struct{})
		once      sync.Once
	)
	progress := func(p backfill.Progress) {
		mu.Lock()
		defer mu.Unlock()
		now := strings.HasPrefix(p.Pace, "duty 0, taking a reference")
		if resting && !now {
			if refs++; refs == 2 {
				once.Do(func() { close(refsEnded) })
			}
		}
		resting = now
	}
	b = mustNew(t, db, emailJob("references"),
		backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Signal: rec, Baseline: 50 * time.Millisecond, Window: 20 * time.Millisecond}),
		backfill.WithProgress(5*time.Millisecond, progress),
		backfill.WithAfterClaim(func(seq int64) {
			mu.Lock()
			if b.DutyNow() == 0 {
				atRest++
			}
			mu.Unlock()
			if seq == 3 {
				select {
				case <-refsEnded:
				case <-time.After(time.Minute):
					t.Error("no two references taken in a minute")
				}
			}
		}))
	p, err := b.Run(t.Context())
	require.NoError(t, err)
	require.Equal(t, backfill.Done, p.Status)
	assert.Zero(t, divergent(t, db))
	mu.Lock()
	defer mu.Unlock()
	assert.GreaterOrEqual(t, refs, 2)
	// One worker: at most the claim it was making as each rest began.
	assert.LessOrEqual(t, atRest, refs+1, "claims while resting")
}

// A worker resting after a chunk at a pace of 0.01 (99 times the
// chunk's time) ends its rest as soon as the pace is raised: the rest is
// measured again against each new pace.
func TestRestEndsWhenThePaceRises(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	usersTable(t, db, 400)
	release := make(chan struct{})
	var once sync.Once
	var rests []time.Duration
	var mu sync.Mutex
	var b *backfill.Backfill
	// Long enough a chunk that its rest at 0.01 would outlast the test:
	// its time is counted from its claim's hook.
	b = mustNew(t, db, emailJob("rest-ends"), backfill.WithChunkSize(200, 200, 200), backfill.WithDutyCycle(0.01),
		backfill.WithAfterClaim(func(seq int64) {
			if seq == 1 {
				time.AfterFunc(300*time.Millisecond, func() { close(release) })
			}
		}),
		backfill.WithBeforeCommit(func(seq int64) {
			if seq == 1 {
				<-release // the first chunk takes as long as the test lets it
			}
		}),
		backfill.WithResting(func(d time.Duration) {
			mu.Lock()
			rests = append(rests, d)
			mu.Unlock()
			once.Do(func() { b.SetDuty(1) })
		}))
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	p, err := b.Run(ctx)
	require.NoError(t, err, "the rest (%v) was not cut short by the raised pace", rests)
	assert.Equal(t, backfill.Done, p.Status)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, rests)
	assert.Greater(t, rests[0], 25*time.Second, "at 0.01 the first rest is 99 times the chunk")
}

// scripted is a foreground signal whose baseline reads as a dip of the
// foreground's own (three times the latency, three quarters of the
// throughput) and every reading after as the foreground out of it; it
// records the pace each of its reads saw, and closes enough at the
// eighth.
type scripted struct {
	b      **backfill.Backfill
	mu     sync.Mutex
	duties []float64
	enough chan struct{}
}

func (*scripted) Source() string { return backfill.SourceApplication }

func (s *scripted) Read(context.Context) (backfill.Foreground, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.duties = append(s.duties, (*s.b).DutyNow())
	if len(s.duties) == 8 {
		close(s.enough)
	}
	if len(s.duties) <= 2 { // the baseline's window
		return backfill.Foreground{Latency: 1500 * time.Microsecond, Throughput: 12_000, Ops: 12_000}, nil
	}
	return backfill.Foreground{Latency: 500 * time.Microsecond, Throughput: 16_000, Ops: 16_000}, nil
}

// A baseline read in a dip of the foreground's own makes the first
// readings of a Run on real PostgreSQL look better than it by more than
// the budget lets one be worse: the pace holds at its start through them
// and the window after the second is a reference, the workers at rest.
// Judged against the dip, slow start doubles the pace at each window,
// and the reference waits for the eighth.
func TestLatencyBudgetRetakesAReferenceReadInADip(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	usersTable(t, db, 2_000)
	var b *backfill.Backfill
	sig := &scripted{b: &b, enough: make(chan struct{})}
	b = mustNew(t, db, emailJob("dip"),
		backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Throughput: 0.9, Signal: sig, Baseline: 20 * time.Millisecond, Window: 20 * time.Millisecond}),
		backfill.WithAfterClaim(func(seq int64) {
			if seq == 3 {
				select {
				case <-sig.enough:
				case <-time.After(time.Minute):
					t.Error("no eight readings in a minute")
				}
			}
		}))
	p, err := b.Run(t.Context())
	require.NoError(t, err)
	require.Equal(t, backfill.Done, p.Status)
	assert.Zero(t, divergent(t, db))
	sig.mu.Lock()
	defer sig.mu.Unlock()
	require.GreaterOrEqual(t, len(sig.duties), 6)
	// Reads 1-2: the baseline; 3-4: the first two windows, each seeing
	// the pace the one before it left; 5-6: the reference's window.
	assert.Equal(t, []float64{0.1, 0.1, 0.1, 0.1, 0, 0}, sig.duties[:6])
}
