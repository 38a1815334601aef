package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// Retrospective is the story of one migration: every transition with who
// and why, the time spent in each phase, the backfills' statistics, the
// verification and shadow results. It is most useful once the migration is
// contracted or rolled back, but can be read at any time. It is a value.
type Retrospective struct {
	Migration string              `json:"migration"`
	Phase     ledger.Phase        `json:"phase"`
	Finished  bool                `json:"finished"` // contracted, or rolled back to off or planned
	Timeline  []ledger.Event      `json:"timeline"`
	Phases    []PhaseTime         `json:"phases"`
	Refused   int                 `json:"refused"`
	Forced    int                 `json:"forced"`
	Trips     int                 `json:"guardrail_trips"`
	Backfills []backfill.Progress `json:"backfills"`
	// Predicted are the last estimates made of the backfills before they
	// ran ([rollout.Coordinator.EstimateBackfills]), each with what the
	// run did.
	Predicted   []Prediction      `json:"predicted,omitempty"`
	Consistency fleet.Consistency `json:"consistency"` // every shadow comparison reported
}

// Prediction is a backfill's last estimate before it started, set against
// its run: the run's time (start to finish, nil while it runs) and the
// rows it changed. It is a value.
type Prediction struct {
	Estimate backfill.Estimate `json:"estimate"`
	// At is when the estimate was made.
	At          time.Time      `json:"at"`
	Took        *time.Duration `json:"took_ns,omitempty"`
	RowsChanged int64          `json:"rows_changed"`
}

// PhaseTime is one stay in a phase. It is a value.
type PhaseTime struct {
	Phase    ledger.Phase  `json:"phase"`
	Entered  time.Time     `json:"entered"`
	Duration time.Duration `json:"duration"`
	Current  bool          `json:"current,omitempty"`
	// Actor, Kind and Reason are those of the event that entered the
	// phase (register, advance, rollback, force-…, guardrail).
	Actor  string `json:"actor"`
	Kind   string `json:"kind"`
	Reason string `json:"reason,omitempty"`
}

// Retrospect reads the retrospective of one of c's migrations, at c's
// clock.
func Retrospect(ctx context.Context, c *rollout.Coordinator, migration string) (Retrospective, error) {
	plan, err := c.Plan(migration)
	if err != nil {
		return Retrospective{}, err
	}
	db := c.DB()
	st, err := ledger.Get(ctx, db, migration)
	if err != nil {
		return Retrospective{}, err
	}
	r := Retrospective{Migration: migration, Phase: st.Phase, Backfills: []backfill.Progress{}}
	if r.Timeline, err = ledger.Audit(ctx, db, migration, 100000); err != nil {
		return r, err
	}
	now := c.Now() // the current phase's duration, and the backfills' state
	moved := false
	for _, e := range r.Timeline {
		if e.Actor == "guardrail" && e.Accepted {
			r.Trips++
		}
		if e.Kind == "register" && e.Accepted {
			r.Phases = append(r.Phases, PhaseTime{Phase: ledger.Planned, Entered: e.At, Actor: e.Actor, Kind: e.Kind, Reason: e.Reason})
			continue
		}
		if !isTransition(e.Kind) {
			// A note on the way (a guardrail's reading, a plan change, a
			// check's run, an approval, an aggregate comparison): it
			// names a phase without entering it.
			continue
		}
		if !e.Accepted {
			r.Refused++
			continue
		}
		if strings.HasPrefix(e.Kind, "force-") {
			r.Forced++
		}
		p, err := ledger.ParsePhase(e.ToPhase)
		if err != nil {
			continue
		}
		moved = true
		if n := len(r.Phases); n > 0 {
			r.Phases[n-1].Duration = e.At.Sub(r.Phases[n-1].Entered)
		}
		r.Phases = append(r.Phases, PhaseTime{Phase: p, Entered: e.At, Actor: e.Actor, Kind: e.Kind, Reason: e.Reason})
	}
	if n := len(r.Phases); n > 0 {
		last := &r.Phases[n-1]
		last.Current = true
		if st.Phase != ledger.Contracted {
			last.Duration = now.Sub(last.Entered)
		}
	}
	r.Finished = st.Phase == ledger.Contracted || (moved && st.Phase <= ledger.Expanded)
	for _, j := range plan.Backfills {
		p, err := backfill.StateAt(ctx, db, j.Name, now)
		if errors.Is(err, backfill.ErrUnknownJob) {
			continue
		}
		if err != nil {
			return r, err
		}
		r.Backfills = append(r.Backfills, p)
		if pr, ok := predicted(r.Timeline, p); ok {
			r.Predicted = append(r.Predicted, pr)
		}
	}
	t, err := fleet.Sum(ctx, db, migration)
	if err != nil {
		return r, err
	}
	r.Consistency = t.Since(fleet.Totals{})
	return r, nil
}

// Markdown renders the retrospective for a postmortem or a changelog.
func (r Retrospective) Markdown() string {
	var b strings.Builder
	state := "in progress"
	if r.Finished {
		state = "finished"
	}
	fmt.Fprintf(&b, "# Retrospective: %s\n\nNow at **%s** (%s). %d transitions refused, %d forced, %d guardrail trips.\n\n",
		line(r.Migration), r.Phase, state, r.Refused, r.Forced, r.Trips)
	fmt.Fprintf(&b, "## Time per phase\n\n| phase | entered | time | by |\n|---|---|---|---|\n")
	for _, p := range r.Phases {
		cur := ""
		if p.Current {
			cur = " (now)"
		}
		fmt.Fprintf(&b, "| %s%s | %s | %s | %s |\n", p.Phase, cur, p.Entered.UTC().Format(time.RFC3339), HumanDuration(p.Duration), cell(p.Actor))
	}
	fmt.Fprintf(&b, "\n## Backfills\n\n")
	if len(r.Backfills) == 0 {
		fmt.Fprintf(&b, "None ran.\n")
	}
	for _, p := range r.Backfills {
		took := "still running"
		if p.FinishedAt != nil {
			took = p.FinishedAt.Sub(p.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "- `%s` (%s): %d rows walked, %d changed, %d chunks (%d redone), %.0f rows/s, %s; %d runs (%d resumes), %d retries, %v throttled; verification: %s",
			strings.ReplaceAll(line(p.Job), "`", "'"), p.Status, p.RowsDone, p.RowsChanged, p.ChunksDone, p.ChunksRedone, p.Rate, took, p.Runs, max(0, p.Runs-1), p.Retries, p.Throttled, orNone(p.Verify))
		if p.Divergent > 0 {
			fmt.Fprintf(&b, " (%d divergent)", p.Divergent)
		}
		fmt.Fprintln(&b)
	}
	if len(r.Predicted) > 0 {
		fmt.Fprintf(&b, "\n## Predicted and actual\n\n| job | predicted | took | rows changed (predicted) | dead tuples | WAL |\n|---|---|---|---|---|---|\n")
		for _, pr := range r.Predicted {
			took := "still running"
			if pr.Took != nil {
				took = HumanDuration(*pr.Took)
			}
			wal := "not read"
			if pr.Estimate.WALBytes >= 0 {
				wal = fmt.Sprintf("%.1f MB", float64(pr.Estimate.WALBytes)/1e6)
			}
			fmt.Fprintf(&b, "| %s | %s at %s | %s | %d (%d) | %d | %s |\n", cell(pr.Estimate.Job), HumanDuration(pr.Estimate.Duration), cell(pr.Estimate.Pace),
				took, pr.RowsChanged, pr.Estimate.Changed, pr.Estimate.DeadTuples, wal)
		}
	}
	fmt.Fprintf(&b, "\n## Shadow comparisons\n\n%d matched, %d mismatched", r.Consistency.Matched, r.Consistency.Mismatched)
	if r.Consistency.Matched+r.Consistency.Mismatched > 0 {
		fmt.Fprintf(&b, " (consistency %.4f)", r.Consistency.Ratio)
	}
	fmt.Fprintf(&b, ".\n\n## Timeline\n\n| time | what | from → to | actor | reason |\n|---|---|---|---|---|\n")
	for _, e := range r.Timeline {
		what := e.Kind
		if !e.Accepted {
			what += " (refused)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s → %s | %s | %s |\n", e.At.UTC().Format("2006-01-02 15:04:05"), cell(what), cell(e.FromPhase), cell(e.ToPhase),
			cell(e.Actor), cell(e.Reason))
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "not run"
	}
	return s
}

// line makes s one line of Markdown: a line break in it would end the
// paragraph, the list item or the table row it is written in, so each
// becomes a visible " ↵ ".
func line(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.NewReplacer("\n", " ↵ ", "\r", " ↵ ", "\u2028", " ↵ ", "\u2029", " ↵ ").Replace(s)
}

// cell makes s the text of one Markdown table cell: on one line, with
// its pipes (which would end the cell) and the backslashes before them
// escaped.
func cell(s string) string {
	return strings.NewReplacer("\\", "\\\\", "|", "\\|").Replace(line(s))
}

// isTransition reports whether an audit event of kind records a
// transition, made or refused: an advance or a rollback, forced or not.
// Every other kind is a note that may name phases without moving.
func isTransition(kind string) bool {
	switch strings.TrimPrefix(kind, "force-") {
	case "advance", "rollback":
		return true
	}
	return false
}

// predicted finds the last estimate of p's job in timeline made before
// the job walked a row (one made after predicts only what was left), and
// sets the run against it.
func predicted(timeline []ledger.Event, p backfill.Progress) (Prediction, bool) {
	var pr Prediction
	found := false
	for _, e := range timeline {
		if e.Kind != rollout.EstimateEvent || !e.Accepted {
			continue
		}
		var est backfill.Estimate
		if json.Unmarshal([]byte(e.Reason), &est) != nil || est.Job != p.Job {
			continue // another job's, or not one this build reads
		}
		if est.Walked > 0 {
			continue
		}
		if !found || e.At.After(pr.At) {
			pr, found = Prediction{Estimate: est, At: e.At}, true
		}
	}
	if !found {
		return pr, false
	}
	pr.RowsChanged = p.RowsChanged
	if p.FinishedAt != nil {
		took := p.FinishedAt.Sub(p.StartedAt)
		pr.Took = &took
	}
	return pr, true
}
