package board

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// approvalsOf reads the owner, the policies and the approvals of the
// migration's next advance, as the board shows them: nil for a plan that
// names neither an owner nor a policy.
func (b *Board) approvalsOf(ctx context.Context, plan rollout.Plan) (*rollout.ApprovalState, error) {
	if plan.Owner == "" && len(plan.Policies) == 0 {
		return nil, nil
	}
	s, err := b.c.Approvals(ctx, plan.Migration)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// approve is the board's approve action: an approval, by the actor the
// authorizer named, of the advance the form names (into "to", forced
// with force=yes) at the version the page showed, with the form's
// reason. What the coordinator refuses comes back as the page's message.
func (b *Board) approve(r *http.Request, actor string) error {
	to, err := ledger.ParsePhase(r.PostFormValue("to"))
	if err != nil {
		return err
	}
	version, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil || version <= 0 {
		return errors.New("the form names no version of the migration: reload the page")
	}
	_, err = b.c.Approve(r.Context(), rollout.Approval{Migration: r.PostFormValue("migration"), To: to, Force: r.PostFormValue("force") == "yes",
		Version: version, Actor: actor, Reason: r.PostFormValue("reason")})
	return err
}
