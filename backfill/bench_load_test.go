package backfill_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// BenchmarkBackfillUnderLoad is the project's own side-by-side benchmark
// (scripts/bench-backfill runs it): on a fresh users table of BENCH_ROWS
// rows (1M by default) per contender, new column email_lower =
// lower(email), a foreground of pgbench (4 clients, a separate process,
// each transaction a point read and a point update), it runs each
// contender and takes the foreground's latency only over the transactions
// that completed within the contender's own window (from its first chunk
// to its end; pgbench logs each transaction with its time). It prints
// rows/s, foreground tx/s kept against the run with no backfill (and
// against the same pgbench run's 2 s before the window: the runs are
// minutes apart on a machine that may be shared), the foreground's p99
// as a ratio to that run's (and to the same pgbench run's over the 2 s
// before the window: the budget's own terms, "within 1.5× of its value
// before the backfill"), and the longest foreground transaction. The contenders: no backfill, the single UPDATE, the
// defaults, the latency budget (1.5× p99, 10% of the throughput) read
// from the database's statistics, the same budget read from the
// foreground's own latencies (pgbench's log, tailed as it is written,
// fed to a ForegroundRecorder, as an application's adapters would feed
// one), the same budget read by a probe (a point read of users, 50 a
// window; it holds latency only), and fixed 1,000-row batches with no pause. BENCH_PGBENCH names pgbench (default: on PATH, else
// PostgreSQL 15's); BENCH_ONLY, a regular expression, picks the contenders
// by name (the run with no backfill always runs: every ratio is against
// it), and the summary lines print when the contenders they compare ran.
// BENCH_TIMELINE, set, logs each contender's foreground tx/s by the half
// second over its window, and its pace every quarter second (run with -v
// to see them): where a contender lost its foreground, and what the pace
// read then.
func BenchmarkBackfillUnderLoad(b *testing.B) {
	pgbench := pgbenchPath(b)
	timeline := os.Getenv("BENCH_TIMELINE") != ""
	n := benchRows()
	dir := b.TempDir()
	script := filepath.Join(dir, "fg.sql")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(`\set id random(1, %d)
BEGIN;
SELECT email FROM users WHERE id = :id;
UPDATE users SET email = 'Fg' || :id || '@Example.COM', email_lower = lower('Fg' || :id || '@Example.COM') WHERE id = :id;
END;
`, n)), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	type result struct {
		name             string
		rows             int64
		window           time.Duration
		tps, p99, maxLat float64
		tpsBefore        float64 // the foreground's tx/s over the 2 s before the window, in the same pgbench run
		p99Before        float64 // and its p99 over them
	}
	var results []result
	var liveLog string // the directory the running pgbench logs to
	measure := func(name string, loaded bool, run func(db *sqlx.DB) (start, end time.Time, rows int64)) result {
		b.Helper()
		url := pgtest.URL(b)
		db, err := sqlx.Open("pgx", url)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		makeUsers(b, db, "users", n)
		// Dropped after (pgbench stopped first): the dead tuples a
		// contender leaves are not vacuumed while the next one runs.
		defer db.MustExecContext(ctx, `DROP TABLE users`)
		db.MustExecContext(ctx, `CHECKPOINT`)
		syscall.Sync() // the checkpoint's writes, out of the kernel's cache before the contender runs (no fsync)
		logDir := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			b.Fatal(err)
		}
		// pgbench runs until stopped; its per-transaction log is read after.
		if !loaded {
			start, end, rows := run(db)
			return result{name: name, rows: rows, window: end.Sub(start)}
		}
		cmd := exec.Command(pgbench, "-n", "-c", "4", "-j", "2", "-T", "3600", "-f", script,
			"--log", "--log-prefix="+filepath.Join(logDir, "tx"), url)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		stopped := false
		stopPgbench := func() {
			if !stopped {
				stopped = true
				// SIGTERM, not SIGINT: a benchmark started in the
				// background of a script inherits SIGINT ignored, and so
				// does pgbench, which then never stops.
				_ = cmd.Process.Signal(syscall.SIGTERM)
				_ = cmd.Wait()
			}
		}
		defer stopPgbench()
		liveLog = logDir
		// Warm up: the foreground's connections and caches.
		time.Sleep(3 * time.Second)
		start, end, rows := run(db)
		time.Sleep(time.Second)
		stopPgbench()
		fg, err := readPgbenchLogs(logDir)
		if err != nil {
			b.Fatal(err)
		}
		r := result{name: name, rows: rows, window: end.Sub(start)}
		// Throughput: the transactions that completed within the window.
		// Latency: those that ran at any time within it (one that waited
		// out the whole window on a lock completes just after it).
		var lat, latBefore []float64
		completed := 0
		for _, tx := range fg {
			if !tx.done.Before(start) && !tx.done.After(end) {
				completed++
			}
			if tx.done.After(start.Add(-2*time.Second)) && tx.done.Before(start) {
				latBefore = append(latBefore, tx.latency.Seconds()*1000)
			}
			if !tx.done.Before(start) && !tx.done.Add(-tx.latency).After(end) {
				lat = append(lat, tx.latency.Seconds()*1000)
			}
		}
		if timeline {
			buckets := map[int]int{}
			for _, tx := range fg {
				if !tx.done.Before(start) && !tx.done.After(end) {
					buckets[int(tx.done.Sub(start)/(500*time.Millisecond))]++
				}
			}
			for i := 0; i <= int(end.Sub(start)/(500*time.Millisecond)); i++ {
				b.Logf("timeline %s %4.1fs foreground %5.0f tx/s", name, float64(i)/2, float64(buckets[i])*2)
			}
		}
		slices.Sort(lat)
		slices.Sort(latBefore)
		if len(latBefore) > 0 {
			r.tpsBefore = float64(len(latBefore)) / 2
			r.p99Before = latBefore[(len(latBefore)-1)*99/100]
		}
		if len(lat) > 0 {
			r.tps = float64(completed) / r.window.Seconds()
			r.p99 = lat[(len(lat)-1)*99/100]
			r.maxLat = lat[len(lat)-1]
		}
		return r
	}
	backfillRun := func(opts ...backfill.Option) func(db *sqlx.DB) (time.Time, time.Time, int64) {
		return func(db *sqlx.DB) (time.Time, time.Time, int64) {
			log := &chunkLog{}
			o := append(slices.Clone(opts), backfill.WithObserver(log))
			if timeline {
				t0 := time.Now()
				o = append(o, backfill.WithProgress(250*time.Millisecond, func(p backfill.Progress) {
					b.Logf("timeline pace %5.2fs rows %d size %d %s", time.Since(t0).Seconds(), p.RowsDone, p.ChunkSize, p.Pace)
				}))
			}
			bf, err := backfill.New(ctx, db, jobOn("users"), o...)
			if err != nil {
				b.Fatal(err)
			}
			p, err := bf.Run(ctx)
			end := time.Now()
			if err != nil {
				b.Fatal(err)
			}
			chunks := log.all()
			if len(chunks) == 0 {
				b.Fatal("no chunk")
			}
			// The window opens when the first chunk began: a budget's
			// baseline before it is not the backfill's work.
			start := log.firstStart()
			b.Logf("%d chunks, last size %d, pace %q", len(chunks), p.ChunkSize, p.Pace)
			return start, end, p.RowsDone
		}
	}
	type contender struct {
		name   string
		loaded bool
		run    func(db *sqlx.DB) (start, end time.Time, rows int64)
	}
	// The same budget read from the application's own latencies:
	// pgbench's, as it logs them, fed to a ForegroundRecorder.
	rec := backfill.NewForegroundRecorder(nil)
	contenders := []contender{
		{"none", true, func(*sqlx.DB) (time.Time, time.Time, int64) {
			start := time.Now()
			time.Sleep(10 * time.Second)
			return start, time.Now(), 0
		}},
		{"single UPDATE", true, func(db *sqlx.DB) (time.Time, time.Time, int64) {
			start := time.Now()
			res := db.MustExecContext(ctx, `UPDATE users SET email_lower = lower(email)`)
			end := time.Now()
			rows, _ := res.RowsAffected()
			return start, end, rows
		}},
		{"defaults", true, backfillRun()},
		{budgetName, true, backfillRun(
			backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Throughput: 0.9}))},
		{appBudgetName, true, func(db *sqlx.DB) (time.Time, time.Time, int64) {
			stop := tailPgbench(liveLog, rec)
			defer stop()
			return backfillRun(backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Throughput: 0.9, Signal: rec}))(db)
		}},
		{probeBudgetName, true, func(db *sqlx.DB) (time.Time, time.Time, int64) {
			// A point read of the foreground's table, 50 a window, as an
			// application would probe its hot path.
			probe := backfill.ProbeForeground(50, func(ctx context.Context) error {
				var email string
				return db.GetContext(ctx, &email, `SELECT email FROM users WHERE id = $1`, 1+rand.IntN(n))
			})
			return backfillRun(backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Throughput: 0.9, Signal: probe}))(db)
		}},
		{fixedName, true, backfillRun(
			backfill.WithChunkSize(1000, 1000, 1000), backfill.WithMaxLockHold(10*time.Second), backfill.WithDutyCycle(1))},
		{unloadedName, false, backfillRun()},
	}
	only, err := regexp.Compile(os.Getenv("BENCH_ONLY"))
	if err != nil {
		b.Fatalf("BENCH_ONLY: %v", err)
	}
	for b.Loop() {
		results = results[:0]
		got := map[string]result{}
		for _, c := range contenders {
			// The run with no backfill is every ratio's baseline: it always runs.
			if c.name != "none" && !only.MatchString(c.name) {
				continue
			}
			r := measure(c.name, c.loaded, c.run)
			results = append(results, r)
			got[c.name] = r
		}
		none := got["none"]
		var out strings.Builder
		fmt.Fprintf(&out, "\n%d rows, foreground: pgbench, 4 clients, a point read and a point update a transaction\n", n)
		fmt.Fprintf(&out, "| backfill | rows/s | foreground tx/s kept | (against its own 2 s before) | foreground p99 | (against its own 2 s before) | longest foreground transaction |\n|---|---|---|---|---|---|---|\n")
		for _, r := range results {
			rate := "—"
			if r.rows > 0 {
				rate = fmt.Sprintf("%.0fk", float64(r.rows)/r.window.Seconds()/1000)
			}
			if r.tps == 0 {
				fmt.Fprintf(&out, "| %s | %s | — | — | — | — | — |\n", r.name, rate)
				continue
			}
			fmt.Fprintf(&out, "| %s | %s | %.0f%% | %.0f%% | %.2f× (%.1f ms) | %.2f× (%.1f ms) | %.0f ms |\n", r.name, rate, 100*r.tps/none.tps, 100*r.tps/r.tpsBefore, r.p99/none.p99, r.p99, r.p99/r.p99Before, r.p99Before, r.maxLat)
		}
		rowsPerSec := func(r result) float64 { return float64(r.rows) / r.window.Seconds() }
		fixed, haveFixed := got[fixedName]
		unloaded, haveUnloaded := got[unloadedName]
		for _, name := range []string{budgetName, appBudgetName, probeBudgetName} {
			r, ok := got[name]
			if !ok || !haveFixed || !haveUnloaded {
				continue
			}
			fmt.Fprintf(&out, "%s, rows/s: %.2f× the fixed 1000-row batches', %.0f%% of the defaults' with no foreground\n",
				name, rowsPerSec(r)/rowsPerSec(fixed), 100*rowsPerSec(r)/rowsPerSec(unloaded))
			prefix := map[string]string{budgetName: "budget", appBudgetName: "app-budget", probeBudgetName: "probe-budget"}[name]
			b.ReportMetric(r.p99/none.p99, prefix+"-p99-ratio")
			b.ReportMetric(r.p99/r.p99Before, prefix+"-p99-vs-before")
			b.ReportMetric(100*r.tps/none.tps, prefix+"-fg-kept-%")
			b.ReportMetric(rowsPerSec(r)/rowsPerSec(fixed), prefix+"-vs-fixed-1000")
			b.ReportMetric(rowsPerSec(r)/rowsPerSec(unloaded), prefix+"-share-of-unloaded")
		}
		if single, ok := got["single UPDATE"]; ok && haveUnloaded {
			fmt.Fprintf(&out, "defaults with no foreground: %.2f× the single UPDATE's rows/s under load\n", rowsPerSec(unloaded)/rowsPerSec(single))
		}
		fmt.Print(out.String())
		if d, ok := got["defaults"]; ok {
			b.ReportMetric(d.maxLat, "defaults-longest-fg-ms")
			b.ReportMetric(100*d.tps/none.tps, "defaults-fg-kept-%")
		}
	}
}

// The contenders whose figures the summary lines compare.
const (
	budgetName      = "budget 1.5x p99, 10% tx/s"
	appBudgetName   = "budget, the foreground's own latencies"
	probeBudgetName = "budget, a probe (latency only)"
	fixedName       = "fixed 1000-row batches"
	unloadedName    = "defaults, no foreground"
)

// tailPgbench feeds rec with each transaction's latency as pgbench logs
// it in dir (its per-transaction logs, a file per thread, which pgbench
// writes as it goes), reading what was added every 20ms, until the
// returned stop is called (which waits for it). It stands in for the
// application's own timing of its calls.
func tailPgbench(dir string, rec *backfill.ForegroundRecorder) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		offsets, partial := map[string]int64{}, map[string]string{}
		buf := make([]byte, 256<<10) // one buffer: the reader must not be a load of its own
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			files, _ := filepath.Glob(filepath.Join(dir, "tx.*"))
			for _, f := range files {
				fh, err := os.Open(f)
				if err != nil {
					continue
				}
				for {
					n, _ := fh.ReadAt(buf, offsets[f])
					if n == 0 {
						break
					}
					offsets[f] += int64(n)
					text := partial[f] + string(buf[:n])
					lines := strings.Split(text, "\n")
					partial[f] = lines[len(lines)-1]
					for _, l := range lines[:len(lines)-1] {
						if tx, ok := parsePgbenchLine(l); ok {
							rec.Observe(tx.latency)
						}
					}
				}
				fh.Close()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// fgTx is one foreground transaction from pgbench's log.
type fgTx struct {
	done    time.Time
	latency time.Duration
}

// readPgbenchLogs reads every per-transaction log pgbench wrote in dir
// (see parsePgbenchLine).
func readPgbenchLogs(dir string) ([]fgTx, error) {
	files, err := filepath.Glob(filepath.Join(dir, "tx.*"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("pgbench logs in %s: %v", dir, err)
	}
	var txs []fgTx
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if tx, ok := parsePgbenchLine(sc.Text()); ok {
				txs = append(txs, tx)
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return txs, nil
}

// parsePgbenchLine reads one line of pgbench's per-transaction log:
// client, transaction, latency (µs), script, and the epoch seconds and
// microseconds it completed at.
func parsePgbenchLine(l string) (fgTx, bool) {
	fields := strings.Fields(l)
	if len(fields) < 6 {
		return fgTx{}, false
	}
	us, err1 := strconv.ParseInt(fields[2], 10, 64)
	sec, err2 := strconv.ParseInt(fields[4], 10, 64)
	usec, err3 := strconv.ParseInt(fields[5], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return fgTx{}, false
	}
	return fgTx{done: time.Unix(sec, usec*1000), latency: time.Duration(us) * time.Microsecond}, true
}

func pgbenchPath(b *testing.B) string {
	if p := os.Getenv("BENCH_PGBENCH"); p != "" {
		return p
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	return "/usr/lib/postgresql/15/bin/pgbench"
}
