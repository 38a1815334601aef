package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

var errHelp = errors.New("help shown")

type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	dbURL, actor   string
	db             *sqlx.DB
}

type command struct {
	name, args, help string
	run              func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error
	flags            func(fs *flag.FlagSet)
}

// commands is every command, in the order help lists them.
var commands = []command{
	{"status", "[MIGRATION]", "Show every migration (or one): phase, stage, next gate, backfills, fleet.", (*cli).status,
		func(fs *flag.FlagSet) {
			fs.Bool("json", false, "print JSON")
			fs.String("stage", "", "only migrations at this stage")
		}},
	{"advance", "MIGRATION", "Move a migration one phase forward through its gate.", (*cli).advance, advanceFlags},
	{"rollback", "MIGRATION", "Move a migration one phase back (or to off with --to-off).", (*cli).rollback, rollbackFlags},
	{"force", "MIGRATION", "Advance (or --rollback) without the gate; needs --reason; recorded as forced.", (*cli).force,
		func(fs *flag.FlagSet) {
			advanceFlags(fs)
			fs.Bool("to-off", false, "with --rollback: roll back straight to off (expanded)")
			fs.Bool("rollback", false, "force a rollback instead of an advance")
		}},
	{"backfill", "run|pause|resume|cancel|status NAME", "Run a migration's backfills (NAME is the migration), or control a job (NAME is the job).",
		(*cli).backfill, func(fs *flag.FlagSet) {
			fs.Int("workers", 1, "workers for run")
			fs.Float64("rate", 0, "rows per second for run (0: unlimited)")
			fs.Bool("json", false, "print JSON (status)")
		}},
	{"verify", "MIGRATION", "Compare old and new shapes of every backfill of a migration.", (*cli).verify,
		func(fs *flag.FlagSet) {
			fs.Bool("repair", false, "fill unfilled rows and rewrite drifted ones (never a row written through the new path)")
			fs.String("repair-from", "old", "the side a drifted row is rewritten from, the one written last: old, or new (needs the job's Down)")
			fs.Bool("json", false, "print JSON")
		}},
	{"lint", "FILE", "Check a DDL script for statements unsafe under a running fleet.", (*cli).lint,
		func(fs *flag.FlagSet) { fs.Bool("contract", false, "the script is a contract step (drops allowed)") }},
	{"runbook", "MIGRATION", "Print the migration's runbook (Markdown), generated from its plan.", (*cli).runbook,
		func(fs *flag.FlagSet) {}},
	{"retro", "MIGRATION", "Print the migration's retrospective: timeline, time per phase, backfills, shadow results.", (*cli).retro,
		func(fs *flag.FlagSet) { fs.Bool("json", false, "print JSON") }},
	{"audit", "[MIGRATION]", "Show the audit trail.", (*cli).audit,
		func(fs *flag.FlagSet) {
			fs.Int("limit", 50, "newest events to show")
			fs.Bool("json", false, "print JSON")
		}},
}

func transitionFlags(fs *flag.FlagSet) {
	fs.String("reason", "", "why (recorded in the audit trail)")
	fs.Int64("version", 0, "refuse if the migration's version is not this one")
}

func advanceFlags(fs *flag.FlagSet) {
	transitionFlags(fs)
	fs.Bool("confirm", false, "confirm the irreversible contract step")
	fs.Bool("acknowledge", false, "clear a tripped guardrail and advance; needs --reason (recorded in the audit trail)")
}

func rollbackFlags(fs *flag.FlagSet) {
	transitionFlags(fs)
	fs.Bool("to-off", false, "roll back straight to off (expanded)")
}

func (c *cli) usage() {
	w := c.stdout
	fmt.Fprintln(w, "usage: schemashift [--database-url URL] [--actor NAME] COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-9s %-36s %s\n", cmd.name, cmd.args, cmd.help)
	}
	fmt.Fprintln(w, "\nThe database is --database-url, else $DATABASE_URL. 'schemashift COMMAND --help' shows a command's flags.")
	fmt.Fprintln(w, "Exit codes: 0 done, 1 failed, 2 bad input, 3 refused.")
}

func (c *cli) main(ctx context.Context, args []string) error {
	global := flag.NewFlagSet("schemashift", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	global.StringVar(&c.dbURL, "database-url", "", "PostgreSQL URL, or sqlite:PATH for a SQLite file (default $DATABASE_URL)")
	global.StringVar(&c.actor, "actor", "", "who acts, for the audit trail (default $USER)")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage()
			return errHelp
		}
		return usagef("%v", err)
	}
	rest := global.Args()
	if len(rest) == 0 || rest[0] == "help" || rest[0] == "-h" {
		c.usage()
		if len(rest) == 0 {
			return usagef("no command")
		}
		return errHelp
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == rest[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		return usagef("unknown command %q", rest[0])
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(c.stdout)
	fs.Usage = func() {
		fmt.Fprintf(c.stdout, "usage: schemashift %s [flags] %s\n\n%s\n\nflags:\n", cmd.name, cmd.args, cmd.help)
		fs.PrintDefaults()
	}
	cmd.flags(fs)
	positional, err := parseInterleaved(fs, rest[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usagef("%s: %v", cmd.name, err)
	}
	if c.actor == "" {
		c.actor = c.getenv("USER")
	}
	if c.actor == "" {
		c.actor = "cli"
	}
	if cmd.name != "lint" {
		if c.dbURL == "" {
			c.dbURL = c.getenv("DATABASE_URL")
		}
		if c.dbURL == "" {
			return usagef("no database: pass --database-url or set DATABASE_URL")
		}
		db, err := openDatabase(ctx, c.dbURL)
		if err != nil {
			return err
		}
		defer db.Close()
		c.db = db
	}
	return cmd.run(c, ctx, fs, positional)
}

// openDatabase opens a PostgreSQL URL, or the SQLite database file named
// by "sqlite:PATH" (which must exist: a typo should not create an empty
// database that knows no migration).
func openDatabase(ctx context.Context, dbURL string) (*sqlx.DB, error) {
	if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
		if _, err := os.Stat(path); err != nil {
			return nil, usagef("database %s: no such SQLite database file", dbURL)
		}
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		return db, nil
	}
	db, err := sqlx.Open("pgx", dbURL)
	if err != nil {
		return nil, usagef("database URL: %v", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return db, nil
}

// parseInterleaved parses flags wherever they stand among the arguments
// ("advance m --reason x" as well as "advance --reason x m").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// boolFlag is a bool flag's value; false for one the command does not take.
func boolFlag(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Value.(flag.Getter).Get().(bool)
}
func strFlag(fs *flag.FlagSet, name string) string {
	return fs.Lookup(name).Value.(flag.Getter).Get().(string)
}

func (c *cli) coordinator(ctx context.Context) (*rollout.Coordinator, error) {
	return rollout.Open(ctx, c.db)
}

// migration reads the one migration argument of a command and opens the
// coordinator of the ledger's plans.
func (c *cli) migration(ctx context.Context, args []string) (*rollout.Coordinator, string, error) {
	m, err := oneArg(args, "migration")
	if err != nil {
		return nil, "", err
	}
	co, err := c.coordinator(ctx)
	return co, m, err
}

func oneArg(args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", usagef("want one %s, got %d arguments", what, len(args))
	}
	return args[0], nil
}

// classify turns library errors into exit codes.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ledger.ErrUnknownMigration), errors.Is(err, backfill.ErrUnknownJob), errors.Is(err, flags.ErrUnknownStage),
		errors.Is(err, rollout.ErrReasonRequired), errors.Is(err, backfill.ErrNoInverse):
		return usageError{err.Error()}
	case errors.Is(err, rollout.ErrGateRefused), errors.Is(err, rollout.ErrConflict), errors.Is(err, rollout.ErrConfirmRequired),
		errors.Is(err, rollout.ErrIrreversible):
		return refusedError{err}
	}
	return err
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *cli) status(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var only flags.Stage
	filter := strFlag(fs, "stage")
	if filter != "" {
		s, err := flags.ParseStage(filter)
		if err != nil {
			return usageError{err.Error()}
		}
		only = s
	}
	co, err := c.coordinator(ctx)
	if err != nil {
		return err
	}
	b, err := board.New(co)
	if err != nil {
		return err
	}
	snap, err := b.Snapshot(ctx)
	if err != nil {
		return err
	}
	var ms []board.Migration
	for _, m := range snap.Migrations {
		if len(args) > 0 && m.Migration != args[0] {
			continue
		}
		if filter != "" && m.Stage != only {
			continue
		}
		ms = append(ms, m)
	}
	if len(args) > 0 && len(ms) == 0 && filter == "" {
		return usageError{fmt.Sprintf("%v %q", ledger.ErrUnknownMigration, args[0])}
	}
	if boolFlag(fs, "json") {
		if ms == nil {
			ms = []board.Migration{}
		}
		return c.printJSON(ms)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(w, "MIGRATION\tPHASE\tSTAGE\tVERSION\tNEXT\tGATE\tINSTANCES\tBACKFILL")
	for _, m := range ms {
		gate := "met"
		if !m.Next.Met {
			gate = "not met: " + m.Next.Reason
		}
		next := m.Next.Next.String()
		if m.Next.Final {
			next, gate = "-", "-"
		}
		var bf []string
		for _, j := range m.Backfills {
			bf = append(bf, fmt.Sprintf("%s %s %d/%d", j.Job, j.Status, j.RowsDone, j.TotalEstimate))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", m.Migration, m.Phase, m.Stage, m.Version, next, gate,
			len(m.Fleet.Instances), strings.Join(bf, "; "))
	}
	return w.Flush()
}

func (c *cli) request(fs *flag.FlagSet, migration string) rollout.Request {
	return rollout.Request{Migration: migration, Actor: c.actor, Reason: strFlag(fs, "reason"),
		Version: fs.Lookup("version").Value.(flag.Getter).Get().(int64), Confirm: boolFlag(fs, "confirm"), ToOff: boolFlag(fs, "to-off"),
		Acknowledge: boolFlag(fs, "acknowledge")}
}

func (c *cli) transition(ctx context.Context, fs *flag.FlagSet, args []string, forward, force bool) error {
	if boolFlag(fs, "acknowledge") && strings.TrimSpace(strFlag(fs, "reason")) == "" {
		return usagef("--acknowledge needs --reason: why the tripped guardrail may be passed")
	}
	if boolFlag(fs, "acknowledge") && !forward {
		return usagef("--acknowledge clears a trip to advance; a rollback needs none")
	}
	co, m, err := c.migration(ctx, args)
	if err != nil {
		return err
	}
	r := c.request(fs, m)
	r.Force = force
	var st ledger.Status
	if forward {
		st, err = co.Advance(ctx, r)
	} else {
		st, err = co.Rollback(ctx, r)
	}
	if err != nil {
		return classify(err)
	}
	fmt.Fprintf(c.stdout, "%s: %s (stage %s, version %d)\n", st.Migration, st.Phase, st.Stage, st.Version)
	return nil
}

func (c *cli) advance(ctx context.Context, fs *flag.FlagSet, args []string) error {
	return c.transition(ctx, fs, args, true, false)
}

func (c *cli) rollback(ctx context.Context, fs *flag.FlagSet, args []string) error {
	return c.transition(ctx, fs, args, false, false)
}

func (c *cli) force(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if strings.TrimSpace(strFlag(fs, "reason")) == "" {
		return usagef("force: --reason is required")
	}
	return c.transition(ctx, fs, args, !boolFlag(fs, "rollback"), true)
}

func (c *cli) backfill(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if len(args) != 2 {
		return usagef("backfill: want an action (run, pause, resume, cancel, status) and a name")
	}
	action, name := args[0], args[1]
	switch action {
	case "pause":
		return classify(backfill.Pause(ctx, c.db, name))
	case "resume":
		return classify(backfill.Resume(ctx, c.db, name))
	case "cancel":
		return classify(backfill.Cancel(ctx, c.db, name))
	case "status":
		p, err := backfill.State(ctx, c.db, name)
		if err != nil {
			return classify(err)
		}
		if boolFlag(fs, "json") {
			return c.printJSON(p)
		}
		fmt.Fprintf(c.stdout, "%s: %s, %d/%d rows (%d changed), %.0f rows/s, ETA %s, chunk %d, throttle %q, verify %q\n",
			p.Job, backfillStatus(p), p.RowsDone, p.TotalEstimate, p.RowsChanged, p.Rate, eta(p), p.ChunkSize, p.Throttle, p.Verify)
		return nil
	case "run":
		co, err := c.coordinator(ctx)
		if err != nil {
			return err
		}
		if _, err := co.Plan(name); err != nil {
			return classify(err)
		}
		opts := []backfill.Option{backfill.WithWorkers(fs.Lookup("workers").Value.(flag.Getter).Get().(int)),
			backfill.WithProgress(200*time.Millisecond, c.progressBar)}
		if r := fs.Lookup("rate").Value.(flag.Getter).Get().(float64); r > 0 {
			opts = append(opts, backfill.WithRate(r))
		}
		err = co.RunBackfills(ctx, name, opts...)
		fmt.Fprintln(c.stderr)
		if err != nil {
			if errors.Is(err, backfill.ErrCancelled) {
				return refusedError{err}
			}
			return classify(err)
		}
		fmt.Fprintf(c.stdout, "%s: backfills done\n", name)
		return nil
	}
	return usagef("backfill: unknown action %q (want run, pause, resume, cancel or status)", action)
}

// backfillStatus is a job's status, with who it last had and since when
// when it is stalled.
func backfillStatus(p backfill.Progress) string {
	if p.Status == backfill.Stalled && p.Stall != nil {
		return fmt.Sprintf("%s (no live worker since %s; last: %s)", p.Status, p.Stall.Since.UTC().Format(time.RFC3339), p.Stall.Worker)
	}
	return string(p.Status)
}

// eta is the job's ETA, or "-" where there is none (a job not running).
func eta(p backfill.Progress) string {
	if p.ETA <= 0 && p.Status != backfill.Done {
		return "-"
	}
	return p.ETA.Round(time.Second).String()
}

// progressBar draws one line on stderr, redrawn in place.
func (c *cli) progressBar(p backfill.Progress) {
	const width = 30
	filled := 0
	if p.TotalEstimate > 0 {
		filled = int(min(int64(width), p.RowsDone*width/p.TotalEstimate))
	}
	fmt.Fprintf(c.stderr, "\r%s [%s%s] %d/%d rows  %.0f rows/s  ETA %s  %s   ", p.Job, strings.Repeat("#", filled),
		strings.Repeat(".", width-filled), p.RowsDone, p.TotalEstimate, p.Rate, eta(p), backfillStatus(p))
}

func (c *cli) verify(ctx context.Context, fs *flag.FlagSet, args []string) error {
	co, m, err := c.migration(ctx, args)
	if err != nil {
		return err
	}
	o := backfill.VerifyOptions{Repair: boolFlag(fs, "repair")}
	switch from := strFlag(fs, "repair-from"); from {
	case "old":
	case "new":
		o.RepairFrom = backfill.FromNew
	default:
		return usageError{fmt.Sprintf("--repair-from %q: old or new", from)}
	}
	reps, err := co.VerifyBackfills(ctx, m, o)
	if err != nil {
		return classify(err)
	}
	if boolFlag(fs, "json") {
		if err := c.printJSON(reps); err != nil {
			return err
		}
	}
	failed := false
	for _, r := range reps {
		if !boolFlag(fs, "json") {
			fmt.Fprintf(c.stdout, "%s: %s (%v)\n", r.Job, r.Summary(), r.Duration.Round(time.Millisecond))
			for _, d := range r.Diverged[:min(10, len(r.Diverged))] {
				fmt.Fprintf(c.stdout, "  key %s (%s): %v\n", strings.Join(d.Key, ","), d.Kind, d.Fields)
			}
			if shown := min(10, len(r.Diverged)); int64(shown) < r.Divergent {
				fmt.Fprintf(c.stdout, "  … %d more divergent rows not shown\n", r.Divergent-int64(shown))
			}
			if r.Unverified > 0 {
				fmt.Fprintf(c.stdout, "  %d rows differ where the job declares neither Down nor Derived: a write through the new path cannot be told from drift, so they are never repaired\n", r.Unverified)
			}
			if r.Repaired > 0 && r.Passed() {
				fmt.Fprintf(c.stdout, "  repaired; verify again: the gate to shadow counts only a verification that started after the last repair\n")
			}
		}
		failed = failed || !r.Passed()
	}
	if failed {
		return refusedError{errors.New("verification found divergent rows")}
	}
	return nil
}

func (c *cli) lint(ctx context.Context, fs *flag.FlagSet, args []string) error {
	file, err := oneArg(args, "file")
	if err != nil {
		return err
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return usagef("lint: %v", err)
	}
	step := ddl.ExpandStep
	if boolFlag(fs, "contract") {
		step = ddl.ContractStep
	}
	fs2, err := ddl.Lint(string(src), step)
	if err != nil {
		return usagef("lint %s: %v", file, err)
	}
	for _, f := range fs2 {
		fmt.Fprintf(c.stdout, "%s:%s\n", file, f)
	}
	if len(fs2) > 0 {
		return refusedError{fmt.Errorf("%d finding(s) in %s", len(fs2), file)}
	}
	fmt.Fprintf(c.stdout, "%s: no findings\n", file)
	return nil
}

func (c *cli) runbook(ctx context.Context, _ *flag.FlagSet, args []string) error {
	co, m, err := c.migration(ctx, args)
	if err != nil {
		return err
	}
	md, err := report.RunbookFor(ctx, co, m)
	if err != nil {
		return classify(err)
	}
	_, err = io.WriteString(c.stdout, md)
	return err
}

func (c *cli) retro(ctx context.Context, fs *flag.FlagSet, args []string) error {
	co, m, err := c.migration(ctx, args)
	if err != nil {
		return err
	}
	r, err := report.Retrospect(ctx, co, m)
	if err != nil {
		return classify(err)
	}
	if boolFlag(fs, "json") {
		return c.printJSON(r)
	}
	_, err = io.WriteString(c.stdout, r.Markdown())
	return err
}

func (c *cli) audit(ctx context.Context, fs *flag.FlagSet, args []string) error {
	m := ""
	if len(args) > 0 {
		m = args[0]
	}
	if err := ledger.Ensure(ctx, c.db); err != nil {
		return err
	}
	if m != "" {
		if _, err := ledger.Get(ctx, c.db, m); err != nil {
			return classify(err)
		}
	}
	ev, err := ledger.Audit(ctx, c.db, m, fs.Lookup("limit").Value.(flag.Getter).Get().(int))
	if err != nil {
		return err
	}
	if boolFlag(fs, "json") {
		if ev == nil {
			ev = []ledger.Event{}
		}
		return c.printJSON(ev)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tMIGRATION\tKIND\tACCEPTED\tFROM\tTO\tACTOR\tREASON")
	for _, e := range ev {
		fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Migration, e.Kind, e.Accepted, e.FromPhase, e.ToPhase, e.Actor, e.Reason)
	}
	return w.Flush()
}
