package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/rollout/ddl"
)

// Phase is where a migration stands in its rollout. Phases are ordered;
// each transition to the next one passes a gate.
type Phase uint8

// The phases, in order. Each has the stage every instance should be in.
const (
	Planned    Phase = iota // nothing applied; stage off
	Expanded                // expand DDL applied; stage off
	DualWrite               // instances write both shapes; stage dualwrite
	Backfill                // the backfill fills old rows; stage dualwrite
	Verify                  // both shapes compared; stage dualwrite
	Shadow                  // new shape read in shadow; stage shadow
	Live                    // new shape authoritative; stage live
	Rampdown                // old shape still written; stage rampdown
	Complete                // only the new shape; stage complete
	Contracted              // contract DDL applied; irreversible
)

var phaseNames = [...]string{"planned", "expanded", "dualwrite", "backfill", "verify", "shadow", "live", "rampdown", "complete", "contracted"}

var phaseStages = [...]flags.Stage{flags.Off, flags.Off, flags.DualWrite, flags.DualWrite, flags.DualWrite,
	flags.Shadow, flags.Live, flags.Rampdown, flags.Complete, flags.Complete}

// ErrUnknownPhase is wrapped when a string names no phase.
var ErrUnknownPhase = errors.New("unknown phase")

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("Phase(%d)", uint8(p))
}

// Stage returns the stage instances evaluate in this phase.
func (p Phase) Stage() flags.Stage {
	if int(p) < len(phaseStages) {
		return phaseStages[p]
	}
	return flags.Off
}

// ParsePhase returns the phase named s.
func ParsePhase(s string) (Phase, error) {
	for i, n := range phaseNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Phase(i), nil
		}
	}
	return Planned, fmt.Errorf("parse phase %q: %w", s, ErrUnknownPhase)
}

// MarshalText implements encoding.TextMarshaler.
func (p Phase) MarshalText() ([]byte, error) {
	if int(p) >= len(phaseNames) {
		return nil, fmt.Errorf("marshal phase %d: %w", uint8(p), ErrUnknownPhase)
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Phase) UnmarshalText(b []byte) error {
	v, err := ParsePhase(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Step is one DDL statement of an expand or a contract, with the statement
// that undoes it (for an expand step; a contract cannot be undone).
type Step struct {
	SQL  string
	Down string
}

// Column names a column the expand creates; the transition to dualwrite
// checks that each exists, and a service's startup checks it too.
type Column struct {
	Table  string
	Column string
}

// Thresholds are the conditions a plan's gates hold the fleet to.
type Thresholds struct {
	// ShadowConsistency is the share of shadow comparisons that must match
	// before reads switch (default 0.999).
	ShadowConsistency float64
	// MinComparisons is how many comparisons must be seen first (default 1000).
	MinComparisons int64
	// Window is how long every live instance must have evaluated at least
	// the required stage (default 5m).
	Window time.Duration
}

// Plan is the rollout of one migration, declared in code and registered by
// every service that takes part. Its definition hash is recorded in the
// ledger; a different plan under the same name is refused.
type Plan struct {
	// Migration names the migration; it is also the stage flag's key.
	Migration string
	// ExpandOps are safe operations run by the ddl executor before the raw
	// Expand statements (index builds run concurrently, outside the
	// ledger's transaction); undone in reverse by a rollback to planned.
	ExpandOps []ddl.Op
	// Expand are raw statements, linted at registration and run in the
	// transition's transaction with a short lock_timeout.
	Expand []Step
	// Columns lists what the expand creates.
	Columns   []Column
	Backfills []backfill.Job
	// ContractOps and Contract are the contract, in that order.
	ContractOps []ddl.Op
	Contract    []Step
	Thresholds
	// Guardrails halt the rollout on their own (see Coordinator.Guard).
	Guardrails []Guardrail
	// HotQueries are watched for plan changes across the DDL steps. They
	// are not part of the definition hash: a team may add one any time.
	HotQueries []HotQuery
}

// ErrInvalidPlan is wrapped by every plan validation error.
var ErrInvalidPlan = errors.New("invalid rollout plan")

func (p *Plan) normalize() error {
	if p.Migration == "" {
		return fmt.Errorf("%w: migration name is empty", ErrInvalidPlan)
	}
	if len(p.Migration) > 200 {
		return fmt.Errorf("%w %q: migration name is over 200 bytes", ErrInvalidPlan, p.Migration[:40])
	}
	for _, c := range p.Columns {
		if _, err := ident.ParseTable(c.Table); err != nil {
			return fmt.Errorf("%w %q: column table: %v", ErrInvalidPlan, p.Migration, err)
		}
		if err := ident.Check(c.Column); err != nil {
			return fmt.Errorf("%w %q: column: %v", ErrInvalidPlan, p.Migration, err)
		}
	}
	for _, s := range append(append([]Step(nil), p.Expand...), p.Contract...) {
		if strings.TrimSpace(s.SQL) == "" {
			return fmt.Errorf("%w %q: empty DDL step", ErrInvalidPlan, p.Migration)
		}
	}
	if err := p.lint(); err != nil {
		return err
	}
	if p.ShadowConsistency == 0 {
		p.ShadowConsistency = 0.999
	}
	if p.MinComparisons == 0 {
		p.MinComparisons = 1000
	}
	if p.Window == 0 {
		p.Window = 5 * time.Minute
	}
	if !(p.ShadowConsistency > 0 && p.ShadowConsistency <= 1) || p.MinComparisons < 0 || p.Window < 0 {
		return fmt.Errorf("%w %q: thresholds out of range", ErrInvalidPlan, p.Migration)
	}
	return nil
}

// lint refuses raw DDL the linter finds unsafe (runDDL sets the
// lock_timeout, so that rule is satisfied); a statement can silence a rule
// with a comment.
func (p Plan) lint() error {
	var findings []string
	for _, part := range []struct {
		steps []Step
		step  ddl.Step
	}{{p.Expand, ddl.ExpandStep}, {p.Contract, ddl.ContractStep}} {
		for _, s := range part.steps {
			for _, q := range []string{s.SQL, s.Down} {
				if strings.TrimSpace(q) == "" {
					continue
				}
				fs, err := ddl.Lint("SET lock_timeout = '5s';\n"+q, part.step)
				if err != nil {
					return fmt.Errorf("%w %q: %v", ErrInvalidPlan, p.Migration, err)
				}
				for _, f := range fs {
					if f.Rule == ddl.RuleDropInExpand && q == s.Down {
						continue // undoing an expand drops what it added
					}
					findings = append(findings, f.String())
				}
			}
		}
	}
	if len(findings) > 0 {
		return fmt.Errorf("%w %q: unsafe DDL:\n%s", ErrInvalidPlan, p.Migration, strings.Join(findings, "\n"))
	}
	return nil
}

// hash identifies the plan's definition.
func (p Plan) hash() string {
	type job struct {
		Name, Table string
		Key         []string
		Set         []backfill.Assign
		Into        *backfill.Into
		Version     string
		Check       *backfill.Into
	}
	jobs := make([]job, len(p.Backfills))
	for i, j := range p.Backfills {
		jobs[i] = job{j.Name, j.Table, j.Key, j.Set, j.Into, j.Version, j.Check}
	}
	ops := func(list []ddl.Op) []string {
		out := make([]string, len(list))
		for i, o := range list {
			out[i] = fmt.Sprintf("%T%+v", o, o)
		}
		return out
	}
	b, _ := json.Marshal(struct {
		M        string
		EOps     []string
		COps     []string
		Expand   []Step
		Columns  []Column
		Jobs     []job
		Contract []Step
		T        Thresholds
		G        []Guardrail
	}{p.Migration, ops(p.ExpandOps), ops(p.ContractOps), p.Expand, p.Columns, jobs, p.Contract, p.Thresholds, p.Guardrails})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
