package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// scheduleCommand schedules a migration's next advance for a time, or
// cancels a schedule, by the CLI's actor.
func (c *cli) scheduleCommand() *cobra.Command {
	var at, until, reason, cancel string
	var confirm bool
	var version int64
	cmd := &cobra.Command{
		Use:   "schedule MIGRATION --at TIME --reason REASON",
		Short: "Schedule a migration's next advance for a time, if its gate is met then",
		Long: `Schedule the next advance of a migration, at its current version, for
TIME: "14:00Z" (the next 14:00 UTC), or an RFC 3339 time
("2031-06-01T14:00:00Z"). At TIME a coordinator running the schedules
(Coordinator.RunSchedules) advances it if the gate is met then; if not,
it records why and tries again until --until (default an hour after
TIME), then cancels it. If the migration moves otherwise meanwhile, the
schedule is cancelled. --cancel ID cancels a pending schedule. Who
schedules or cancels is --actor, else $SCHEMASHIFT_ACTOR, else $USER:
the CLI's word, recorded in the audit trail.`,
		Args: args(1, 1, "migration"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usagef("schedule: --reason is required")
			}
			ctx := cmd.Context()
			if cancel != "" {
				if at != "" || until != "" {
					return usagef("schedule: --cancel takes no --at or --until")
				}
				co, err := c.coordinator(ctx, false)
				if err != nil {
					return err
				}
				s, err := co.CancelSchedule(ctx, cancel, c.who(), reason)
				if err != nil {
					return classifySchedule(err)
				}
				if s.Migration != args[0] {
					return usagef("schedule: %s is a schedule of %q, not of %q (it is cancelled all the same)", s.ID, s.Migration, args[0])
				}
				return c.printSchedule(s)
			}
			if at == "" {
				return usagef("schedule: --at is required: when to advance (14:00Z, or an RFC 3339 time)")
			}
			now := c.now()
			due, err := parseAt(at, now)
			if err != nil {
				return usageError{msg: "schedule: --at: " + err.Error()}
			}
			end := due.Add(rollout.DefaultScheduleWindow)
			if until != "" {
				if end, err = parseAt(until, due); err != nil {
					return usageError{msg: "schedule: --until: " + err.Error()}
				}
			}
			co, err := c.coordinator(ctx, false)
			if err != nil {
				return err
			}
			s, err := co.ScheduleUntil(ctx, rollout.Request{Migration: args[0], Version: version, Actor: c.who(), Reason: reason, Confirm: confirm}, due, end)
			if err != nil {
				return classifySchedule(err)
			}
			return c.printSchedule(s)
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "when: 14:00Z (the next 14:00 UTC) or an RFC 3339 time")
	cmd.Flags().StringVar(&until, "until", "", "how long to wait for an unmet gate (default an hour after --at), as --at")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit trail)")
	cmd.Flags().StringVar(&cancel, "cancel", "", "cancel the pending schedule of this id instead")
	cmd.Flags().BoolVar(&confirm, "confirm", false, "confirm the irreversible contract, when the advance scheduled is into contracted")
	cmd.Flags().Int64Var(&version, "version", 0, "refuse if the migration's version is not this one")
	c.jsonFlag(cmd, "the schedule as recorded")
	return cmd
}

func (c *cli) printSchedule(s rollout.Schedule) error {
	if c.json {
		return c.printJSON(s)
	}
	fmt.Fprintf(c.stdout, "%s: %s\n", s.Migration, report.ScheduleText(s))
	return nil
}

// classifySchedule is classify, a schedule over or unknown refused.
func classifySchedule(err error) error {
	switch {
	case errors.Is(err, rollout.ErrUnknownSchedule), errors.Is(err, rollout.ErrInvalidArgument):
		return usageError{msg: err.Error()}
	case errors.Is(err, rollout.ErrScheduleOver):
		return refusedError{err}
	}
	return classify(err)
}

// parseAt reads a time: "HH:MMZ" (the first such UTC time after after),
// or RFC 3339.
func parseAt(s string, after time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	clock, err := time.Parse("15:04Z", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither HH:MMZ (UTC) nor an RFC 3339 time", s)
	}
	a := after.UTC()
	t := time.Date(a.Year(), a.Month(), a.Day(), clock.Hour(), clock.Minute(), 0, 0, time.UTC)
	if !t.After(a) {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

// printSchedules writes, after the status table, a line per schedule of
// a migration that may still run.
func (c *cli) printSchedules(ms []board.Migration) {
	for _, m := range ms {
		for i := len(m.Schedules) - 1; i >= 0; i-- { // soonest first
			if s := m.Schedules[i]; s.State == rollout.SchedulePending || s.State == rollout.ScheduleRunning {
				fmt.Fprintf(c.stdout, "%s: scheduled: %s\n", m.Migration, report.ScheduleText(s))
			}
		}
	}
}
