package report

import (
	"fmt"
	"strings"

	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// checksGate says in words which of p's milestone checks ([rollout.Check])
// the gate to phase to runs, each with what it asserts, or "" when none
// does. Every value is quoted on one line, so that a check's SQL or URL
// cannot break the runbook's layout.
func checksGate(p rollout.Plan, to ledger.Phase) string {
	var parts []string
	for _, k := range p.Checks {
		if !k.Gates(to) {
			continue
		}
		var what string
		switch k.Kind() {
		case "sql":
			what = fmt.Sprintf("SQL assertion that returns no rows: %q", line(k.SQL))
		case "http":
			what = fmt.Sprintf("HTTP GET %q answering 2xx", line(k.URL))
		default:
			what = fmt.Sprintf("Go function %q, registered with the coordinator that advances", line(k.Func))
		}
		parts = append(parts, fmt.Sprintf("%q (%s)", line(k.Name), what))
	}
	if len(parts) == 0 {
		return ""
	}
	noun := "check"
	if len(parts) > 1 {
		noun = "checks"
	}
	return fmt.Sprintf("; and the milestone %s %s pass (run on every advance, each run in the audit trail as a check event)",
		noun, strings.Join(parts, ", "))
}
