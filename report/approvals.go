package report

import (
	"fmt"
	"strings"

	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// Governance is who answers for a migration and what its policies ask
// ([rollout.Policy]), in words, for the runbook. It is a value.
type Governance struct {
	Owner    string   `json:"owner,omitempty"`
	Policies []string `json:"policies,omitempty"`
}

// governance is p's owner and policies in words.
func governance(p rollout.Plan) Governance {
	g := Governance{Owner: p.Owner}
	for _, pol := range p.Policies {
		g.Policies = append(g.Policies, pol.String())
	}
	return g
}

// policyGate is what p's policies add to the gate into to, for a plain
// advance ("" for nothing), and what they ask of a forced one.
func policyGate(p rollout.Plan, to ledger.Phase) string {
	var out []string
	for _, pol := range p.PoliciesFor(to, false) {
		out = append(out, "by policy, "+ask(pol))
	}
	for _, pol := range p.PoliciesFor(to, true) {
		if pol.Force {
			out = append(out, "forced, by policy, "+ask(pol))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "; and " + strings.Join(out, "; and ")
}

// ask is what one policy asks of an advance, in words.
func ask(p rollout.Policy) string {
	var parts []string
	if len(p.Actors) > 0 {
		parts = append(parts, "performed by "+strings.Join(quoted(p.Actors), " or ")+" only")
	}
	if p.Needs > 0 {
		who := "others than the performer"
		if len(p.Approvers) > 0 {
			who = "of " + strings.Join(quoted(p.Approvers), ", ") + " (not the performer)"
		}
		s := "s"
		if p.Needs == 1 {
			s = ""
		}
		parts = append(parts, fmt.Sprintf("%d distinct approval%s %s at the migration's current version (`schemashift approve`)", p.Needs, s, who))
	}
	return strings.Join(parts, ", ")
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}

// markdown writes the owner and the policies as the runbook's section,
// nothing for a plan with neither.
func (g Governance) markdown(b *strings.Builder, migration string) {
	if g.Owner == "" && len(g.Policies) == 0 {
		return
	}
	b.WriteString("## Owner and approvals\n\n")
	if g.Owner != "" {
		fmt.Fprintf(b, "Owner: %s.\n\n", line(g.Owner))
	}
	if len(g.Policies) == 0 {
		return
	}
	b.WriteString("Policies (who may advance, and who must approve first; an approval is of the migration's current version and expires once it moves; " +
		"no one's approval counts for their own advance; identities are the callers' `--actor` or `SCHEMASHIFT_ACTOR`):\n\n")
	for _, p := range g.Policies {
		fmt.Fprintf(b, "- %s\n", line(p))
	}
	fmt.Fprintf(b, "\nApprove: `schemashift approve %s --to PHASE --reason REASON` (`--force` for a forced advance, `--request` to ask); "+
		"what is missing: `schemashift status %s`.\n\n", line(migration), line(migration))
}
