package report

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/schemashift/schemashift/rollout"
)

// pendingSchedules reads the schedules of migration that may still run
// ([rollout.Coordinator.Schedules]): pending or running, soonest first.
func pendingSchedules(ctx context.Context, c *rollout.Coordinator, migration string) ([]rollout.Schedule, error) {
	all, err := c.Schedules(ctx, migration, 100)
	if err != nil {
		return nil, fmt.Errorf("schedules of %s: %w", migration, err)
	}
	var out []rollout.Schedule
	for i := len(all) - 1; i >= 0; i-- { // latest first: turned soonest first
		if s := all[i]; s.State == rollout.SchedulePending || s.State == rollout.ScheduleRunning {
			out = append(out, s)
		}
	}
	return out, nil
}

// ScheduleText says a schedule in one line, for the runbook and the
// CLI: "advance to live at 2031-01-01T14:00:00Z if its gate is met (until
// 15:00:00Z), by "alice": reason [pending; id 3f…]". Its text is on one
// line whatever the schedule's reason holds.
func ScheduleText(s rollout.Schedule) string {
	t := fmt.Sprintf("advance to %s at %s if its gate is met (waiting until %s), by %q: %s [%s; id %s]", s.To,
		s.Due.UTC().Format(time.RFC3339), s.Until.UTC().Format(time.RFC3339), s.Actor, s.Reason, s.State, s.ID)
	if s.Outcome != "" {
		t += " — " + s.Outcome
	}
	return line(t)
}

// scheduleMarkdown writes the runbook's Schedule line, at its end, in no
// section of its own (the sections are the transitions): how to schedule
// the next advance, and the schedules that may still run.
func scheduleMarkdown(b *strings.Builder, migration string, pending []rollout.Schedule) {
	m := line(migration)
	fmt.Fprintf(b, "- **Schedule:** `schemashift schedule %s --at 14:00Z --reason REASON` advances at that time (UTC) if the gate is met then, "+
		"as `--actor` or `SCHEMASHIFT_ACTOR`; announced at once, it waits for an unmet gate up to an hour (`--until`), then is cancelled. "+
		"Cancel it: `schemashift schedule %s --cancel ID --reason REASON`. A coordinator runs what is due (`Coordinator.RunSchedules`).\n", m, m)
	if len(pending) == 0 {
		b.WriteString("- Pending: none.\n\n")
		return
	}
	for _, s := range pending {
		fmt.Fprintf(b, "- Pending: %s\n", ScheduleText(s))
	}
	b.WriteString("\n")
}
