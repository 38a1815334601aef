package report

import (
	"context"
	"fmt"
	"strings"

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

// Runbook renders the plan as a Markdown runbook for operators: every step
// in order, its gate and how to check it, the exact commands to advance,
// roll back and pause, and what to do when a gate refuses. It is generated
// from the plan, so it cannot drift from it. Its DDL is in the PostgreSQL
// form; [RunbookFor] renders it for a coordinator's database.
func Runbook(p rollout.Plan) (string, error) {
	return runbook(p, renderer{text: dialects.Reference().Runbook(), up: func(o ddl.Op) ([]ddl.Statement, error) { return o.Up(17) }})
}

// RunbookFor renders the runbook of one of c's migrations (see [Runbook])
// with its DDL as the expand and contract would run it on c's database:
// for its PostgreSQL server version, or on SQLite in the plain form, each
// statement that gives up a safety with a comment saying which.
func RunbookFor(ctx context.Context, c *rollout.Coordinator, migration string) (string, error) {
	p, err := c.Plan(migration)
	if err != nil {
		return "", err
	}
	e, err := ddl.NewExecutor(c.DB())
	if err != nil {
		return "", err
	}
	up, err := e.Renderer(ctx)
	if err != nil {
		return "", fmt.Errorf("runbook %s: %w", migration, err)
	}
	d, err := dialects.ForPool(c.DB())
	if err != nil {
		return "", fmt.Errorf("runbook %s: %w", migration, err)
	}
	return runbook(p, renderer{text: d.Runbook(), up: up})
}

// renderer renders a plan's DDL operations for one database, and says
// what depends on it.
type renderer struct {
	text dialect.Runbook
	up   func(ddl.Op) ([]ddl.Statement, error)
}

func runbook(p rollout.Plan, r renderer) (string, error) {
	if err := p.Normalize(); err != nil {
		return "", err
	}
	hash, err := p.DefinitionHash()
	if err != nil {
		return "", err
	}
	m := p.Migration
	var b strings.Builder
	fmt.Fprintf(&b, "# Runbook: %s\n\n", m)
	fmt.Fprintf(&b, "Generated from the plan (definition %s). Fleet window: %v; shadow consistency ≥ %.4g over ≥ %d comparisons.\n\n",
		hash, p.Window, p.ShadowConsistency, p.MinComparisons)
	fmt.Fprintf(&b, "Check where it stands at any time: `schemashift status %s`. Every transition, refused or not, is in `schemashift audit %s`.\n\n", m, m)
	for to := ledger.Expanded; to <= ledger.Contracted; to++ {
		from := to - 1
		fmt.Fprintf(&b, "## %d. %s → %s (stage %s)\n\n", int(to), from, to, to.Stage())
		if ops, steps, ok := p.AdvanceDDL(to); ok {
			r.writeDDL(&b, ops, steps, to == ledger.Contracted)
		}
		switch to {
		case ledger.Backfill:
			for _, j := range p.Backfills {
				fmt.Fprintf(&b, "Then run the backfill `%s` over `%s`: `schemashift backfill run %s` (any number of processes may share it).\n", j.Name, j.Table, m)
				fmt.Fprintf(&b, "Pause, resume, cancel: `schemashift backfill pause %s`, `… resume %s`, `… cancel %s`; progress: `schemashift backfill status %s`.\n\n", j.Name, j.Name, j.Name, j.Name)
			}
		case ledger.Verify:
			fmt.Fprintf(&b, "Then verify: `schemashift verify %s` (repair divergent rows with `--repair`).\n\n", m)
		}
		check := gateCheck[to]
		if to == ledger.Live || to == ledger.Rampdown {
			check = fmt.Sprintf(check, p.ShadowConsistency, p.MinComparisons)
		}
		fmt.Fprintf(&b, "- **Gate:** %s. Check: `schemashift status %s` shows it as met.\n", check, m)
		confirm := ""
		if to == ledger.Contracted {
			confirm = " --confirm"
		}
		fmt.Fprintf(&b, "- **Advance:** `schemashift advance %s%s`\n", m, confirm)
		if to == ledger.Contracted {
			fmt.Fprintf(&b, "- **Irreversible.** Once the contract begins nothing rolls back. Cut off before it is recorded "+
				"(an operation failed, the process died), it stays begun: fix the cause, then `schemashift advance %s` completes it, with no gate.\n", m)
		} else {
			fmt.Fprintf(&b, "- **Roll back:** `schemashift rollback %s` (one step), `schemashift rollback %s --to-off` (stage off)", m, m)
			if to == ledger.Expanded {
				fmt.Fprintf(&b, "; from expanded, `rollback` undoes the expand")
			}
			fmt.Fprintln(&b)
		}
		advice := gateAdvice[to]
		if to == ledger.Expanded {
			advice = expandAdvice(r.text)
		}
		fmt.Fprintf(&b, "- **If refused:** %s\n\n", advice)
	}
	return b.String(), nil
}

// writeDDL writes the DDL of the expand or the contract. An operation that
// cannot run (invalid, or unsupported by the database) is written as a
// comment with the reason.
func (r renderer) writeDDL(b *strings.Builder, ops []ddl.Op, steps []rollout.Step, contract bool) {
	what := "Runs the expand"
	if contract {
		what = "Runs the contract"
	}
	if len(ops) == 0 && len(steps) == 0 {
		fmt.Fprintf(b, "%s: no DDL.\n\n", what)
		return
	}
	fmt.Fprintf(b, "%s%s:\n\n```sql\n", what, r.text.DDL)
	for _, o := range ops {
		st, err := r.up(o)
		if err != nil {
			fmt.Fprintf(b, "-- %s: %v\n", o, err)
			continue
		}
		for _, s := range st {
			if s.Note != "" {
				fmt.Fprintf(b, "-- %s\n", s.Note)
			}
			fmt.Fprintf(b, "%s;\n", s.SQL)
		}
	}
	for _, s := range steps {
		fmt.Fprintf(b, "%s;\n", strings.TrimSpace(s.SQL))
	}
	fmt.Fprintf(b, "```\n\n")
}
