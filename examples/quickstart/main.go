// Command quickstart drives the worked example of schemashift through all
// six stages: users.full_name becomes users.given_name + users.family_name
// while simulated traffic keeps reading and writing through a repository
// wrapped in dualwrite adapters.
//
// It needs no setup: it starts a throwaway PostgreSQL from the local server
// binaries, or uses the server named by DATABASE_URL (in a database of its
// own, dropped at the end).
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"github.com/jmoiron/sqlx"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

const migration = "users_split_name"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

	fmt.Fprintln(out, "Starting PostgreSQL (DATABASE_URL if set, else a throwaway cluster)…")
	srv, err := pgtest.Start(ctx, pgtest.Options{URLEnv: "DATABASE_URL"})
	if err != nil {
		return err
	}
	defer srv.Close()
	url, err := srv.CreateDatabase(ctx, "quickstart")
	if err != nil {
		return err
	}
	db, err := sqlx.Open("pgx", url)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	// Shadow reads add queries: keep enough warm connections for them.
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)

	if err := seed(ctx, db, seedRows); err != nil {
		return err
	}
	// The expand is additive, and relaxes what new code cannot satisfy: a
	// new-code instance inserts rows without full_name.
	const expand = `ALTER TABLE users ADD COLUMN IF NOT EXISTS given_name text, ADD COLUMN IF NOT EXISTS family_name text, ALTER COLUMN full_name DROP NOT NULL`
	fmt.Fprintln(out, "Expand:", expand)
	if _, err := db.ExecContext(ctx, expand); err != nil {
		return fmt.Errorf("expand: %w", err)
	}

	// The flag service. Here a provider the program sets itself; a fleet
	// uses the ledger's provider or its own flag service.
	provider := flagstest.NewProvider(map[string]flags.Stage{migration: flags.Off})
	api := isolated.NewAPI()
	defer func() { _ = api.Shutdown(context.WithoutCancel(ctx)) }()
	if err := api.SetProviderAndWait(ctx, provider); err != nil {
		return fmt.Errorf("set flag provider: %w", err)
	}
	tally := &tally{}
	logged, err := dualwrite.NewSlogObserver(log)
	if err != nil {
		return err
	}
	obs := dualwrite.Observers(tally, logged)
	ev, err := flags.NewEvaluator(api.NewClient(), flags.WithObserver(obs))
	if err != nil {
		return err
	}
	repo, err := newUsers(db, ev, obs)
	if err != nil {
		return err
	}
	defer repo.Close()

	fmt.Fprintf(out, "\n%-10s %-24s %-24s %-14s %s\n", "stage", "reads (caller got)", "writes (in order)", "shadow reads", "comparisons")
	for _, stage := range flags.Stages() {
		provider.Set(migration, stage)
		tally.reset()
		if stage == flags.Shadow {
			// A legacy job that still writes full_name directly, behind the
			// adapters' back: the shadow comparison is what catches it.
			if _, err := db.ExecContext(ctx, `UPDATE users SET full_name = upper(full_name) WHERE id <= $1`, legacyRows); err != nil {
				return err
			}
		}
		if err := traffic(ctx, repo, 400); err != nil {
			return fmt.Errorf("traffic at %s: %w", stage, err)
		}
		repo.Wait()
		fmt.Fprintln(out, tally.line(stage))
		for i, d := range tally.mismatches() {
			if i == 4 {
				fmt.Fprintf(out, "%-10s …\n", "")
				break
			}
			fmt.Fprintf(out, "%-10s mismatch: %s\n", "", d)
		}
		switch stage {
		case flags.DualWrite:
			// Every instance now writes both shapes; the rows nobody wrote
			// since the expand get theirs from the backfill: keyset chunks,
			// checkpointed, race-safe against the dual writes going on.
			bf, err := backfill.New(ctx, db, splitName, backfill.WithChunkSize(250, 100, 5000))
			if err != nil {
				return err
			}
			p, err := bf.Run(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%-10s backfill: %d rows walked in %d chunks, %d given their new shape\n", "", p.RowsDone, p.ChunksDone, p.RowsChanged)
			rep, err := bf.Verify(ctx, backfill.VerifyOptions{})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%-10s verify: %d rows compared, %d divergent\n", "", rep.Compared, rep.Divergent)
		case flags.Shadow:
			bf, err := backfill.New(ctx, db, splitName)
			if err != nil {
				return err
			}
			rep, err := bf.Verify(ctx, backfill.VerifyOptions{Repair: true})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%-10s verify: %d divergent row(s) the legacy job changed; repair re-derived %d, %d left\n", "",
				rep.Divergent, rep.Repaired, rep.Remaining)
		case flags.Rampdown:
			// The last stage that still writes the old shape: both must agree.
			bf, err := backfill.New(ctx, db, splitName)
			if err != nil {
				return err
			}
			rep, err := bf.Verify(ctx, backfill.VerifyOptions{})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%-10s verify: %d of %d rows disagree between full_name and given_name/family_name\n", "", rep.Divergent, rep.Compared)
			if !rep.Passed() {
				return fmt.Errorf("verify: %d rows diverged", rep.Divergent)
			}
		}
	}
	fmt.Fprintln(out, "\nEvery instance now reads and writes only the new shape.")
	fmt.Fprintln(out, "Next: contract (ALTER TABLE users DROP COLUMN full_name) once the whole fleet is at complete.")
	return nil
}

// splitName derives the new shape from the old, the way the new code's
// read of full_name splits it: at the first space.
var splitName = backfill.Job{
	Name:  "users_split_name",
	Table: "users",
	Set: []backfill.Assign{
		{Column: "given_name", Expr: "split_part(full_name, ' ', 1)"},
		{Column: "family_name", Expr: "substr(full_name, length(split_part(full_name, ' ', 1)) + 2)"},
	},
}
