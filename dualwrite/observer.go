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

// Comparison is the outcome of comparing a shadow read with the
// authoritative one. Diffs hold no value of a sensitive field.
type Comparison struct {
	Migration string
	Stage     flags.Stage
	Match     bool
	// Rechecked is set when the first comparison differed and both origins
	// were read again (see [WithRecheck]); Match and Diffs are then those of
	// the second reading. A match after a recheck means a write landed
	// between the first two reads.
	Rechecked bool
	Diffs     []Diff
}

// DropReason says why a shadow read did not run.
type DropReason uint8

// Why a shadow read was dropped.
const (
	// DropFull: the bound on concurrent shadow reads was reached.
	DropFull DropReason = iota
	// DropClosed: the reader was closed.
	DropClosed
)

func (r DropReason) String() string {
	if r == DropClosed {
		return "closed"
	}
	return "full"
}

// ShadowDrop describes a shadow read that was skipped to protect the caller.
type ShadowDrop struct {
	Migration string
	Stage     flags.Stage
	Reason    DropReason
}

// Observer receives what the adapters do: every origin call with its
// latency and error, every shadow comparison, every dropped shadow read, and
// (as a [flags.Observer]) every stage fallback — pass the same value to
// [flags.WithObserver]. Methods are called from the caller's goroutine and
// from shadow goroutines at once, so implementations must be safe for
// concurrent use; they must also be fast and must not block, since the
// authoritative path waits for them. Embed [NopObserver] to implement only
// some methods.
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
