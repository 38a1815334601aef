package flags

import (
	"errors"
	"fmt"
	"strings"
)

// Stage is what a running service does for one migration: which shape it
// writes, which shape is authoritative, and which it reads. Stages are
// ordered: a later stage is further along the rollout, so stages compare
// with < and >. The zero value is [Off].
type Stage uint8

// The six stages, in rollout order. Their names are the flag variants a
// provider returns; see the stage table in the package documentation.
const (
	Off Stage = iota
	DualWrite
	Shadow
	Live
	Rampdown
	Complete
)

// ErrUnknownStage is returned (wrapped) when a string names no stage.
var ErrUnknownStage = errors.New("unknown stage")

var stageNames = [...]string{
	Off:       "off",
	DualWrite: "dualwrite",
	Shadow:    "shadow",
	Live:      "live",
	Rampdown:  "rampdown",
	Complete:  "complete",
}

// Stages returns every stage in rollout order.
func Stages() []Stage {
	return []Stage{Off, DualWrite, Shadow, Live, Rampdown, Complete}
}

// ParseStage returns the stage named s. Names are matched without regard to
// case or surrounding space; anything else is an error wrapping
// [ErrUnknownStage]. A valid name is parsed without allocating.
func ParseStage(s string) (Stage, error) {
	for i, name := range stageNames {
		if s == name {
			return Stage(i), nil
		}
	}
	trimmed := strings.TrimSpace(s)
	for i, name := range stageNames {
		if strings.EqualFold(trimmed, name) {
			return Stage(i), nil
		}
	}
	return Off, fmt.Errorf("parse stage %q: %w (want one of %s)", truncate(s, 64), ErrUnknownStage, strings.Join(stageNames[:], ", "))
}

// Valid reports whether s is one of the six stages.
func (s Stage) Valid() bool { return int(s) < len(stageNames) }

// String returns the stage's flag variant name, such as "dualwrite".
func (s Stage) String() string {
	if s.Valid() {
		return stageNames[s]
	}
	return fmt.Sprintf("Stage(%d)", uint8(s))
}

// MarshalText implements [encoding.TextMarshaler]; an invalid stage is an error.
func (s Stage) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("marshal stage %d: %w", uint8(s), ErrUnknownStage)
	}
	return []byte(stageNames[s]), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with [ParseStage].
func (s *Stage) UnmarshalText(text []byte) error {
	parsed, err := ParseStage(string(text))
	if err != nil {
		return err
	}
	*s = parsed
	return nil
}

// Next returns the stage after s, and false when s is [Complete].
func (s Stage) Next() (Stage, bool) {
	if s >= Complete {
		return s, false
	}
	return s + 1, true
}

// Previous returns the stage before s, and false when s is [Off].
func (s Stage) Previous() (Stage, bool) {
	if s == Off || !s.Valid() {
		return s, false
	}
	return s - 1, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
