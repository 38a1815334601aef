package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

func (c *cli) statusCommand() *cobra.Command {
	var stage string
	cmd := &cobra.Command{
		Use:   "status [MIGRATION]",
		Short: "Show every migration (or one): phase, stage, next gate, backfills, fleet",
		Long: `Show every migration (or one): its phase, stage and version, the next
phase's gate and what it still needs, its backfills and its fleet.
Only reads: a role that may only SELECT the ledger runs it.`,
		Args: args(0, 1, "migration"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var only flags.Stage
			if stage != "" {
				s, err := flags.ParseStage(stage)
				if err != nil {
					return usageError{msg: err.Error()}
				}
				only = s
			}
			co, err := c.coordinator(ctx, true)
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
				if stage != "" && m.Stage != only {
					continue
				}
				ms = append(ms, m)
			}
			if len(args) > 0 && len(ms) == 0 && stage == "" {
				return usageError{msg: fmt.Sprintf("%v %q", ledger.ErrUnknownMigration, args[0])}
			}
			if c.json {
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
			if err := w.Flush(); err != nil {
				return err
			}
			c.printApprovals(ms)
			c.printSunsets(ms)
			c.printSchedules(ms)
			return nil
		},
	}
	cmd.Flags().StringVar(&stage, "stage", "", "only migrations at this stage")
	c.jsonFlag(cmd, "the migrations")
	return cmd
}

// transition is what advance, rollback and force share: their flags and
// their request.
type transition struct {
	reason                      string
	version                     int64
	confirm, acknowledge, toOff bool
	rollback                    bool // force only
}

func (t *transition) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.reason, "reason", "", "why (recorded in the audit trail)")
	cmd.Flags().Int64Var(&t.version, "version", 0, "refuse if the migration's version is not this one")
}

func (t *transition) advanceFlags(cmd *cobra.Command) {
	t.flags(cmd)
	cmd.Flags().BoolVar(&t.confirm, "confirm", false, "confirm the irreversible contract step")
	cmd.Flags().BoolVar(&t.acknowledge, "acknowledge", false, "clear a tripped guardrail and advance; needs --reason (recorded in the audit trail)")
}

// transitionResult is the JSON of advance, rollback and force: the
// migration's ledger status after the move, and the move.
type transitionResult struct {
	Action string `json:"action"` // advance, rollback, force-advance, force-rollback
	ledger.Status
}

func (c *cli) move(cmd *cobra.Command, migration string, t *transition, forward, force bool) error {
	if t.acknowledge && strings.TrimSpace(t.reason) == "" {
		return usagef("--acknowledge needs --reason: why the tripped guardrail may be passed")
	}
	if t.acknowledge && !forward {
		return usagef("--acknowledge clears a trip to advance; a rollback needs none")
	}
	ctx := cmd.Context()
	co, err := c.coordinator(ctx, false)
	if err != nil {
		return err
	}
	r := rollout.Request{Migration: migration, Actor: c.who(), Reason: t.reason, Version: t.version, Confirm: t.confirm,
		ToOff: t.toOff, Acknowledge: t.acknowledge, Force: force}
	var st ledger.Status
	action := "advance"
	if forward {
		st, err = co.Advance(ctx, r)
	} else {
		action = "rollback"
		st, err = co.Rollback(ctx, r)
	}
	if err != nil {
		return classify(err)
	}
	if force {
		action = "force-" + action
	}
	if c.json {
		return c.printJSON(transitionResult{action, st})
	}
	fmt.Fprintf(c.stdout, "%s: %s (stage %s, version %d)\n", st.Migration, st.Phase, st.Stage, st.Version)
	return nil
}

func (c *cli) advanceCommand() *cobra.Command {
	var t transition
	cmd := &cobra.Command{
		Use:   "advance MIGRATION",
		Short: "Move a migration one phase forward through its gate",
		Long: `Move a migration one phase forward, if the next phase's gate is met.
A tripped guardrail holds it until --acknowledge (with --reason) clears
it; the contract step needs --confirm.`,
		Args: args(1, 1, "migration"),
		RunE: func(cmd *cobra.Command, args []string) error { return c.move(cmd, args[0], &t, true, false) },
	}
	t.advanceFlags(cmd)
	c.jsonFlag(cmd, "the migration's new status")
	return cmd
}

func (c *cli) rollbackCommand() *cobra.Command {
	var t transition
	cmd := &cobra.Command{
		Use:   "rollback MIGRATION",
		Short: "Move a migration one phase back (or to off with --to-off)",
		Args:  args(1, 1, "migration"),
		RunE:  func(cmd *cobra.Command, args []string) error { return c.move(cmd, args[0], &t, false, false) },
	}
	t.flags(cmd)
	cmd.Flags().BoolVar(&t.toOff, "to-off", false, "roll back straight to off (expanded)")
	c.jsonFlag(cmd, "the migration's new status")
	return cmd
}

func (c *cli) forceCommand() *cobra.Command {
	var t transition
	cmd := &cobra.Command{
		Use:   "force MIGRATION",
		Short: "Advance (or --rollback) without the gate; needs --reason; recorded as forced",
		Args:  args(1, 1, "migration"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(t.reason) == "" {
				return usagef("force: --reason is required")
			}
			if t.toOff && !t.rollback {
				return usagef("force: --to-off goes with --rollback")
			}
			return c.move(cmd, args[0], &t, !t.rollback, true)
		},
	}
	t.advanceFlags(cmd)
	cmd.Flags().BoolVar(&t.toOff, "to-off", false, "with --rollback: roll back straight to off (expanded)")
	cmd.Flags().BoolVar(&t.rollback, "rollback", false, "force a rollback instead of an advance")
	c.jsonFlag(cmd, "the migration's new status")
	return cmd
}

func (c *cli) backfillCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Run a migration's backfills, or control or read a job",
		Args:  cobra.ArbitraryArgs,
		// Runnable only to refuse an unknown action as bad input.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{msg: "backfill: want an action (run, estimate, pause, resume, cancel, status) and a name", usage: true}
			}
			return usageError{msg: unknown("action", cmd, args[0])}
		},
	}
	var workers int
	var rate float64
	var windows []string
	runCmd := &cobra.Command{
		Use:   "run MIGRATION",
		Short: "Run every backfill of a migration, with a progress bar on stderr",
		Args:  args(1, 1, "migration"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.backfillRun(cmd, args[0], workers, rate, windows)
		},
	}
	runCmd.Flags().IntVar(&workers, "workers", 1, "workers")
	runCmd.Flags().Float64Var(&rate, "rate", 0, "rows per second (0: unlimited)")
	runCmd.Flags().StringArrayVar(&windows, "window", nil, `run only inside this window, e.g. "01:00-05:00 UTC" or "Mon-Fri 22:00-02:00 Europe/Paris" (repeatable: any of them)`)
	c.jsonFlag(runCmd, "the jobs' progress when they finish")
	cmd.AddCommand(runCmd, c.backfillEstimateCommand())
	for _, a := range []struct {
		name, short string
		do          func(c *cli, cmd *cobra.Command, job string) error
	}{
		{"pause", "Pause a job: its workers stop before their next chunk", control(backfill.Pause)},
		{"resume", "Resume a paused job", control(backfill.Resume)},
		{"cancel", "Cancel a job", control(backfill.Cancel)},
		{"status", "Show a job's progress (only reads)", (*cli).backfillStatus},
	} {
		sub := &cobra.Command{
			Use:   a.name + " JOB",
			Short: a.short,
			Args:  args(1, 1, "job"),
			RunE:  func(cmd *cobra.Command, args []string) error { return a.do(c, cmd, args[0]) },
		}
		c.jsonFlag(sub, "the job's progress")
		cmd.AddCommand(sub)
	}
	return cmd
}

func control(f func(ctx context.Context, db backfill.DB, name string) error) func(c *cli, cmd *cobra.Command, job string) error {
	return func(c *cli, cmd *cobra.Command, job string) error {
		db, err := c.open(cmd.Context())
		if err != nil {
			return err
		}
		if err := f(cmd.Context(), db, job); err != nil {
			return classify(err)
		}
		if c.json {
			return c.backfillStatus(cmd, job)
		}
		return nil
	}
}

func (c *cli) backfillStatus(cmd *cobra.Command, job string) error {
	db, err := c.open(cmd.Context())
	if err != nil {
		return err
	}
	p, err := backfill.State(cmd.Context(), db, job)
	if err != nil {
		return classify(err)
	}
	if c.json {
		return c.printJSON(p)
	}
	fmt.Fprintf(c.stdout, "%s: %s, %d/%d rows (%d changed), %.0f rows/s, ETA %s, chunk %d, throttle %q, verify %q\n",
		p.Job, backfillStatus(p), p.RowsDone, p.TotalEstimate, p.RowsChanged, p.Rate, eta(p), p.ChunkSize, p.Throttle, p.Verify)
	return nil
}

func (c *cli) backfillRun(cmd *cobra.Command, migration string, workers int, rate float64, windows []string) error {
	ctx := cmd.Context()
	ws, err := parseWindows(windows)
	if err != nil {
		return err
	}
	co, err := c.coordinator(ctx, false)
	if err != nil {
		return err
	}
	plan, err := co.Plan(migration)
	if err != nil {
		return classify(err)
	}
	bar := newProgress(c.stderr, c.terminal, c.now)
	opts := []backfill.Option{backfill.WithWorkers(workers), backfill.WithProgress(c.progressEvery, bar.report)}
	if rate > 0 {
		opts = append(opts, backfill.WithRate(rate))
	}
	if len(ws) > 0 {
		opts = append(opts, backfill.WithRunWindows(ws...))
	}
	err = co.RunBackfills(ctx, migration, opts...)
	bar.finish()
	if err != nil {
		if errors.Is(err, backfill.ErrCancelled) {
			return refusedError{err}
		}
		return classify(err)
	}
	if c.json {
		ps := []backfill.Progress{}
		for _, j := range plan.Backfills {
			p, err := backfill.State(ctx, c.db, j.Name)
			if err != nil {
				return err
			}
			ps = append(ps, p)
		}
		return c.printJSON(ps)
	}
	fmt.Fprintf(c.stdout, "%s: backfills done\n", migration)
	return nil
}

// parseWindows reads the --window flags; one that does not parse is bad
// input.
func parseWindows(ss []string) ([]backfill.Window, error) {
	var ws []backfill.Window
	for _, s := range ss {
		w, err := backfill.ParseWindow(s)
		if err != nil {
			return nil, usageError{msg: err.Error()}
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// backfillStatus is a job's status, with who it last had and since when
// when it is stalled, and where it stands among its run windows while it
// has work to do.
func backfillStatus(p backfill.Progress) string {
	s := string(p.Status)
	if p.Status == backfill.Stalled && p.Stall != nil {
		s = fmt.Sprintf("%s (no live worker since %s; last: %s)", p.Status, p.Stall.Since.UTC().Format(time.RFC3339), p.Stall.Worker)
	}
	if p.Window != "" && (p.Status == backfill.Running || p.Status == backfill.Paused || p.Status == backfill.Stalled) {
		s += " (" + p.Window + ")" // where it stands among its run windows
	}
	return s
}

// eta is the job's ETA, or "-" where there is none (a job not running).
func eta(p backfill.Progress) string {
	if p.ETA <= 0 && p.Status != backfill.Done {
		return "-"
	}
	return p.ETA.Round(time.Second).String()
}

func (c *cli) verifyCommand() *cobra.Command {
	var repair bool
	var from string
	cmd := &cobra.Command{
		Use:   "verify MIGRATION",
		Short: "Compare old and new shapes of every backfill of a migration",
		Long: `Compare the old and new shapes of every backfill of a migration, chunk by
chunk, and record the result (the gate to shadow counts it). With
--repair, fill unfilled rows and rewrite drifted ones.`,
		Args: args(1, 1, "migration"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := backfill.VerifyOptions{Repair: repair}
			switch from {
			case "old":
			case "new":
				o.RepairFrom = backfill.FromNew
			default:
				return usageError{msg: fmt.Sprintf("--repair-from %q: old or new", from)}
			}
			co, err := c.coordinator(cmd.Context(), false)
			if err != nil {
				return err
			}
			reps, err := co.VerifyBackfills(cmd.Context(), args[0], o)
			if err != nil {
				return classify(err)
			}
			if c.json {
				if err := c.printJSON(reps); err != nil {
					return err
				}
			}
			failed := false
			for _, r := range reps {
				if !c.json {
					printReport(c.stdout, r)
				}
				failed = failed || !r.Passed()
			}
			if failed {
				return refusedError{errors.New("verification found divergent rows")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "fill unfilled rows and rewrite drifted ones (never a row written through the new path)")
	cmd.Flags().StringVar(&from, "repair-from", "old", "the side a drifted row is rewritten from, the one written last: old, or new (needs the job's Down)")
	c.jsonFlag(cmd, "the reports")
	return cmd
}

func printReport(w io.Writer, r backfill.Report) {
	fmt.Fprintf(w, "%s: %s (%v)\n", r.Job, r.Summary(), r.Duration.Round(time.Millisecond))
	for _, d := range r.Diverged[:min(10, len(r.Diverged))] {
		fmt.Fprintf(w, "  key %s (%s): %v\n", strings.Join(d.Key, ","), d.Kind, d.Fields)
	}
	if shown := min(10, len(r.Diverged)); int64(shown) < r.Divergent {
		fmt.Fprintf(w, "  … %d more divergent rows not shown\n", r.Divergent-int64(shown))
	}
	if r.Unverified > 0 {
		fmt.Fprintf(w, "  %d rows differ where the job declares neither Down nor Derived: a write through the new path cannot be told from drift, so they are never repaired\n", r.Unverified)
	}
	if r.Repaired > 0 && r.Passed() {
		fmt.Fprintf(w, "  repaired; verify again: the gate to shadow counts only a verification that started after the last repair\n")
	}
}

// lintFinding is a finding as lint --json prints it.
type lintFinding struct {
	File      string `json:"file"`
	Line      int    `json:"line"`
	Column    int    `json:"column"`
	Rule      string `json:"rule"`
	Message   string `json:"message"`
	Statement string `json:"statement"`
	Fix       string `json:"fix"`
}

func (c *cli) lintCommand() *cobra.Command {
	var contract bool
	cmd := &cobra.Command{
		Use:   "lint FILE",
		Short: "Check a DDL script for statements unsafe under a running fleet",
		Long: `Check a DDL script for statements unsafe under a running fleet (exit 3 on
findings). Needs no database.`,
		Args: args(1, 1, "file"),
		RunE: func(_ *cobra.Command, args []string) error {
			file := args[0]
			src, err := os.ReadFile(file)
			if err != nil {
				return usagef("lint: %v", err)
			}
			step := ddl.ExpandStep
			if contract {
				step = ddl.ContractStep
			}
			found, err := ddl.Lint(string(src), step)
			if err != nil {
				return usagef("lint %s: %v", file, err)
			}
			if c.json {
				out := []lintFinding{}
				for _, f := range found {
					out = append(out, lintFinding{file, f.Line, f.Column, string(f.Rule), f.Message, f.Statement, f.Fix})
				}
				if err := c.printJSON(out); err != nil {
					return err
				}
			} else {
				for _, f := range found {
					fmt.Fprintf(c.stdout, "%s:%s\n", file, f)
				}
			}
			if len(found) > 0 {
				return refusedError{fmt.Errorf("%d finding(s) in %s", len(found), file)}
			}
			if !c.json {
				fmt.Fprintf(c.stdout, "%s: no findings\n", file)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&contract, "contract", false, "the script is a contract step (drops allowed)")
	c.jsonFlag(cmd, "the findings")
	return cmd
}

func (c *cli) runbookCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "runbook MIGRATION",
		Short: "Print the migration's runbook (Markdown), generated from its plan",
		Long:  "Print the migration's runbook (Markdown), generated from its plan. Only reads.",
		Args:  args(1, 1, "migration"),
		RunE: func(cmd *cobra.Command, args []string) error {
			co, err := c.coordinator(cmd.Context(), true)
			if err != nil {
				return err
			}
			md, err := report.RunbookFor(cmd.Context(), co, args[0])
			if err != nil {
				return classify(err)
			}
			_, err = io.WriteString(c.stdout, md)
			return err
		},
	}
}

func (c *cli) retroCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retro MIGRATION",
		Short: "Print the migration's retrospective: timeline, time per phase, backfills, shadow results",
		Long:  "Print the migration's retrospective (Markdown): timeline, time per phase, backfills, shadow results. Only reads.",
		Args:  args(1, 1, "migration"),
		RunE: func(cmd *cobra.Command, args []string) error {
			co, err := c.coordinator(cmd.Context(), true)
			if err != nil {
				return err
			}
			r, err := report.Retrospect(cmd.Context(), co, args[0])
			if err != nil {
				return classify(err)
			}
			if c.json {
				return c.printJSON(r)
			}
			_, err = io.WriteString(c.stdout, r.Markdown())
			return err
		},
	}
	c.jsonFlag(cmd, "the retrospective")
	return cmd
}

func (c *cli) auditCommand() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "audit [MIGRATION]",
		Short: "Show the audit trail",
		Long:  "Show the audit trail of every migration or one, oldest event first: the newest --limit events. Only reads.",
		Args:  args(0, 1, "migration"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			m := ""
			if len(args) > 0 {
				m = args[0]
			}
			db, err := c.open(ctx)
			if err != nil {
				return err
			}
			if err := ledger.Check(ctx, db); err != nil {
				return classify(err)
			}
			if m != "" {
				if _, err := ledger.Get(ctx, db, m); err != nil {
					return classify(err)
				}
			}
			ev, err := ledger.Audit(ctx, db, m, limit)
			if err != nil {
				return err
			}
			if c.json {
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
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "newest events to show")
	c.jsonFlag(cmd, "the events")
	return cmd
}
