package report

import (
	"fmt"
	"strings"

	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// AggregateCheck is one of a plan's aggregates ([rollout.Aggregate]) as
// the runbook lists it: what each side computes, and the difference
// allowed. It is a value.
type AggregateCheck struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Old       string `json:"old"`
	New       string `json:"new"`
	Tolerance string `json:"tolerance"`
}

// aggregateChecks lists p's aggregates for the runbook.
func aggregateChecks(p rollout.Plan) []AggregateCheck {
	var out []AggregateCheck
	for _, a := range p.Aggregates {
		out = append(out, AggregateCheck{Name: a.Name, Kind: string(a.Kind), Old: a.Old.String(), New: a.New.String(), Tolerance: a.Tolerance.String()})
	}
	return out
}

// aggregateGate is what the gate to phase to adds for p's aggregates ("" for
// none): the snapshot at the expand, the comparison before live and the
// contract.
func aggregateGate(p rollout.Plan, to ledger.Phase) string {
	if len(p.Aggregates) == 0 {
		return ""
	}
	switch to {
	case ledger.Expanded:
		return fmt.Sprintf("; the old side of %d aggregate(s) is snapshotted (it must be there)", len(p.Aggregates))
	case ledger.Live, ledger.Contracted:
		return fmt.Sprintf("; and %d aggregate(s) agree between the old and new shapes within their tolerance (gate aggregates)", len(p.Aggregates))
	}
	return ""
}

// aggregatesMarkdown writes the runbook's section of the aggregates.
func aggregatesMarkdown(b *strings.Builder, checks []AggregateCheck) {
	if len(checks) == 0 {
		return
	}
	fmt.Fprintf(b, "## Aggregates\n\n")
	fmt.Fprintf(b, "Taken of the old side at the expand, and of both sides before reads switch to the new shape and before the contract: "+
		"the new side must be within the tolerance of the old one (of the snapshot once the old one is gone), group by group. "+
		"The last comparison: `schemashift status --json` (`aggregates`), the board's migration page, and `schemashift audit` (events `aggregates`).\n\n")
	fmt.Fprintf(b, "| aggregate | kind | old side | new side | tolerance |\n|---|---|---|---|---|\n")
	for _, c := range checks {
		fmt.Fprintf(b, "| %s | %s | `%s` | `%s` | %s |\n", cell(c.Name), cell(c.Kind), code(c.Old), code(c.New), cell(c.Tolerance))
	}
	fmt.Fprintln(b)
}

// code makes s the text of a Markdown code span inside a table cell: a
// backtick would end the span, so it is shown as a quote mark.
func code(s string) string { return strings.ReplaceAll(cell(s), "`", "'") }
