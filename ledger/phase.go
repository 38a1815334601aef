package ledger

import (
	"errors"
	"fmt"
	"strings"

	"github.com/schemashift/schemashift/flags"
)

// Phase is where a migration stands in its rollout. Phases are ordered;
// each transition to the next one passes a gate. It is a value.
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

// Valid reports whether p is one of the phases.
func (p Phase) Valid() bool { return int(p) < len(phaseNames) }
