package board

import (
	"context"

	"github.com/schemashift/schemashift/rollout"
)

// CheckStatus is one of a plan's milestone checks ([rollout.Check]) as
// the board shows it: what it is, which transitions it gates, and its
// last recorded run (nil when no transition has run it yet). It is a
// value.
type CheckStatus struct {
	rollout.Check
	Kind string            `json:"kind"`
	Last *rollout.CheckRun `json:"last,omitempty"`
}

// checks lists plan's checks with the last run of each.
func (b *Board) checks(ctx context.Context, plan rollout.Plan) ([]CheckStatus, error) {
	runs, err := b.c.CheckRuns(ctx, plan.Migration)
	if err != nil {
		return nil, err
	}
	last := map[string]rollout.CheckRun{}
	for _, r := range runs {
		last[r.Check] = r
	}
	out := []CheckStatus{}
	for _, k := range plan.Checks {
		s := CheckStatus{Check: k, Kind: k.Kind()}
		if r, ok := last[k.Name]; ok {
			s.Last = &r
		}
		out = append(out, s)
	}
	return out, nil
}
