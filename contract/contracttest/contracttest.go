// Package contracttest proves in unit tests that a mixed fleet agrees: a
// scenario (write through the wrapped repository at one stage, read at
// another) runs under every stage and every pair of adjacent stages, a
// writer at stage i and a reader at stage j with |i−j| ≤ 1, as instances
// of two builds or two rollout percentages would be, with stages from the
// fake flags of package flagstest.
package contracttest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
)

// Pair is a writer's stage and a reader's stage.
type Pair struct {
	Writer, Reader flags.Stage
}

func (p Pair) String() string { return fmt.Sprintf("writer=%s/reader=%s", p.Writer, p.Reader) }

// Pairs returns every pair of stages at most one apart, same-stage pairs
// first.
func Pairs() []Pair {
	var same, mixed []Pair
	for _, w := range flags.Stages() {
		for _, r := range flags.Stages() {
			switch {
			case w == r:
				same = append(same, Pair{w, r})
			case w+1 == r || r+1 == w:
				mixed = append(mixed, Pair{w, r})
			}
		}
	}
	return append(same, mixed...)
}

// Scenario writes through a repository whose adapters take their stage from
// writer and reads through one that takes it from reader, and returns an
// error when the read does not return what was written. It must build its
// own state (a fresh database, say) or clean it, since it runs once per
// pair.
type Scenario func(ctx context.Context, writer, reader dualwrite.StageSource) error

// Disagreement is a pair under which the scenario failed.
type Disagreement struct {
	Pair
	Err error
}

// Disagreements runs scenario under every pair and returns those that
// failed.
func Disagreements(t testing.TB, migration string, scenario Scenario) []Disagreement {
	t.Helper()
	var out []Disagreement
	for _, p := range Pairs() {
		writer, _ := flagstest.Flag(t, migration, p.Writer)
		reader, _ := flagstest.Flag(t, migration, p.Reader)
		if err := scenario(t.Context(), writer, reader); err != nil {
			out = append(out, Disagreement{Pair: p, Err: err})
		}
	}
	return out
}

// Check fails t with every pair under which the scenario failed.
func Check(t testing.TB, migration string, scenario Scenario) {
	t.Helper()
	bad := Disagreements(t, migration, scenario)
	if len(bad) == 0 {
		return
	}
	lines := make([]string, len(bad))
	for i, d := range bad {
		lines[i] = fmt.Sprintf("%s: %v", d.Pair, d.Err)
	}
	t.Errorf("contracttest: %d of %d stage pairs disagree:\n  %s", len(bad), len(Pairs()), strings.Join(lines, "\n  "))
}
