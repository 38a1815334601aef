package backfill_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/pgtest"
)

type reservation struct {
	rows, burst int
	at          time.Time
}

type claimed struct {
	At      dialect.Time `db:"started_at"`
	Scanned int          `db:"scanned"`
}

// runTimed runs b to its end, which must be Done, and returns its final
// progress and how long the Run took.
func runTimed(t *testing.T, b *backfill.Backfill) (backfill.Progress, time.Duration) {
	t.Helper()
	start := time.Now()
	final, err := b.Run(t.Context())
	elapsed := time.Since(start)
	require.NoError(t, err)
	require.Equal(t, backfill.Done, final.Status)
	return final, elapsed
}

// reservedRows adds up the rows reserved on a Backfill's rate limit.
type reservedRows struct {
	mu   sync.Mutex
	rows int
}

func (r *reservedRows) option() backfill.Option {
	return backfill.WithReserved(func(rows, _ int, _ time.Time) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.rows += rows
	})
}

func (r *reservedRows) load() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rows
}

// maxInWindow is the most rows of events falling in any closed window of
// length w.
func maxInWindow[E any](events []E, at func(E) time.Time, rows func(E) int, w time.Duration) int {
	most := 0
	for i := range events {
		sum := 0
		for _, e := range events[i:] {
			if at(e).Sub(at(events[i])) > w {
				break
			}
			sum += rows(e)
		}
		most = max(most, sum)
	}
	return most
}

// WithRate caps every second, the first included. Checked three ways:
// the limiter's burst is one chunk and a chunk is at most one second's
// rows (the chunk size would grow to 16,000 here unhindered); the
// limiter's schedule lets at most the rate and one chunk go in any second;
// and the chunks, as claimed by the backfill's clock (time.Now), keep to the rate
// and two chunks in any second (one worker claims a chunk only after the
// limiter let its rows go, and the one before it) and take at least as
// long as the rate allows. None of these can fail by the machine being
// slow: load only spreads the chunks out.
func TestRateCapsEverySecond(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		const rows, perSecond, first = 30000, 6000, 1000
		usersTable(t, db, rows)
		var (
			mu   sync.Mutex
			seen []reservation
		)
		b := mustNew(t, db, emailJob("rate"), backfill.WithRate(perSecond), backfill.WithChunkSize(first, 100, 50000),
			backfill.WithReserved(func(rows, burst int, at time.Time) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, reservation{rows, burst, at})
			}))
		start := time.Now()
		final, elapsed := runTimed(t, b)
		require.Equal(t, int64(rows), final.RowsDone)

		mu.Lock()
		defer mu.Unlock()
		reserved, burst := 0, 0
		for i, r := range seen {
			burst = max(burst, r.burst)
			assert.Equal(t, r.rows, r.burst, "reservation %d: the burst is the chunk size", i)
			assert.LessOrEqual(t, r.rows, perSecond, "reservation %d: a chunk is at most one second's rows", i)
			reserved += r.rows
		}
		assert.GreaterOrEqual(t, reserved, rows, "every row went through the limiter")
		slices.SortFunc(seen, func(a, b reservation) int { return a.at.Compare(b.at) })
		let := maxInWindow(seen, func(r reservation) time.Time { return r.at }, func(r reservation) int { return r.rows }, time.Second)
		assert.LessOrEqual(t, let, perSecond+burst, "the limiter let at most the rate and one chunk go in a second")
		var firstSecond int
		for _, r := range seen {
			if r.at.Sub(start) <= time.Second {
				firstSecond += r.rows
			}
		}
		assert.LessOrEqual(t, firstSecond, perSecond+first, "the first second is capped too")

		var chunks []claimed
		require.NoError(t, db.SelectContext(t.Context(), &chunks, `SELECT started_at, scanned FROM schemashift_backfill_chunks ORDER BY seq`))
		biggest := 0
		for _, c := range chunks {
			biggest = max(biggest, c.Scanned)
		}
		// One worker: each chunk claimed after its own reservation, in turn
		// (the last reservations found the job done).
		require.GreaterOrEqual(t, len(seen), len(chunks))
		for i, c := range chunks {
			assert.LessOrEqual(t, c.Scanned, seen[i].rows, "chunk %d walks no more rows than the limiter let go for it", i+1)
		}
		ran := maxInWindow(chunks, func(c claimed) time.Time { return c.At.Time }, func(c claimed) int { return c.Scanned }, time.Second)
		assert.LessOrEqual(t, biggest, perSecond)
		assert.LessOrEqual(t, ran, perSecond+2*biggest, "chunks claimed in any second, by the backfill's clock")
		least := time.Duration(rows-first) * time.Second / perSecond
		assert.GreaterOrEqual(t, elapsed, least, "the run took at least as long as the rate allows")
		assert.Equal(t, 0, divergent(t, db))
		t.Logf("%d rows at %d/s in %v: at most %d rows let go and %d claimed in a second, %d in the first; chunks up to %d rows",
			rows, perSecond, elapsed.Round(time.Millisecond), let, ran, firstSecond, biggest)
	})
}

// A chunk retaken from a lease that ran out keeps the rows it was first
// claimed with, here twice the rate, by a process that had no rate and
// then died; the Run that retakes it reserved its own smaller size for
// the claim. Its rows are walked again, and the rate is on the rows
// walked: the rest of them wait for the limiter before the chunk runs.
func TestRateChargesARetakenChunkInFull(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		const rows, perSecond = 2000, 1000
		usersTable(t, db, rows)
		diedHolding(t, db, emailJob("retaken"), rows, 1)

		reserved := &reservedRows{}
		b := mustNew(t, db, emailJob("retaken"), backfill.WithRate(perSecond), backfill.WithChunkSize(100, 100, perSecond),
			reserved.option())
		final, elapsed := runTimed(t, b)
		require.Equal(t, int64(rows), final.RowsDone)
		assert.Equal(t, int64(1), final.ChunksRedone, "the dead process's chunk was retaken")
		assert.GreaterOrEqual(t, reserved.load(), rows, "every row walked went through the limiter")
		// The limiter starts with one chunk of 100 rows in hand.
		least := time.Duration(rows-100) * time.Second / perSecond
		assert.GreaterOrEqual(t, elapsed, least, "the run took at least as long as the rate allows")
		assert.Equal(t, 0, divergent(t, db))
		t.Logf("%d rows at %d/s in %v, %d reserved", rows, perSecond, elapsed.Round(time.Millisecond), reserved.load())
	})
}

// A chunk retried after a failed attempt walks its rows again, and pays
// for them again: here the connection of chunk 1 is cut four times after
// its statement walked every row (before its commit), so it is walked
// five times.
func TestRateChargesEveryRetry(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	db := open(t, url)
	const rows, perSecond, size, cuts = 2000, 1000, 1000, 4
	usersTable(t, db, rows)
	admin := open(t, url)
	reserved := &reservedRows{}
	var (
		mu          sync.Mutex
		walked, cut int
	)
	b := mustNew(t, db, emailJob("rewalk"), backfill.WithRate(perSecond), backfill.WithChunkSize(size, size, size),
		reserved.option(),
		backfill.WithBeforeCommit(func(seq int64) {
			mu.Lock()
			defer mu.Unlock()
			walked += size
			if seq != 1 || cut == cuts {
				return
			}
			cut++
			admin.MustExecContext(context.WithoutCancel(t.Context()), `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
		}))
	_, elapsed := runTimed(t, b)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, cuts, cut)
	assert.Equal(t, rows+cuts*size, walked, "chunk 1 walked five times, chunk 2 once")
	assert.GreaterOrEqual(t, reserved.load(), walked, "every row walked went through the limiter")
	// The limiter starts with one chunk in hand.
	least := time.Duration(walked-size) * time.Second / perSecond
	assert.GreaterOrEqual(t, elapsed, least, "the run took at least as long as the rate allows")
	assert.Equal(t, 0, divergent(t, db))
	t.Logf("%d rows walked at %d/s in %v, %d reserved", walked, perSecond, elapsed.Round(time.Millisecond), reserved.load())
}

// An open-ended tail walks every row past its lower key as they stand
// when it runs: a dead process's tail of 50 rows, retaken after the
// application inserted 3,000 more past it, walks 3,050, and the limiter
// must let them all go first.
func TestRateChargesARetakenTailAsItStands(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		const rows, added, perSecond = 50, 3000, 1000
		usersTable(t, db, rows)
		diedHolding(t, db, emailJob("tail"), 100, 1)
		insertPast(t, db, added)

		reserved := &reservedRows{}
		chunks := &chunkLog{}
		b := mustNew(t, db, emailJob("tail"), backfill.WithRate(perSecond), backfill.WithChunkSize(100, 100, perSecond),
			reserved.option(), backfill.WithObserver(chunks))
		_, elapsed := runTimed(t, b)
		var changed int64
		for _, c := range chunks.all() {
			changed += c.Changed
		}
		require.Equal(t, int64(rows+added), changed, "the tail walked the rows inserted after its claim")
		assert.GreaterOrEqual(t, reserved.load(), rows+added, "every row walked went through the limiter")
		least := time.Duration(rows+added-100) * time.Second / perSecond
		assert.GreaterOrEqual(t, elapsed, least, "the run took at least as long as the rate allows")
		assert.Equal(t, 0, divergent(t, db))
		t.Logf("%d rows walked at %d/s in %v, %d reserved", changed, perSecond, elapsed.Round(time.Millisecond), reserved.load())
	})
}
