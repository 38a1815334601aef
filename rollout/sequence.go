package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/ledger"
)

// Requirement orders two migrations: the plan's migration may not enter
// phase Before until migration Migration has reached phase Reached (or
// gone past it). "orders_move_amount may not contract before
// users_split_name is complete" is, in orders_move_amount's plan,
// Requirement{Before: ledger.Contracted, Migration: "users_split_name",
// Reached: ledger.Complete}.
//
// It is a gate condition of the transition into Before, judged with the
// phase's own gate (and, like it, passed over by a forced advance, which
// the audit trail records as forced); the unmet gate names the migration
// it waits for. A requirement on a migration not in the ledger is unmet
// until it is registered. Requirements are part of the plan's definition:
// a plan that gains one is a changed plan. Registering a plan whose
// requirements close a cycle with the ledger's plans (a needs b, b needs
// a) is refused with [ErrInvalidPlan].
type Requirement struct {
	Before    ledger.Phase `json:"before"`
	Migration string       `json:"migration"`
	Reached   ledger.Phase `json:"reached"`
}

func (r Requirement) String() string {
	return fmt.Sprintf("before %s, %q at %s", r.Before, r.Migration, r.Reached)
}

// checkRequirements refuses a requirement that could never be judged as
// meant: on the plan's own migration, on no migration, before a phase no
// transition enters, or on a phase that does not exist.
func (p Plan) checkRequirements() error {
	for i, r := range p.Requires {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%w %q: requirement %d (%s): %s", ErrInvalidPlan, p.Migration, i+1, r, fmt.Sprintf(format, args...))
		}
		switch {
		case strings.TrimSpace(r.Migration) == "":
			return fail("it names no migration")
		case r.Migration == p.Migration:
			return fail("a migration cannot wait for itself")
		case !r.Before.Valid() || r.Before == ledger.Planned:
			return fail("no transition enters %s", r.Before)
		case !r.Reached.Valid() || r.Reached == ledger.Planned:
			return fail("every registered migration is at %s or later: the requirement says nothing", ledger.Planned)
		}
	}
	return nil
}

// requirementsMet judges the requirements of plan on entering to, in tx:
// "" when every one is met, or why not, naming the migration it waits
// for.
func (c *Coordinator) requirementsMet(ctx context.Context, tx *sqlx.Tx, plan Plan, to ledger.Phase) (string, error) {
	var unmet []string
	for _, r := range plan.Requires {
		if r.Before != to {
			continue
		}
		row, err := ledger.Read(ctx, c.in(tx), r.Migration)
		if errors.Is(err, ledger.ErrUnknownMigration) {
			unmet = append(unmet, fmt.Sprintf("migration %q is not registered (it must reach %s first)", r.Migration, r.Reached))
			continue
		}
		if err != nil {
			return "", fmt.Errorf("requirement %s: %w", r, err)
		}
		if row.Status.Phase < r.Reached {
			unmet = append(unmet, fmt.Sprintf("migration %q is at %s; it must reach %s first", r.Migration, row.Status.Phase, r.Reached))
		}
	}
	return strings.Join(unmet, "; "), nil
}

// requirementCycle returns a cycle of the requirements graph, as the
// migrations along it (the first repeated at the end), or nil when there
// is none. needs maps each migration to those it requires.
func requirementCycle(needs map[string][]string) []string {
	const (
		unseen = iota
		open
		closed
	)
	state := map[string]int{}
	var path []string
	var visit func(m string) []string
	visit = func(m string) []string {
		switch state[m] {
		case open:
			i := slices.Index(path, m)
			return append(slices.Clone(path[i:]), m)
		case closed:
			return nil
		}
		state[m] = open
		path = append(path, m)
		for _, n := range needs[m] {
			if cycle := visit(n); cycle != nil {
				return cycle
			}
		}
		path = path[:len(path)-1]
		state[m] = closed
		return nil
	}
	names := make([]string, 0, len(needs))
	for m := range needs {
		names = append(names, m)
	}
	slices.Sort(names) // one cycle named the same way every time
	for _, m := range names {
		if cycle := visit(m); cycle != nil {
			return cycle
		}
	}
	return nil
}

// checkSequence refuses plans whose requirements, with those of the plans
// the ledger has stored (a plan of the same name among plans replaces the
// stored one), close a cycle. Two registrations racing each other, each
// closing half of a cycle, both pass; each migration's gate then names
// the other as what it waits for, and a forced advance breaks the tie.
func checkSequence(ctx context.Context, db *sqlx.DB, plans []Plan) error {
	if !slices.ContainsFunc(plans, func(p Plan) bool { return len(p.Requires) > 0 }) {
		return nil // a plan without requirements closes no cycle
	}
	needs := map[string][]string{}
	defs, err := ledger.Definitions(ctx, db)
	if err != nil {
		return fmt.Errorf("read the registered plans' requirements: %w", err)
	}
	for _, d := range defs {
		if d.Document == nil {
			continue
		}
		stored, err := planFromDocument(d.Document)
		if err != nil {
			return fmt.Errorf("read the registered plan %q: %w", d.Migration, err)
		}
		for _, r := range stored.Requires {
			needs[d.Migration] = append(needs[d.Migration], r.Migration)
		}
	}
	for _, p := range plans {
		needs[p.Migration] = nil
		for _, r := range p.Requires {
			needs[p.Migration] = append(needs[p.Migration], r.Migration)
		}
	}
	if cycle := requirementCycle(needs); cycle != nil {
		return fmt.Errorf("%w: the migrations' requirements form a cycle, so none of them could ever advance past it: %s",
			ErrInvalidPlan, strings.Join(cycle, " needs "))
	}
	return nil
}
