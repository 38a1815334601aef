package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/ledger"
)

// Policy says who may make one kind of advance of a plan, and how many
// distinct people must approve it first: "the contract needs two
// approvals, neither the one who advances" is Policy{To:
// ledger.Contracted, Needs: 2}; "every forced advance needs two" is
// Policy{Force: true, Needs: 2}.
//
// A policy without Force holds every advance into To, forced or not. A
// policy with Force holds the forced advances only: into To, or into any
// phase when To is left [ledger.Planned] (its zero value, which no advance
// enters). A forced advance into a phase with both kinds is held to both.
// Rollbacks are never held: stepping back is how an operator stops harm,
// and must not wait for anyone.
//
// Actors, when not empty, are the only ones who may perform the advance.
// Needs is how many distinct approvers it needs ([Coordinator.Approve]),
// each other than the one who performs it, approving at the migration's
// current version: an approval expires once the migration moves.
// Approvers, when not empty, are the only ones whose approvals count.
//
// Identities are the callers' ([Request.Actor], [Approval.Actor]): the
// coordinator does not authenticate anyone. The board takes them from its
// authorizer, the CLI from --actor or SCHEMASHIFT_ACTOR. Policies are
// part of the plan's definition. A Policy is a value.
type Policy struct {
	To        ledger.Phase `json:"to,omitempty"`
	Force     bool         `json:"force,omitempty"`
	Actors    []string     `json:"actors,omitempty"`
	Needs     int          `json:"needs,omitempty"`
	Approvers []string     `json:"approvers,omitempty"`
}

// String says what the policy holds, in words: "advances into contracted:
// by alice or bob; 2 approvals, by anyone but the performer".
func (p Policy) String() string {
	var b strings.Builder
	b.WriteString(p.subject() + ": ")
	var parts []string
	if len(p.Actors) > 0 {
		parts = append(parts, "performed by "+strings.Join(quoteAll(p.Actors), " or ")+" only")
	}
	if p.Needs > 0 {
		who := "anyone but the performer"
		if len(p.Approvers) > 0 {
			who = strings.Join(quoteAll(p.Approvers), ", ") + " (not the performer)"
		}
		parts = append(parts, fmt.Sprintf("%d distinct approval%s by %s, at the migration's current version", p.Needs, plural(p.Needs), who))
	}
	b.WriteString(strings.Join(parts, "; "))
	return b.String()
}

// subject is what advances the policy holds, in words.
func (p Policy) subject() string {
	switch {
	case p.Force && p.To == ledger.Planned:
		return "every forced advance"
	case p.Force:
		return "forced advances into " + p.To.String()
	}
	return "advances into " + p.To.String()
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// holds reports whether the policy holds an advance into to, forced or not.
func (p Policy) holds(to ledger.Phase, forced bool) bool {
	if !p.Force {
		return p.To == to
	}
	return forced && (p.To == ledger.Planned || p.To == to)
}

// PoliciesFor returns the plan's policies that hold an advance into to
// (forced or not), in the plan's order.
func (p Plan) PoliciesFor(to ledger.Phase, forced bool) []Policy {
	var out []Policy
	for _, pol := range p.Policies {
		if pol.holds(to, forced) {
			out = append(out, pol)
		}
	}
	return out
}

// checkPolicies refuses an owner or a policy that could never be judged
// as meant: a name that is blank or holds a control character (a newline
// would forge a line of the runbook or the audit trail), a phase no
// advance enters, a negative count, a policy that holds nothing, two
// policies of one kind of advance, or more approvals than its approvers
// could give.
func (p Plan) checkPolicies() error {
	if p.Owner != "" {
		if err := checkIdentity(p.Owner); err != nil {
			return fmt.Errorf("%w %q: owner: %v", ErrInvalidPlan, p.Migration, err)
		}
	}
	type kind struct {
		to    ledger.Phase
		force bool
	}
	seen := map[kind]bool{}
	for i, pol := range p.Policies {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%w %q: policy %d: %s", ErrInvalidPlan, p.Migration, i+1, fmt.Sprintf(format, args...))
		}
		switch {
		case !pol.To.Valid():
			return fail("%v is not a phase", pol.To)
		case pol.To == ledger.Planned && !pol.Force:
			return fail("no advance enters %s (a forced policy with no phase holds every forced advance)", ledger.Planned)
		case pol.Needs < 0:
			return fail("needs %d approvals", pol.Needs)
		case pol.Needs == 0 && len(pol.Actors) == 0:
			return fail("it names no actor and needs no approval: it holds nothing")
		case pol.Needs == 0 && len(pol.Approvers) > 0:
			return fail("it names approvers but needs no approval")
		case len(pol.Approvers) > 0 && pol.Needs > len(pol.Approvers):
			return fail("it needs %d approvals of %d approvers: it could never be met", pol.Needs, len(pol.Approvers))
		}
		if seen[kind{pol.To, pol.Force}] {
			return fail("another policy holds the same advances (%s)", pol)
		}
		seen[kind{pol.To, pol.Force}] = true
		for _, list := range []struct {
			name  string
			names []string
		}{{"actor", pol.Actors}, {"approver", pol.Approvers}} {
			for j, n := range list.names {
				if err := checkIdentity(n); err != nil {
					return fail("%s %d: %v", list.name, j+1, err)
				}
				if slices.Index(list.names, n) != j {
					return fail("%s %q is listed twice", list.name, n)
				}
			}
		}
	}
	return nil
}

// anonymous is the actor a transition records when its request names
// none: no one, as far as a policy goes.
const anonymous = "unknown"

// checkIdentity refuses a name no one could be known by.
func checkIdentity(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("the name is blank")
	case name == anonymous:
		return fmt.Errorf("%q is what a transition by no one named records", anonymous)
	case strings.ContainsFunc(name, unicode.IsControl):
		return fmt.Errorf("the name %q holds a control character", name)
	case len(name) > 200:
		return errors.New("the name is over 200 bytes")
	}
	return nil
}

// Errors of the policies, which a caller can branch on.
var (
	// ErrNotApproved is wrapped by a [PolicyError] of an advance that
	// lacks approvals.
	ErrNotApproved = errors.New("not approved")
	// ErrNotPermitted is wrapped by a [PolicyError] of an advance by an
	// actor its policy does not name (or by no one named), and by the
	// error of an approval the policies do not let count.
	ErrNotPermitted = errors.New("not permitted")
	// ErrSelfApproval is wrapped by the error of an approval by the actor
	// who requested it (and of a request by one who approved).
	ErrSelfApproval = errors.New("an actor cannot approve their own request")
)

// PolicyError is the refusal of an advance that its plan's policy holds:
// who asked, and what is missing. It is a value, safe to share.
type PolicyError struct {
	Migration string
	From, To  ledger.Phase
	Force     bool
	Actor     string
	// Policy is the policy that refused it.
	Policy Policy
	// Approvers are those whose approvals counted.
	Approvers []string
	// Missing says what is missing, in words.
	Missing string
	// Err is [ErrNotApproved] or [ErrNotPermitted].
	Err error
}

func (e *PolicyError) Error() string {
	kind := "advance"
	if e.Force {
		kind = "forced advance"
	}
	return fmt.Sprintf("%s: %s → %s of %s by %q: %s", e.Err, e.From, e.To, e.Migration, e.Actor, e.Missing) + " (" + kind + " held by policy: " + e.Policy.String() + ")"
}

// Unwrap returns [ErrNotApproved] or [ErrNotPermitted].
func (e *PolicyError) Unwrap() error { return e.Err }

// Approval is an approval, or a request for approvals, of the next
// advance of a migration: into To, forced or not, at the migration's
// Version. It is a value.
type Approval struct {
	Migration string       `json:"migration"`
	To        ledger.Phase `json:"to"`
	// Force: it approves (or requests) a forced advance. An approval of a
	// forced advance counts for the plain advance too; one of the plain
	// advance does not count for a forced one.
	Force bool `json:"force,omitempty"`
	// Version is the version of the migration it approves. Given to
	// [Coordinator.Approve], it is the version the caller read (0: the
	// current one), and an approval of a migration that has moved since
	// is refused with [ErrConflict].
	Version int64  `json:"version"`
	Actor   string `json:"actor"`
	Reason  string `json:"reason"`
	// Request marks a request for approvals: its actor is the one who
	// means to advance, and cannot approve it.
	Request bool      `json:"request,omitempty"`
	At      time.Time `json:"at"`
}

func (a Approval) kind() string {
	if a.Request {
		return "request"
	}
	return "approval"
}

// Approve records an approval of the migration's next advance (a.To must
// be the phase after the current one, and a policy must ask for
// approvals of it) at its current version, by a.Actor, with a.Reason; it
// returns the approval as recorded. An approval by an actor who
// requested it ([Coordinator.RequestApproval]) is refused with
// [ErrSelfApproval]; one by an actor a policy's Approvers leave out with
// [ErrNotPermitted]. The same actor approving twice counts once. Every
// approval and every refusal is in the audit trail (kind "approve").
//
// a.Actor is the caller's word: the coordinator authenticates no one.
func (c *Coordinator) Approve(ctx context.Context, a Approval) (Approval, error) {
	a.Request = false
	return c.approve(ctx, a)
}

// RequestApproval records that a.Actor asks for approvals of the
// migration's next advance, with a.Reason: a.Actor then cannot approve
// it. A request by an actor who approved it is refused with
// [ErrSelfApproval]. Requests are in the audit trail (kind
// "request-approval"). Asking first is optional: approvals count for any
// performer but their own authors.
func (c *Coordinator) RequestApproval(ctx context.Context, a Approval) (Approval, error) {
	a.Request = true
	return c.approve(ctx, a)
}

func (c *Coordinator) approve(ctx context.Context, a Approval) (Approval, error) {
	kind := "approve"
	if a.Request {
		kind = "request-approval"
	}
	plan, err := c.plan(a.Migration)
	if err != nil {
		return Approval{}, err
	}
	now := c.now()
	a.At = now
	tx, release, err := c.begin(ctx)
	if err != nil {
		return Approval{}, fmt.Errorf("%s %s: %w", kind, a.Migration, err)
	}
	defer release()
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op
	row, err := ledger.Lock(ctx, c.in(tx), a.Migration)
	if err != nil {
		return Approval{}, fmt.Errorf("%s %s: %w", kind, a.Migration, err)
	}
	refuse := func(cause error) (Approval, error) {
		_ = tx.Rollback() // nothing written to keep: the refusal is recorded apart
		err := c.recordAt(context.WithoutCancel(ctx), c.approvalEvent(kind, a, row.Status, false, cause.Error()), now)
		return Approval{}, errors.Join(cause, err)
	}
	fail := func(sentinel error, format string, args ...any) (Approval, error) {
		return refuse(fmt.Errorf("%s %s: %w: %s", kind, a.Migration, sentinel, fmt.Sprintf(format, args...)))
	}
	var policies []Policy
	switch {
	case a.Version != 0 && a.Version != row.Version:
		return fail(ErrConflict, "version is %d, the approver read %d", row.Version, a.Version)
	case checkIdentity(a.Actor) != nil:
		return fail(ErrNotPermitted, "%v: an approval needs the caller's identity", checkIdentity(a.Actor))
	case strings.TrimSpace(a.Reason) == "":
		return fail(ErrReasonRequired, "an approval needs a reason")
	case row.Phase == ledger.Contracted || a.To != row.Phase+1:
		return fail(ErrInvalidArgument, "the migration is at %s: its next advance is not into %s", row.Phase, a.To)
	}
	a.Version = row.Version
	for _, p := range plan.PoliciesFor(a.To, a.Force) {
		if p.Needs > 0 {
			policies = append(policies, p)
		}
	}
	if len(policies) == 0 {
		return fail(ErrInvalidArgument, "no policy of the plan asks for approvals of %s", describe(a.To, a.Force))
	}
	if !a.Request && !slices.ContainsFunc(policies, func(p Policy) bool { return p.countsFrom(a.Actor) }) {
		return fail(ErrNotPermitted, "%q is not among the approvers of %s", a.Actor, describe(a.To, a.Force))
	}
	have, err := c.readApprovals(ctx, tx, a.Migration, a.Version)
	if err != nil {
		return Approval{}, fmt.Errorf("%s %s: %w", kind, a.Migration, err)
	}
	for _, h := range have {
		// A request of the plain advance is a request of the forced one
		// too, and the other way round: whoever asks cannot approve.
		if h.To == a.To && h.Actor == a.Actor && h.Request != a.Request {
			if a.Request {
				return fail(ErrSelfApproval, "%q approved %s at version %d", a.Actor, describe(a.To, h.Force), a.Version)
			}
			return fail(ErrSelfApproval, "%q requested %s at version %d", a.Actor, describe(a.To, h.Force), a.Version)
		}
	}
	if _, err := tx.ExecContext(ctx, c.dialect.RecordApproval(), a.Migration, a.To.String(), a.Force, a.Version, a.kind(), a.Actor, a.Reason,
		dialect.Stamp(now)); err != nil {
		return Approval{}, fmt.Errorf("%s %s: %w", kind, a.Migration, err)
	}
	if err := ledger.Record(ctx, c.in(tx), c.approvalEvent(kind, a, row.Status, true, a.Reason)); err != nil {
		return Approval{}, fmt.Errorf("%s %s: %w: %w", kind, a.Migration, ErrAudit, err)
	}
	if err := tx.Commit(); err != nil {
		return Approval{}, fmt.Errorf("%s %s: %w", kind, a.Migration, err)
	}
	return a, nil
}

// approvalEvent is the audit trail's event of an approval or a request.
func (c *Coordinator) approvalEvent(kind string, a Approval, cur ledger.Status, accepted bool, reason string) ledger.Event {
	v := cur.Version
	return ledger.Event{Migration: a.Migration, Kind: kind, Accepted: accepted, Actor: a.Actor, FromPhase: cur.Phase.String(),
		ToPhase: a.To.String(), FromStage: cur.Stage.String(), ToStage: a.To.Stage().String(), Version: &v,
		Reason: describe(a.To, a.Force) + ": " + reason, At: a.At}
}

func describe(to ledger.Phase, forced bool) string {
	if forced {
		return "the forced advance into " + to.String()
	}
	return "the advance into " + to.String()
}

// countsFrom reports whether an approval by actor may count for p.
func (p Policy) countsFrom(actor string) bool {
	return len(p.Approvers) == 0 || slices.Contains(p.Approvers, actor)
}

// readApprovals reads the approvals and requests of migration at
// version, oldest first; none where the ledger lacks their table (an
// older ledger read only).
func (c *Coordinator) readApprovals(ctx context.Context, q sqlx.QueryerContext, migration string, version int64) ([]Approval, error) {
	exists, err := c.dialect.TableExists(ctx, q, ident.Table{Name: "schemashift_approvals"})
	if err != nil || !exists {
		return nil, err
	}
	var rows []struct {
		To      string       `db:"to_phase"`
		Force   bool         `db:"forced"`
		Version int64        `db:"version"`
		Kind    string       `db:"kind"`
		Actor   string       `db:"actor"`
		Reason  string       `db:"reason"`
		At      dialect.Time `db:"at"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, c.dialect.Approvals(), migration, version); err != nil {
		return nil, fmt.Errorf("read approvals: %w", err)
	}
	out := make([]Approval, 0, len(rows))
	for _, r := range rows {
		to, err := ledger.ParsePhase(r.To)
		if err != nil {
			return nil, fmt.Errorf("read approvals: %w", err)
		}
		out = append(out, Approval{Migration: migration, To: to, Force: r.Force, Version: r.Version, Actor: r.Actor, Reason: r.Reason,
			Request: r.Kind == "request", At: r.At.Time})
	}
	return out, nil
}

// judgePolicies is the verdict of the plan's policies on an advance of
// r.Actor into to (forced or not) from row, nil when every policy that
// holds it is met: the performer is one it names, and enough distinct
// others approved it at the row's version.
func (c *Coordinator) judgePolicies(ctx context.Context, q sqlx.QueryerContext, plan Plan, r Request, row ledger.Row, to ledger.Phase) error {
	policies := plan.PoliciesFor(to, r.Force)
	if len(policies) == 0 {
		return nil
	}
	refuse := func(p Policy, sentinel error, approvers []string, missing string) error {
		return &PolicyError{Migration: r.Migration, From: row.Phase, To: to, Force: r.Force, Actor: r.Actor, Policy: p,
			Approvers: approvers, Missing: missing, Err: sentinel}
	}
	if checkIdentity(r.Actor) != nil {
		return refuse(policies[0], ErrNotPermitted, nil, "the advance names no actor, and a policy holds it: the caller must say who performs it")
	}
	approvals, err := c.readApprovals(ctx, q, r.Migration, row.Version)
	if err != nil {
		return err
	}
	for _, p := range policies {
		if len(p.Actors) > 0 && !slices.Contains(p.Actors, r.Actor) {
			return refuse(p, ErrNotPermitted, nil, fmt.Sprintf("%q may not perform it (only %s)", r.Actor, strings.Join(quoteAll(p.Actors), ", ")))
		}
		if missing, approvers := p.shortfall(approvals, to, r.Force, r.Actor); missing != "" {
			return refuse(p, ErrNotApproved, approvers, missing)
		}
	}
	return nil
}

// shortfall says what p lacks of approvals for an advance into to
// (forced or not) by performer ("" for none known yet), "" when nothing:
// "needs 2 approvals, has 1: alice". approvals are of the row's version.
func (p Policy) shortfall(approvals []Approval, to ledger.Phase, forced bool, performer string) (string, []string) {
	if p.Needs == 0 {
		return "", nil
	}
	var counted []string
	own := false
	for _, a := range approvals {
		switch {
		case a.Request || a.To != to || (forced && !a.Force) || !p.countsFrom(a.Actor):
		case a.Actor == performer:
			own = true
		case !slices.Contains(counted, a.Actor):
			counted = append(counted, a.Actor)
		}
	}
	if len(counted) >= p.Needs {
		return "", counted
	}
	missing := fmt.Sprintf("needs %d approval%s, has %d", p.Needs, plural(p.Needs), len(counted))
	if len(counted) > 0 {
		missing += ": " + strings.Join(counted, ", ")
	}
	if own {
		missing += fmt.Sprintf(" (%q's own approval does not count for their advance)", performer)
	}
	return missing, counted
}

// ApprovalState is what the policies of a migration's next advance ask
// and what they have: for a status, the board and the runbook. It is a
// value.
type ApprovalState struct {
	Migration string       `json:"migration"`
	Owner     string       `json:"owner,omitempty"`
	Version   int64        `json:"version"`
	Next      ledger.Phase `json:"next"`
	// Policies are every policy of the plan.
	Policies []Policy `json:"policies,omitempty"`
	// Holding are the policies that hold the next advance (plain), and
	// HoldingForce those that hold it forced.
	Holding      []Policy `json:"holding,omitempty"`
	HoldingForce []Policy `json:"holding_force,omitempty"`
	// Approvals are the approvals and requests recorded at the current
	// version, oldest first.
	Approvals []Approval `json:"approvals,omitempty"`
	// Missing says what the next advance lacks ("" for nothing), and
	// MissingForce what a forced one lacks, before anyone's own approval
	// is set aside.
	Missing      string `json:"missing,omitempty"`
	MissingForce string `json:"missing_force,omitempty"`
}

// Approvals reads what the policies of the migration's next advance ask
// and what approvals it has at its current version.
func (c *Coordinator) Approvals(ctx context.Context, migration string) (ApprovalState, error) {
	plan, err := c.plan(migration)
	if err != nil {
		return ApprovalState{}, err
	}
	row, err := ledger.Read(ctx, c.db, migration)
	if err != nil {
		return ApprovalState{}, fmt.Errorf("approvals of %s: %w", migration, err)
	}
	s := ApprovalState{Migration: migration, Owner: plan.Owner, Version: row.Version, Next: row.Phase + 1, Policies: plan.Policies}
	if row.Phase == ledger.Contracted {
		s.Next = row.Phase
		return s, nil
	}
	if len(plan.Policies) == 0 {
		return s, nil
	}
	if s.Approvals, err = c.readApprovals(ctx, c.db, migration, row.Version); err != nil {
		return ApprovalState{}, fmt.Errorf("approvals of %s: %w", migration, err)
	}
	s.Holding, s.HoldingForce = plan.PoliciesFor(s.Next, false), plan.PoliciesFor(s.Next, true)
	s.Missing = missingOf(s.Holding, s.Approvals, s.Next, false)
	s.MissingForce = missingOf(s.HoldingForce, s.Approvals, s.Next, true)
	return s, nil
}

func missingOf(policies []Policy, approvals []Approval, to ledger.Phase, forced bool) string {
	var out []string
	counting := 0 // policies that ask for approvals: more than one, each says which it is
	for _, p := range policies {
		if p.Needs > 0 {
			counting++
		}
	}
	for _, p := range policies {
		if m, _ := p.shortfall(approvals, to, forced, ""); m != "" {
			if counting > 1 {
				m = p.subject() + " " + m
			}
			out = append(out, m)
		}
	}
	return strings.Join(out, "; ")
}
