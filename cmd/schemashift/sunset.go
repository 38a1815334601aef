package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// printSunsets writes, after status's table, a line per migration whose
// plan sets a sunset: the date, the time left or how long it is overdue,
// and the instances still calling the old path after it (names quoted:
// one line whatever they hold).
func (c *cli) printSunsets(ms []board.Migration) {
	for _, m := range ms {
		if m.Sunset != nil {
			fmt.Fprintln(c.stdout, sunsetLine(*m.Sunset))
		}
	}
}

func sunsetLine(d rollout.DeadlineState) string {
	line := fmt.Sprintf("%s: sunset %s: ", d.Migration, d.At.UTC().Format(time.RFC3339))
	switch d.State {
	case rollout.DeadlineOK:
		line += report.HumanDuration(d.Left) + " left"
	case rollout.DeadlineWarning:
		line += "WARNING, " + report.HumanDuration(d.Left) + " left"
	case rollout.DeadlineOverdue:
		line += "OVERDUE by " + report.HumanDuration(d.Overdue())
	default:
		line += string(d.State)
	}
	if len(d.LateCallers) > 0 {
		names := make([]string, len(d.LateCallers))
		for i, l := range d.LateCallers {
			names[i] = l.String()
		}
		line += fmt.Sprintf("; old-path calls after it from %d instance(s): %s", len(d.LateCallers), strings.Join(names, "; "))
	}
	return line
}
