package dualwrite

import (
	"context"
	"time"

	"github.com/schemashift/schemashift/flags"
)

// Origin names a shape of the data: the old one or the new one.
type Origin uint8

// The two origins.
const (
	Old Origin = iota
	New
)

func (o Origin) String() string {
	if o == New {
		return "new"
	}
	return "old"
}

// Op says whether a call read or wrote.
type Op uint8

// The two operations.
const (
	Read Op = iota
	Write
)

func (o Op) String() string {
	if o == Write {
		return "write"
	}
	return "read"
}

// Role says what a call to one origin was for.
type Role uint8

// The roles of an origin call.
const (
	// Authoritative: the call whose result the caller gets.
	Authoritative Role = iota
	// Secondary: the write to the non-authoritative shape.
	Secondary
	// ShadowRole: the read of the non-authoritative shape, compared and
	// never returned.
	ShadowRole
)

func (r Role) String() string {
	switch r {
	case Secondary:
		return "secondary"
	case ShadowRole:
		return "shadow"
	}
	return "authoritative"
}

// Call describes one call to one origin.
type Call struct {
	Migration string
	Stage     flags.Stage
	Op        Op
	Origin    Origin
	Role      Role
	Duration  time.Duration
	// Err is the origin's error; for a shadow read it may wrap
	// [ErrShadowTimeout] or [ErrShadowPanic].
	Err error
}

// Comparison is the outcome of one shadow read, compared with the
// authoritative one. It is exactly one of:
//
//   - a match (Match): both reads succeeded and agreed, or both failed the
//     same way (a row missing from both shapes is agreement);
//   - a failure (Fault set): either read failed and they did not fail the
//     same way, the shadow read timed out or panicked, or the comparison
//     panicked. A failure is never a match, and it is not rechecked;
//   - a mismatch (neither): both reads succeeded and differ, also when both
//     were read again (see [WithRecheck]).
//
// A gate reading comparisons should count a failure against consistency,
// as package rollout's heartbeats do. Diffs hold no value of a sensitive
// field.
type Comparison struct {
	Migration string
	Stage     flags.Stage
	Match     bool
	// Fault says what kind of failure it was; NoFault for a match or a
	// mismatch.
	Fault Fault
	// Rechecked is set when the first two reads both succeeded and differed
	// and both origins were read again; Match, Fault and Diffs are then
	// those of the second reading. A match after a recheck means a write
	// landed between the first two reads: only a difference between two
	// values is ever cleared that way, never a failure.
	Rechecked bool
	// Diffs lists a mismatch's differences; for a failed read, one Diff at
	// Path "error" says which origin failed and how (its text withheld when
	// the value has sensitive fields). A timeout or a panic has none: the
	// shadow [Call] carries its error.
	Diffs []Diff
}

// Fault is what kind of failure a shadow comparison was.
type Fault uint8

// The kinds of failure of a shadow comparison.
const (
	// NoFault: both reads returned and were compared.
	NoFault Fault = iota
	// FaultError: a read returned an error, and the other read did not
	// fail the same way.
	FaultError
	// FaultTimeout: the shadow read outlived its timeout (see
	// [WithShadowTimeout]).
	FaultTimeout
	// FaultPanic: the shadow read, a recheck's read or the comparator
	// panicked.
	FaultPanic
)

func (f Fault) String() string {
	switch f {
	case FaultError:
		return "error"
	case FaultTimeout:
		return "timeout"
	case FaultPanic:
		return "panic"
	}
	return "none"
}

// DropReason says why a shadow read was not compared. A call left out by
// sampling ([WithShadowSampleRate]) is not a drop: it is not reported at
// all.
type DropReason uint8

// Why a shadow read was dropped.
const (
	// DropFull: the bound on concurrent shadow reads was reached, so the
	// shadow read did not run.
	DropFull DropReason = iota
	// DropClosed: the reader was closed before the shadow read started, or
	// cancelled it in flight.
	DropClosed
)

func (r DropReason) String() string {
	if r == DropClosed {
		return "closed"
	}
	return "full"
}

// ShadowDrop describes a shadow read that was skipped (or, at Close,
// abandoned) to protect the caller: no [Comparison] is reported for it.
type ShadowDrop struct {
	Migration string
	Stage     flags.Stage
	Reason    DropReason
}

// Observer receives what the adapters do: every origin call with its
// latency and error, every shadow comparison (a match, a mismatch or a
// failure), every dropped shadow read, and (as a [flags.Observer]) every
// stage fallback — pass the same value to [flags.WithObserver]. Methods
// are called from the caller's goroutine and from shadow goroutines at
// once, so implementations must be safe for concurrent use; they must also
// be fast and must not block, since the authoritative path waits for them.
// Embed [NopObserver] to implement only some methods.
type Observer interface {
	flags.Observer
	ObserveCall(ctx context.Context, c Call)
	ObserveComparison(ctx context.Context, c Comparison)
	ObserveShadowDrop(ctx context.Context, d ShadowDrop)
}

// NopObserver ignores everything. Embed it to implement part of [Observer].
type NopObserver struct{}

var _ Observer = NopObserver{}

// ObserveFallback implements [flags.Observer].
func (NopObserver) ObserveFallback(context.Context, flags.Fallback) {}

// ObserveCall implements [Observer].
func (NopObserver) ObserveCall(context.Context, Call) {}

// ObserveComparison implements [Observer].
func (NopObserver) ObserveComparison(context.Context, Comparison) {}

// ObserveShadowDrop implements [Observer].
func (NopObserver) ObserveShadowDrop(context.Context, ShadowDrop) {}

// Observers returns an observer that passes every event to each of obs in
// order.
func Observers(obs ...Observer) Observer {
	return multiObserver(append([]Observer(nil), obs...))
}

type multiObserver []Observer

func (m multiObserver) ObserveFallback(ctx context.Context, f flags.Fallback) {
	for _, o := range m {
		o.ObserveFallback(ctx, f)
	}
}

func (m multiObserver) ObserveCall(ctx context.Context, c Call) {
	for _, o := range m {
		o.ObserveCall(ctx, c)
	}
}

func (m multiObserver) ObserveComparison(ctx context.Context, c Comparison) {
	for _, o := range m {
		o.ObserveComparison(ctx, c)
	}
}

func (m multiObserver) ObserveShadowDrop(ctx context.Context, d ShadowDrop) {
	for _, o := range m {
		o.ObserveShadowDrop(ctx, d)
	}
}
