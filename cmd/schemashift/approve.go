package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// approveCommand records an approval (or, with --request, a request for
// approvals) of a migration's next advance, by the CLI's actor.
func (c *cli) approveCommand() *cobra.Command {
	var to, reason string
	var force, request bool
	var version int64
	cmd := &cobra.Command{
		Use:   "approve MIGRATION --to PHASE --reason REASON",
		Short: "Approve a migration's next advance, as its plan's policy asks",
		Long: `Approve the advance of a migration into PHASE (the phase after the
current one), at its current version: the approval expires once the
migration moves. --force approves a forced advance; --request asks for
approvals instead (and the one who asks cannot approve). No one's
approval counts for their own advance. Who approves is --actor, else
$SCHEMASHIFT_ACTOR, else $USER: the CLI's word, recorded in the audit
trail; the plan's policy says whose approvals count.`,
		Args: args(1, 1, "migration"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef("approve: --to is required: the phase the approved advance enters")
			}
			phase, err := ledger.ParsePhase(to)
			if err != nil {
				return usageError{msg: err.Error()}
			}
			if strings.TrimSpace(reason) == "" {
				return usagef("approve: --reason is required")
			}
			ctx := cmd.Context()
			co, err := c.coordinator(ctx, false)
			if err != nil {
				return err
			}
			a := rollout.Approval{Migration: args[0], To: phase, Force: force, Version: version, Actor: c.who(), Reason: reason}
			if request {
				a, err = co.RequestApproval(ctx, a)
			} else {
				a, err = co.Approve(ctx, a)
			}
			if errors.Is(err, rollout.ErrInvalidArgument) {
				return usageError{msg: err.Error()}
			}
			if err != nil {
				return classify(err)
			}
			if c.json {
				return c.printJSON(a)
			}
			what := "approved"
			if a.Request {
				what = "requested approvals of"
			}
			forced := ""
			if a.Force {
				forced = "forced "
			}
			fmt.Fprintf(c.stdout, "%s: %s %s the %sadvance into %s at version %d\n", a.Migration, a.Actor, what, forced, a.To, a.Version)
			s, err := co.Approvals(ctx, a.Migration)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, approvalLine(s))
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the phase the approved advance enters (the next one)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit trail)")
	cmd.Flags().BoolVar(&force, "force", false, "approve a forced advance (past the gate)")
	cmd.Flags().BoolVar(&request, "request", false, "ask for approvals instead of approving")
	cmd.Flags().Int64Var(&version, "version", 0, "refuse if the migration's version is not this one")
	c.jsonFlag(cmd, "the approval as recorded")
	return cmd
}

// approvalLine says what a migration's next advance lacks by its
// policies, on one line.
func approvalLine(s rollout.ApprovalState) string {
	owner := s.Owner
	if owner == "" {
		owner = "-"
	}
	line := fmt.Sprintf("%s: owner %s", s.Migration, owner)
	if len(s.Holding) == 0 && len(s.HoldingForce) == 0 {
		return line + "; no policy holds its next advance"
	}
	plain, forced := "held by no policy", "held by no policy"
	if len(s.Holding) > 0 {
		plain = orApproved(s.Missing)
	}
	if len(s.HoldingForce) > 0 {
		forced = orApproved(s.MissingForce)
	}
	var who []string
	for _, a := range s.Approvals {
		if !a.Request {
			who = append(who, a.Actor)
		}
	}
	return fmt.Sprintf("%s; advance into %s: %s; forced: %s; approvals at version %d: %s", line, s.Next, plain, forced, s.Version, orNone(who))
}

func orApproved(missing string) string {
	if missing == "" {
		return "approved"
	}
	return missing
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// printApprovals writes, after the status table, a line per migration
// whose plan names an owner or a policy.
func (c *cli) printApprovals(ms []board.Migration) {
	for _, m := range ms {
		if m.Approvals != nil {
			fmt.Fprintln(c.stdout, approvalLine(*m.Approvals))
		}
	}
}
