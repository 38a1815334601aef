// Command quickstart runs the whole worked example of schemashift under
// live traffic: users.full_name becomes users.given_name +
// users.family_name while three simulated instances of the users service
// keep reading and writing. The rollout plan's coordinator takes the
// migration through every phase — expand, dualwrite, backfill (100k rows),
// verify, shadow, live, rampdown, complete, contract — each through its
// gate, and the program ends by checking that no row was lost.
//
// It needs no setup: it uses the PostgreSQL server named by DATABASE_URL
// (in a database of its own, dropped at the end), else a throwaway cluster
// started from the local server binaries, else — when there are none — an
// embedded SQLite database in a temporary directory. -db picks one.
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart -db sqlite
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/examples/internal/exampledb"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

const (
	migration  = "users_split_name"
	seedRows   = 100_000
	legacyRows = 100 // rows a legacy job still writes through full_name only
	instances  = 3
)

func main() {
	which := exampledb.Flag(flag.CommandLine)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, settings{db: *which, pace: 1}); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// plan is the rollout, as the users service declares it. The two databases
// differ in two places: SQLite cannot drop a NOT NULL in place (its users
// table starts with a nullable full_name), and its string functions.
func plan(onSQLite bool, pace int) rollout.Plan {
	p := rollout.Plan{
		Migration: migration,
		ExpandOps: []ddl.Op{
			ddl.AddColumn{Table: "users", Column: "given_name", Type: "text"},
			ddl.AddColumn{Table: "users", Column: "family_name", Type: "text"},
		},
		// New code inserts rows without full_name.
		Expand: []rollout.Step{{SQL: `ALTER TABLE users ALTER COLUMN full_name DROP NOT NULL`,
			Down: "-- schemashift:ignore set-not-null\nALTER TABLE users ALTER COLUMN full_name SET NOT NULL"}},
		Columns: []rollout.Column{{Table: "users", Column: "given_name"}, {Table: "users", Column: "family_name"}},
		// The split does not invert: "Mary Ann" "Smith Jones", written
		// through the new path, is full_name "Mary Ann Smith Jones", which
		// splits as "Mary" "Ann Smith Jones". Down, the join, is what tells
		// such a row from one a legacy writer changed: the backfill and its
		// repair never overwrite the first.
		Backfills: []backfill.Job{{Name: migration, Table: "users", Set: []backfill.Assign{
			{Column: "given_name", Expr: "split_part(full_name, ' ', 1)"},
			{Column: "family_name", Expr: "substr(full_name, length(split_part(full_name, ' ', 1)) + 2)"},
		}, Down: []backfill.Assign{{Column: "full_name", Expr: "given_name || ' ' || family_name"}}}},
		ContractOps: []ddl.Op{ddl.DropColumn{Table: "users", Column: "full_name"}},
		Thresholds:  rollout.Thresholds{ShadowConsistency: 0.99, MinComparisons: 300, Window: time.Duration(pace) * time.Second},
	}
	if onSQLite {
		p.Expand = nil
		p.Backfills[0].Set = []backfill.Assign{
			{Column: "given_name", Expr: "substr(full_name, 1, instr(full_name, ' ') - 1)"},
			{Column: "family_name", Expr: "substr(full_name, instr(full_name, ' ') + 1)"},
		}
	}
	return p
}

// step is one line of the summary.
type step struct {
	from, to ledger.Phase
	gate     string
	waited   time.Duration
	note     string
}

// settings are what a run may change: the database (auto, postgres or
// sqlite) and its pace, which multiplies the gates' windows and timeouts:
// 1, unless the machine runs slowly (the race detector slows the SQLite
// engine, which is Go translated from C, by tens of times).
type settings struct {
	db   string
	pace int
}

func run(ctx context.Context, out io.Writer, set settings) error {
	db, release, err := exampledb.Open(ctx, out, set.db, "quickstart")
	if err != nil {
		return err
	}
	defer release()
	onSQLite := db.DriverName() == sqlite.DriverName
	if !onSQLite { // room for three instances, their shadow reads and the backfill at once
		db.SetMaxOpenConns(40)
		db.SetMaxIdleConns(40)
	}
	if err := seed(ctx, db, seedRows, onSQLite); err != nil {
		return err
	}
	fmt.Fprintf(out, "users(id, full_name) holds %d rows; %d instances of users-api serve traffic.\n\n", seedRows, instances)

	coord, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan(onSQLite, set.pace)}, rollout.WithAgeOut(time.Duration(3*set.pace)*time.Second))
	if err != nil {
		return err
	}
	fl, err := startFleet(ctx, db, instances, plan(onSQLite, set.pace))
	if err != nil {
		return err
	}
	defer fl.stop()

	var summary []step
	caught := false // the legacy job has run and been caught
	for {
		st, err := ledger.Get(ctx, db, migration)
		if err != nil {
			return err
		}
		if st.Phase == ledger.Contracted {
			break
		}
		note := ""
		switch st.Phase {
		case ledger.Backfill:
			bf := func(p backfill.Progress) {
				fmt.Fprintf(out, "\r  backfill %s  %d/%d rows  %.0f rows/s  ETA %v   ", bar(p.RowsDone, p.TotalEstimate), p.RowsDone, p.TotalEstimate, p.Rate, p.ETA.Round(time.Second))
			}
			if err := coord.RunBackfills(ctx, migration, backfill.WithProgress(100*time.Millisecond, bf),
				backfill.WithChunkSize(2000, 500, 20000), backfill.WithTargetChunkTime(100*time.Millisecond)); err != nil {
				return err
			}
			p, err := backfill.State(ctx, db, migration)
			if err != nil {
				return err
			}
			fmt.Fprintln(out)
			note = fmt.Sprintf("%d rows in %d chunks, %d changed", p.RowsDone, p.ChunksDone, p.RowsChanged)
		case ledger.Verify:
			reps, err := coord.VerifyBackfills(ctx, migration, backfill.VerifyOptions{})
			if err != nil {
				return err
			}
			note = fmt.Sprintf("%d rows compared, %d divergent, %v", reps[0].Compared, reps[0].Divergent, reps[0].Duration.Round(time.Millisecond))
		case ledger.Shadow:
			if caught {
				break
			}
			// A legacy job still writes full_name directly, behind the
			// adapters' back: the shadow comparisons catch it. The gate
			// judges every comparison since shadow began, so the ones the
			// job spoiled would count for as long as the phase lasts: the
			// operator steps back to verify, repairs there, and enters
			// shadow again, to be judged on what the repaired rows give.
			caught = true
			if _, err := db.ExecContext(ctx, `UPDATE users SET full_name = upper(full_name) WHERE id <= $1`, legacyRows); err != nil {
				return err
			}
			mm, diffs := fl.waitMismatch(ctx, 10*time.Second)
			start := time.Now()
			back, err := coord.Rollback(ctx, rollout.Request{Migration: migration, Actor: "quickstart",
				Reason: "shadow reads disagree with the old path: step back, repair, verify again"})
			if err != nil {
				return err
			}
			reps, err := coord.VerifyBackfills(ctx, migration, backfill.VerifyOptions{Repair: true})
			if err != nil {
				return err
			}
			s := step{from: st.Phase, to: back.Phase, gate: "step back", waited: time.Since(start),
				note: fmt.Sprintf("legacy job caught: %d mismatches (%s); repair fixed %d rows", mm, diffs, reps[0].Repaired)}
			summary = append(summary, s)
			fmt.Fprintf(out, "%-10s → %-10s %-27s after %v\n", s.from, s.to, "stepped back to repair", s.waited.Round(10*time.Millisecond))
			continue
		}
		start := time.Now()
		next, ready, err := coord.AdvanceWhenMet(ctx, rollout.Request{Migration: migration, Actor: "quickstart",
			Reason: "gate met", Confirm: st.Phase == ledger.Complete}, 100*time.Millisecond, time.Duration(set.pace)*time.Minute)
		if err != nil {
			return err
		}
		s := step{from: st.Phase, to: next.Phase, gate: ready.Gate, waited: time.Since(start), note: note}
		summary = append(summary, s)
		fmt.Fprintf(out, "%-10s → %-10s gate %-22q met after %v\n", s.from, s.to, s.gate, s.waited.Round(10*time.Millisecond))
	}
	traffic := fl.stop()

	// No row lost: every seeded row and every row the instances created is
	// there, in the new shape, and the old column is gone.
	var rows, incomplete int
	if err := db.GetContext(ctx, &rows, `SELECT count(*) FROM users`); err != nil {
		return err
	}
	if err := db.GetContext(ctx, &incomplete, `SELECT count(*) FROM users WHERE given_name IS NULL OR family_name IS NULL`); err != nil {
		return err
	}
	// The build after the contract needs the new columns and no full_name.
	fits := true
	after := contract.Schema{Tables: []contract.Table{{Name: "users", Absent: []string{"full_name"},
		Columns: []contract.Column{{Name: "given_name", Type: "text"}, {Name: "family_name", Type: "text"}}}}}
	if err := after.Verify(ctx, db); err != nil {
		if !errors.Is(err, contract.ErrMismatch) {
			return err
		}
		fmt.Fprintln(out, err)
		fits = false
	}
	want := seedRows + int(traffic.inserted)
	lost := want - rows
	// Every name the instances wrote through the new path, with more words
	// than the old shape can split back, is as they last wrote it.
	kept, changed, err := fl.newPathIntact(ctx, db)
	if err != nil {
		return err
	}

	fmt.Fprintln(out, "\nSummary")
	w := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(w, "FROM\tTO\tGATE\tWAITED\tNOTE")
	for _, s := range summary {
		fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%s\n", s.from, s.to, s.gate, s.waited.Round(10*time.Millisecond), s.note)
	}
	_ = w.Flush()
	if err := exampledb.PrintNotes(ctx, out, db, migration); err != nil {
		return err
	}
	fmt.Fprintf(out, "\ntraffic: %d reads, %d writes (%d new users), %d errors; shadow comparisons: %d matched, %d mismatched\n",
		traffic.reads, traffic.writes, traffic.inserted, traffic.errors, traffic.matched, traffic.mismatched)
	if traffic.busy > 0 {
		fmt.Fprintf(out, "%d writes retried: SQLite's write lock was held past busy_timeout (nothing of them had committed)\n", traffic.busy)
	}
	fmt.Fprintf(out, "rows: %d expected, %d present, %d lost; %d without the new shape; schema fits the contracted build: %v\n",
		want, rows, lost, incomplete, fits)
	fmt.Fprintf(out, "new-path writes of multi-word names: %d intact, %d overwritten\n", kept, len(changed))
	for _, c := range changed[:min(5, len(changed))] {
		fmt.Fprintln(out, "  overwritten:", c)
	}
	if lost != 0 || incomplete != 0 || !fits || traffic.errors != 0 || len(changed) != 0 || kept == 0 {
		return fmt.Errorf("the rollout lost data or failed requests: %d lost, %d incomplete, %d errors, %d new-path writes overwritten (%d intact)",
			lost, incomplete, traffic.errors, len(changed), kept)
	}
	fmt.Fprintln(out, "0 rows lost; every gate passed in order.")
	return nil
}

func bar(done, total int64) string {
	const width = 30
	n := 0
	if total > 0 {
		n = int(min(int64(width), done*width/total))
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
