package backfill_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// The benchmarks here build 1M-row tables and take a few minutes:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./backfill
//
// BENCH_ROWS overrides the table size.

func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

func makeUsers(b *testing.B, db *sqlx.DB, table string, n int) {
	b.Helper()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)`); err != nil {
		b.Fatal(err)
	}
	fill(b, db, n, `INSERT INTO `+table+` (id, email) SELECT i, 'User' || i || '@Example.COM' FROM s`)
	analyze := `VACUUM ANALYZE ` + table
	if db.DriverName() == "sqlite" {
		analyze = `ANALYZE ` + table
	}
	if _, err := db.ExecContext(ctx, analyze); err != nil {
		b.Fatal(err)
	}
}

// dutyCycle is the throttled run's duty cycle (BENCH_DUTY overrides): on
// these 2-core machines the backfill must rest 90% of the time for the
// foreground p99 to stay within 1.5× (0.2 gave 1.52–1.64×).
func dutyCycle() float64 {
	if d, err := strconv.ParseFloat(os.Getenv("BENCH_DUTY"), 64); err == nil {
		return d
	}
	return 0.1
}

func jobOn(table string) backfill.Job {
	return backfill.Job{Name: table, Table: table, Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email)"}}}
}

// BenchmarkBackfillThroughput compares the backfill, unthrottled, one
// worker, with the single UPDATE statement on an identical fresh table, in
// the same round (target: ratio ≥ 0.95); then the same with two workers
// (target ≥ 1.6); the median of benchRounds rounds. On PostgreSQL it also
// reports what two sessions reach on the machine at all: the single
// UPDATE as two statements over the key's halves, run at once
// (2-statements-ratio-vs-single), the ceiling of two workers' ratio.
func BenchmarkBackfillThroughput(b *testing.B) {
	benchThroughput(b, pgtest.DB(b))
}

// BenchmarkBackfillThroughputSQLite is the same on SQLite, whose single
// writer makes the single UPDATE the upper bound.
func BenchmarkBackfillThroughputSQLite(b *testing.B) {
	benchThroughput(b, dbtest.SQLite(b))
}

// benchRounds is how many rounds the throughput benchmark runs (each on
// fresh tables; BENCH_ROUNDS overrides): it reports the median of each
// ratio, as the machines it runs on are shared and one round's timings
// swing by a fifth.
func benchRounds() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func benchThroughput(b *testing.B, db *sqlx.DB) {
	n := benchRows()
	ctx := context.Background()
	sqlite := db.DriverName() == "sqlite"
	// side builds a fresh table, lets the database settle, times run on
	// it and drops it: every side starts from the same state, its table
	// just written (in the cache as far as it fits), no other table's
	// writes pending, no autovacuum of the table while it runs.
	side := func(table string, run func(table string)) time.Duration {
		makeUsers(b, db, table, n)
		if !sqlite {
			db.MustExecContext(ctx, `ALTER TABLE `+table+` SET (autovacuum_enabled = false)`)
			db.MustExecContext(ctx, `CHECKPOINT`)
			// The throwaway cluster runs without fsync: the checkpoint's
			// writes sit in the kernel's cache, and would be written out
			// while the side runs.
			syscall.Sync()
		}
		defer db.MustExecContext(ctx, `DROP TABLE `+table)
		start := time.Now()
		run(table)
		return time.Since(start)
	}
	update := func(table, where string) {
		if _, err := db.ExecContext(ctx, `UPDATE `+table+` SET email_lower = lower(email)`+where); err != nil {
			b.Error(err)
		}
	}
	backfillWith := func(workers int) func(table string) {
		return func(table string) {
			bf, err := backfill.New(ctx, db, jobOn(table), backfill.WithChunkSize(10000, 1000, 200000),
				backfill.WithTargetChunkTime(time.Second), backfill.WithMaxLockHold(3*time.Second), backfill.WithWorkers(workers))
			if err != nil {
				b.Fatal(err)
			}
			p, err := bf.Run(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if p.RowsChanged != int64(n) {
				b.Fatalf("backfill changed %d rows, want %d", p.RowsChanged, n)
			}
			b.Logf("%s: %d chunks, pace %q", table, p.ChunksDone, p.Pace)
		}
	}
	for b.Loop() {
		var singles, ones, ratios, ratios2, ceilings []float64
		for round := range benchRounds() {
			single := side(fmt.Sprintf("users_single_%d", round), func(t string) { update(t, "") })
			one := side(fmt.Sprintf("users_chunked_%d", round), backfillWith(1))
			// Two workers: one's chunk runs while the other finds its next
			// boundary, or both update at once (a second core; on SQLite they
			// take turns at the write lock).
			two := side(fmt.Sprintf("users_chunked2_%d", round), backfillWith(2))
			singles, ones = append(singles, float64(n)/single.Seconds()), append(ones, float64(n)/one.Seconds())
			ratios, ratios2 = append(ratios, single.Seconds()/one.Seconds()), append(ratios2, single.Seconds()/two.Seconds())
			line := fmt.Sprintf("round %d: single %v, one worker %v (%.3f), two workers %v (%.3f)", round, single, one, ratios[round], two, ratios2[round])
			if !sqlite {
				// What two sessions can do on this machine at all: the
				// single UPDATE split in two statements over the halves of
				// the key, run at once, with nothing of the backfill's.
				halves := side(fmt.Sprintf("users_halves_%d", round), func(t string) {
					var wg sync.WaitGroup
					wg.Go(func() { update(t, fmt.Sprintf(" WHERE id <= %d", n/2)) })
					update(t, fmt.Sprintf(" WHERE id > %d", n/2))
					wg.Wait()
				})
				ceilings = append(ceilings, single.Seconds()/halves.Seconds())
				line += fmt.Sprintf(", two plain statements over the halves %v (%.3f)", halves, ceilings[round])
			}
			b.Log(line)
		}
		b.ReportMetric(median(singles), "single-rows/s")
		b.ReportMetric(median(ones), "backfill-rows/s")
		b.ReportMetric(median(ratios), "ratio-vs-single")
		b.ReportMetric(median(ratios2), "2-workers-ratio-vs-single")
		if len(ceilings) > 0 {
			b.ReportMetric(median(ceilings), "2-statements-ratio-vs-single")
		}
	}
}

// foreground runs point reads and dual writes until stop and returns their
// latencies.
func foreground(db *sqlx.DB, table string, n int, stop <-chan struct{}) []time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var mine []time.Duration
			for i := 0; ; i++ {
				select {
				case <-stop:
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
					return
				default:
				}
				id := 1 + rand.IntN(n)
				start := time.Now()
				var err error
				if i%2 == 0 {
					var email string
					err = db.Get(&email, `SELECT email FROM `+table+` WHERE id = $1`, id)
				} else {
					email := fmt.Sprintf("Fg%d@Example.COM", i)
					_, err = db.Exec(`UPDATE `+table+` SET email = $1, email_lower = lower($1) WHERE id = $2`, email, id)
				}
				if err != nil {
					panic(err)
				}
				mine = append(mine, time.Since(start))
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	return lat
}

func percentile(lat []time.Duration, p float64) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkForegroundLatency measures foreground point reads and dual
// writes (4 clients) with no backfill, with the backfill unthrottled, and
// with the adaptive throttle (short chunks plus a latency probe). Target:
// p99 with the throttle ≤ 1.5× the p99 with no backfill.
func BenchmarkForegroundLatency(b *testing.B) {
	db := pgtest.DB(b)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	n := benchRows()
	makeUsers(b, db, "users_unthrottled", n)
	makeUsers(b, db, "users_throttled", n)
	ctx := context.Background()
	phase := func(table string, run func()) []time.Duration {
		stop := make(chan struct{})
		var lat []time.Duration
		var wg sync.WaitGroup
		wg.Go(func() { lat = foreground(db, table, n, stop) })
		run()
		close(stop)
		wg.Wait()
		return lat
	}
	for b.Loop() {
		idle := phase("users_unthrottled", func() { time.Sleep(5 * time.Second) })

		bf, err := backfill.New(ctx, db, jobOn("users_unthrottled"), backfill.WithChunkSize(10000, 1000, 200000), backfill.WithTargetChunkTime(time.Second), backfill.WithMaxLockHold(3*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		var unthrottledRate float64
		unthrottled := phase("users_unthrottled", func() {
			start := time.Now()
			p, err := bf.Run(ctx)
			if err != nil {
				b.Fatal(err)
			}
			unthrottledRate = float64(p.RowsDone) / time.Since(start).Seconds()
		})

		probeLimit := percentile(idle, 0.9)
		probe := backfill.LatencyProbe(probeLimit, func(ctx context.Context) error {
			var email string
			return db.GetContext(ctx, &email, `SELECT email FROM users_throttled WHERE id = $1`, 1+rand.IntN(n))
		})
		tb, err := backfill.New(ctx, db, jobOn("users_throttled"), backfill.WithChunkSize(200, 50, 1000),
			backfill.WithTargetChunkTime(2*time.Millisecond), backfill.WithDutyCycle(dutyCycle()),
			backfill.WithSignals(probe), backfill.WithLockTimeout(50*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		var throttledRate float64
		throttled := phase("users_throttled", func() {
			tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			start := time.Now()
			_, _ = tb.Run(tctx)
			p, err := tb.State(ctx)
			if err != nil {
				b.Fatal(err)
			}
			throttledRate = float64(p.RowsDone) / time.Since(start).Seconds()
		})

		for _, ph := range []struct {
			name string
			lat  []time.Duration
		}{{"idle", idle}, {"unthrottled", unthrottled}, {"throttled", throttled}} {
			b.ReportMetric(float64(percentile(ph.lat, 0.5).Microseconds()), ph.name+"-p50-µs")
			b.ReportMetric(float64(percentile(ph.lat, 0.99).Microseconds()), ph.name+"-p99-µs")
		}
		b.ReportMetric(float64(percentile(unthrottled, 0.99))/float64(percentile(idle, 0.99)), "unthrottled-p99-ratio")
		b.ReportMetric(float64(percentile(throttled, 0.99))/float64(percentile(idle, 0.99)), "throttled-p99-ratio")
		b.ReportMetric(unthrottledRate, "unthrottled-rows/s")
		b.ReportMetric(throttledRate, "throttled-rows/s")
	}
}

// BenchmarkVerify times verification of a backfilled table against
// SELECT count(*) and against one pass comparing old and new in the
// database, in the same run. Targets: ≤ 3× count(*), ≤ 1.5× the one pass.
func BenchmarkVerify(b *testing.B) {
	db := pgtest.DB(b)
	n := benchRows()
	makeUsers(b, db, "users_verify", n)
	ctx := context.Background()
	db.MustExecContext(ctx, `UPDATE users_verify SET email_lower = lower(email)`)
	db.MustExecContext(ctx, `VACUUM ANALYZE users_verify`)
	bf, err := backfill.New(ctx, db, jobOn("users_verify"))
	if err != nil {
		b.Fatal(err)
	}
	timed := func(fn func() error) time.Duration {
		best := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			if err := fn(); err != nil {
				b.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	for b.Loop() {
		var c int
		count := timed(func() error { return db.GetContext(ctx, &c, `SELECT count(*) FROM users_verify`) })
		onePass := timed(func() error {
			return db.GetContext(ctx, &c, `SELECT count(*) FROM users_verify WHERE email_lower IS DISTINCT FROM lower(email)`)
		})
		var rep backfill.Report
		verify := timed(func() error {
			var err error
			rep, err = bf.Verify(ctx, backfill.VerifyOptions{})
			return err
		})
		if !rep.Passed() || rep.Compared != int64(n) {
			b.Fatalf("verification: %+v", rep)
		}
		b.ReportMetric(float64(count.Milliseconds()), "count-ms")
		b.ReportMetric(float64(onePass.Milliseconds()), "one-pass-ms")
		b.ReportMetric(float64(verify.Milliseconds()), "verify-ms")
		b.ReportMetric(verify.Seconds()/count.Seconds(), "x-count")
		b.ReportMetric(verify.Seconds()/onePass.Seconds(), "x-one-pass")
	}
}

// BenchmarkBackfillMemory runs the backfill in a subprocess over 100k and
// 1M rows and reports its peak RSS: it must not grow with the table.
func BenchmarkBackfillMemory(b *testing.B) {
	for b.Loop() {
		for _, rows := range []int{100_000, 1_000_000} {
			url := pgtest.URL(b)
			db, err := sqlx.Open("pgx", url)
			if err != nil {
				b.Fatal(err)
			}
			makeUsers(b, db, "users_mem", rows)
			db.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), workerEnv+"=rss", workerURLEnv+"="+url)
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("%v: %s", err, out)
			}
			kb := 0
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
					kb, _ = strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
				}
			}
			b.ReportMetric(float64(kb)/1024, fmt.Sprintf("peak-rss-MiB-%dk-rows", rows/1000))
		}
	}
}

// rssMain backfills users_mem and prints the process's peak RSS.
func rssMain() int {
	ctx := context.Background()
	db, err := sqlx.Open("pgx", os.Getenv(workerURLEnv))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer db.Close()
	bf, err := backfill.New(ctx, db, jobOn("users_mem"), backfill.WithChunkSize(10000, 1000, 200000), backfill.WithTargetChunkTime(time.Second), backfill.WithMaxLockHold(3*time.Second))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if _, err := bf.Run(ctx); err != nil {
		fmt.Println(err)
		return 1
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Print(string(status))
	return 0
}
