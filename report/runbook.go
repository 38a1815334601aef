package report

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// gateAdvice says what to do when a gate refuses; the expand's, which
// depends on the database, is [expandAdvice].
var gateAdvice = map[ledger.Phase]string{
	ledger.DualWrite:  "The expand's columns are missing: the expand did not run or was undone by hand. Roll back to planned and advance again.",
	ledger.Backfill:   "An instance still evaluates an older stage, has not been seen for a whole window, made no call, or runs an old build unaware of the migration: check the fleet in `status`, finish the deploy, or wait one window.",
	ledger.Verify:     "The backfill is not done: check `backfill status`; resume it if paused or cancelled; a failed job shows its error.",
	ledger.Shadow:     "Verification has not passed: run `verify`; if rows diverge, find the writer that bypasses the adapters, stop it, then `verify --repair`.",
	ledger.Live:       "Too few shadow comparisons, or too many mismatches: send traffic, read the mismatches in the logs or metrics (sensitive fields are redacted), fix the new code path, and let the count start again by rolling back to shadow.",
	ledger.Rampdown:   "Same as the gate to live, counted since live began.",
	ledger.Complete:   "An instance still evaluates live or earlier: check the fleet and wait one window.",
	ledger.Contracted: "An instance still evaluates rampdown or earlier, or called the old path, within the window; or confirmation is missing. Nothing may still read or write the old shape when it is dropped.",
}

// expandAdvice says what to do when the gate to expanded refuses: the
// expand failed, in the way of t's database.
func expandAdvice(t dialect.Runbook) string {
	advice := "The expand failed: read the error in the audit trail. " + t.LockWait
	if t.Unsupported != "" {
		advice += " " + t.Unsupported
	}
	return advice
}

var gateCheck = map[ledger.Phase]string{
	ledger.Expanded:   "none",
	ledger.DualWrite:  "the expand's columns exist",
	ledger.Backfill:   "every live instance evaluated only dualwrite or later for the whole window",
	ledger.Verify:     "every backfill job is done",
	ledger.Shadow:     "every backfill job's verification passed",
	ledger.Live:       "shadow consistency ≥ %.4g over ≥ %d comparisons since shadow began",
	ledger.Rampdown:   "shadow consistency ≥ %.4g over ≥ %d comparisons since live began",
	ledger.Complete:   "every live instance evaluated only rampdown or later for the whole window",
	ledger.Contracted: "every live instance evaluated only complete and made no old-path call for the whole window; confirmation",
}

// Procedure is a runbook as data: the plan's transitions in order, each
// with the DDL it runs, its gate, the commands to advance and roll back,
// and what to do when the gate refuses. [Procedure.Markdown] writes it as
// the Markdown runbook; the board renders it as a page. It is a value.
type Procedure struct {
	Migration         string        `json:"migration"`
	Definition        string        `json:"definition"` // the plan's definition hash
	Window            time.Duration `json:"window"`
	ShadowConsistency float64       `json:"shadow_consistency"`
	MinComparisons    int64         `json:"min_comparisons"`
	Steps             []Transition  `json:"steps"`
	Governance        Governance    `json:"governance"`
	// Aggregates are the plan's aggregates ([rollout.Aggregate]).
	Aggregates []AggregateCheck `json:"aggregates,omitempty"`
	// Sunset is the plan's sunset ([rollout.Sunset]), nil for none.
	Sunset *SunsetNotice `json:"sunset,omitempty"`
	// RunWindows are when the plan's backfills may run, as the CLI's
	// --window takes them ([rollout.Plan].RunWindows); none: any time.
	RunWindows []string `json:"run_windows,omitempty"`
	// Schedules are the scheduled advances that may still run (read by
	// [ProcedureFor]; none from a plan alone).
	Schedules []rollout.Schedule `json:"schedules,omitempty"`
}

// Transition is one step of a [Procedure]: From → To. It is a value.
type Transition struct {
	From  ledger.Phase `json:"from"`
	To    ledger.Phase `json:"to"`
	Stage string       `json:"stage"` // the stage instances evaluate in To
	// DDL is what the transition runs (the expand's or the contract's),
	// nil when it runs none by design.
	DDL       *DDL      `json:"ddl,omitempty"`
	Backfills []JobStep `json:"backfills,omitempty"`
	Verify    bool      `json:"verify,omitempty"` // then run the verification
	Gate      string    `json:"gate"`
	Advance   string    `json:"advance"`  // the command
	Rollback  []string  `json:"rollback"` // the commands; none once irreversible
	// UndoesExpand: from expanded, rollback undoes the expand.
	UndoesExpand bool   `json:"undoes_expand,omitempty"`
	Irreversible bool   `json:"irreversible,omitempty"`
	IfRefused    string `json:"if_refused"`
}

// DDL is the DDL a transition runs, as its database will run it. It is a
// value.
type DDL struct {
	What       string      `json:"what"` // "Runs the expand" and how, on this database
	Statements []Statement `json:"statements"`
}

// Statement is one statement of a [DDL]: its SQL and the note on the
// safety it gives up, or why it cannot run (Error, with no SQL). It is a
// value.
type Statement struct {
	SQL   string `json:"sql,omitempty"`
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
}

// JobStep is a backfill a transition runs, and the commands that steer
// it. It is a value.
type JobStep struct {
	Job    string `json:"job"`
	Table  string `json:"table"`
	Run    string `json:"run"`
	Pause  string `json:"pause"`
	Resume string `json:"resume"`
	Cancel string `json:"cancel"`
	Status string `json:"status"`
	// Estimate is the command that predicts the run first, from a
	// sample of chunks rolled back: its duration at the pace given, the
	// rows it changes, their dead tuples and WAL.
	Estimate string `json:"estimate"`
}

// Runbook renders the plan as a Markdown runbook for operators: every step
// in order, its gate and how to check it, the exact commands to advance,
// roll back and pause, and what to do when a gate refuses. It is generated
// from the plan, so it cannot drift from it. Its DDL is in the PostgreSQL
// form; [RunbookFor] renders it for a coordinator's database.
func Runbook(p rollout.Plan) (string, error) {
	pr, err := ProcedureOf(p)
	if err != nil {
		return "", err
	}
	return pr.Markdown(), nil
}

// ProcedureOf is [Runbook] as data, its DDL in the PostgreSQL form.
func ProcedureOf(p rollout.Plan) (Procedure, error) {
	return procedure(p, renderer{text: dialects.Reference().Runbook(), up: func(o ddl.Op) ([]ddl.Statement, error) { return o.Up(17) }})
}

// RunbookFor renders the runbook of one of c's migrations (see [Runbook])
// with its DDL as the expand and contract would run it on c's database:
// for its PostgreSQL server version, or on SQLite in the plain form, each
// statement that gives up a safety with a comment saying which.
func RunbookFor(ctx context.Context, c *rollout.Coordinator, migration string) (string, error) {
	pr, err := ProcedureFor(ctx, c, migration)
	if err != nil {
		return "", err
	}
	return pr.Markdown(), nil
}

// ProcedureFor is [RunbookFor] as data.
func ProcedureFor(ctx context.Context, c *rollout.Coordinator, migration string) (Procedure, error) {
	p, err := c.Plan(migration)
	if err != nil {
		return Procedure{}, err
	}
	e, err := ddl.NewExecutor(c.DB())
	if err != nil {
		return Procedure{}, err
	}
	up, err := e.Renderer(ctx)
	if err != nil {
		return Procedure{}, fmt.Errorf("runbook %s: %w", migration, err)
	}
	d, err := dialects.ForPool(c.DB())
	if err != nil {
		return Procedure{}, fmt.Errorf("runbook %s: %w", migration, err)
	}
	pr, err := procedure(p, renderer{text: d.Runbook(), up: up})
	if err != nil {
		return Procedure{}, err
	}
	pr.Schedules, err = pendingSchedules(ctx, c, migration)
	return pr, err
}

// Gate says in words what the gate to phase to checks, with p's
// thresholds, the migrations p must wait for there ([rollout.Requirement])
// and the milestone checks it runs ([rollout.Check]).
func Gate(p rollout.Plan, to ledger.Phase) string {
	check := gateCheck[to]
	if to == ledger.Live || to == ledger.Rampdown {
		check = fmt.Sprintf(check, p.ShadowConsistency, p.MinComparisons)
	}
	for _, r := range p.Requires {
		if r.Before == to {
			check += fmt.Sprintf("; and migration %q at %s or later", r.Migration, r.Reached)
		}
	}
	return check + policyGate(p, to) + checksGate(p, to) + aggregateGate(p, to)
}

// renderer renders a plan's DDL operations for one database, and says
// what depends on it.
type renderer struct {
	text dialect.Runbook
	up   func(ddl.Op) ([]ddl.Statement, error)
}

func procedure(p rollout.Plan, r renderer) (Procedure, error) {
	if err := p.Normalize(); err != nil {
		return Procedure{}, err
	}
	hash, err := p.DefinitionHash()
	if err != nil {
		return Procedure{}, err
	}
	m := p.Migration
	pr := Procedure{Migration: m, Definition: hash, Window: p.Window, ShadowConsistency: p.ShadowConsistency, MinComparisons: p.MinComparisons, Governance: governance(p),
		Aggregates: aggregateChecks(p), Sunset: sunsetNotice(p), RunWindows: runWindows(p)}
	for to := ledger.Expanded; to <= ledger.Contracted; to++ {
		t := Transition{From: to - 1, To: to, Stage: to.Stage().String(), Gate: Gate(p, to),
			Advance: "schemashift advance " + m, IfRefused: gateAdvice[to]}
		if ops, steps, ok := p.AdvanceDDL(to); ok {
			t.DDL = r.ddl(ops, steps, to == ledger.Contracted)
		}
		switch to {
		case ledger.Backfill:
			for _, j := range p.Backfills {
				t.Backfills = append(t.Backfills, JobStep{Job: j.Name, Table: j.Table, Run: "schemashift backfill run " + m,
					Pause: "schemashift backfill pause " + j.Name, Resume: "… resume " + j.Name, Cancel: "… cancel " + j.Name,
					Status: "schemashift backfill status " + j.Name, Estimate: "schemashift backfill estimate " + m})
			}
		case ledger.Verify:
			t.Verify = true
		case ledger.Expanded:
			t.UndoesExpand = true
			t.IfRefused = expandAdvice(r.text)
		}
		if to == ledger.Contracted {
			t.Advance += " --confirm"
			t.Irreversible = true
		} else {
			t.Rollback = []string{"schemashift rollback " + m, "schemashift rollback " + m + " --to-off"}
		}
		pr.Steps = append(pr.Steps, t)
	}
	return pr, nil
}

// Markdown writes the procedure as the Markdown runbook ([Runbook]).
func (pr Procedure) Markdown() string {
	m := line(pr.Migration)
	var b strings.Builder
	fmt.Fprintf(&b, "# Runbook: %s\n\n", m)
	fmt.Fprintf(&b, "Generated from the plan (definition %s). Fleet window: %v; shadow consistency ≥ %.4g over ≥ %d comparisons.\n\n",
		pr.Definition, pr.Window, pr.ShadowConsistency, pr.MinComparisons)
	fmt.Fprintf(&b, "Check where it stands at any time: `schemashift status %s`. Every transition, refused or not, is in `schemashift audit %s`.\n\n", m, m)
	pr.Governance.markdown(&b, pr.Migration)
	for _, t := range pr.Steps {
		fmt.Fprintf(&b, "## %d. %s → %s (stage %s)\n\n", int(t.To), t.From, t.To, t.Stage)
		if t.DDL != nil {
			t.DDL.markdown(&b)
		}
		for _, j := range t.Backfills {
			fmt.Fprintf(&b, "Before it, predict it: `%s` (a sample of chunks rolled back: the duration at the pace you give with --rate, --duty, --window; "+
				"the rows it changes, their dead tuples and WAL; kept for the retrospective).\n", line(j.Estimate))
			fmt.Fprintf(&b, "Then run the backfill `%s` over `%s`: `%s` (any number of processes may share it).\n", line(j.Job), line(j.Table), line(j.Run))
			fmt.Fprintf(&b, "Pause, resume, cancel: `%s`, `%s`, `%s`; progress: `%s`.\n\n", line(j.Pause), line(j.Resume), line(j.Cancel), line(j.Status))
		}
		if t.Verify {
			fmt.Fprintf(&b, "Then verify: `schemashift verify %s` (repair divergent rows with `--repair`).\n\n", m)
		}
		fmt.Fprintf(&b, "- **Gate:** %s. Check: `schemashift status %s` shows it as met.\n", t.Gate, m)
		fmt.Fprintf(&b, "- **Advance:** `%s`\n", line(t.Advance))
		if t.Irreversible {
			fmt.Fprintf(&b, "- **Irreversible.** Once the contract begins nothing rolls back. Cut off before it is recorded "+
				"(an operation failed, the process died), it stays begun: fix the cause, then `schemashift advance %s` completes it, with no gate.\n", m)
		} else {
			fmt.Fprintf(&b, "- **Roll back:** `%s` (one step), `%s` (stage off)", line(t.Rollback[0]), line(t.Rollback[1]))
			if t.UndoesExpand {
				fmt.Fprintf(&b, "; from expanded, `rollback` undoes the expand")
			}
			fmt.Fprintln(&b)
		}
		fmt.Fprintf(&b, "- **If refused:** %s\n\n", t.IfRefused)
	}
	aggregatesMarkdown(&b, pr.Aggregates)
	sunsetMarkdown(&b, pr.Migration, pr.Sunset)
	if len(pr.RunWindows) > 0 {
		fmt.Fprintf(&b, "## Run windows\n\nThe backfills run only inside these windows (any of them); outside, their workers claim nothing "+
			"and wait, and `schemashift backfill status JOB` says until when:\n\n")
		for _, w := range pr.RunWindows {
			fmt.Fprintf(&b, "- `%s`\n", strings.ReplaceAll(line(w), "`", "'"))
		}
		fmt.Fprintln(&b)
	}
	scheduleMarkdown(&b, pr.Migration, pr.Schedules)
	return b.String()
}

// runWindows are p's run windows in words.
func runWindows(p rollout.Plan) []string {
	var out []string
	for _, w := range p.RunWindows {
		out = append(out, w.String())
	}
	return out
}

// ddl is the DDL of the expand or the contract. An operation that cannot
// run (invalid, or unsupported by the database) is a statement with its
// error instead of SQL.
func (r renderer) ddl(ops []ddl.Op, steps []rollout.Step, contract bool) *DDL {
	d := &DDL{What: "Runs the expand", Statements: []Statement{}}
	if contract {
		d.What = "Runs the contract"
	}
	if len(ops) == 0 && len(steps) == 0 {
		return d
	}
	d.What += r.text.DDL
	for _, o := range ops {
		st, err := r.up(o)
		if err != nil {
			d.Statements = append(d.Statements, Statement{Error: fmt.Sprintf("%s: %v", o, err)})
			continue
		}
		for _, s := range st {
			d.Statements = append(d.Statements, Statement{SQL: s.SQL, Note: s.Note})
		}
	}
	for _, s := range steps {
		d.Statements = append(d.Statements, Statement{SQL: strings.TrimSpace(s.SQL)})
	}
	return d
}

func (d *DDL) markdown(b *strings.Builder) {
	if len(d.Statements) == 0 {
		fmt.Fprintf(b, "%s: no DDL.\n\n", d.What)
		return
	}
	fmt.Fprintf(b, "%s:\n\n```sql\n", d.What)
	for _, s := range d.Statements {
		if s.Error != "" {
			fmt.Fprintf(b, "-- %s\n", line(s.Error))
			continue
		}
		if s.Note != "" {
			fmt.Fprintf(b, "-- %s\n", line(s.Note))
		}
		fmt.Fprintf(b, "%s;\n", s.SQL)
	}
	fmt.Fprintf(b, "```\n\n")
}
