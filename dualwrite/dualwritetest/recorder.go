// Package dualwritetest helps unit tests of code that uses package
// dualwrite: a [Recorder] observer that keeps every event for assertions.
package dualwritetest

import (
	"context"
	"sync"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
)

// Recorder is a [dualwrite.Observer] that keeps every event in order. It is
// safe for concurrent use. Shadow reads report from their own goroutines:
// call the reader's Wait before asserting on them.
type Recorder struct {
	mu          sync.Mutex
	calls       []dualwrite.Call
	comparisons []dualwrite.Comparison
	drops       []dualwrite.ShadowDrop
	fallbacks   []flags.Fallback
}

var _ dualwrite.Observer = (*Recorder)(nil)

// ObserveCall implements dualwrite.Observer.
func (r *Recorder) ObserveCall(_ context.Context, c dualwrite.Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

// ObserveComparison implements dualwrite.Observer.
func (r *Recorder) ObserveComparison(_ context.Context, c dualwrite.Comparison) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.comparisons = append(r.comparisons, c)
}

// ObserveShadowDrop implements dualwrite.Observer.
func (r *Recorder) ObserveShadowDrop(_ context.Context, d dualwrite.ShadowDrop) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drops = append(r.drops, d)
}

// ObserveFallback implements flags.Observer.
func (r *Recorder) ObserveFallback(_ context.Context, f flags.Fallback) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fallbacks = append(r.fallbacks, f)
}

// Calls returns the calls so far, in the order they were reported.
func (r *Recorder) Calls() []dualwrite.Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]dualwrite.Call(nil), r.calls...)
}

// CallsBy returns the calls of one role.
func (r *Recorder) CallsBy(role dualwrite.Role) []dualwrite.Call {
	var out []dualwrite.Call
	for _, c := range r.Calls() {
		if c.Role == role {
			out = append(out, c)
		}
	}
	return out
}

// Comparisons returns the shadow comparisons so far.
func (r *Recorder) Comparisons() []dualwrite.Comparison {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]dualwrite.Comparison(nil), r.comparisons...)
}

// Mismatches returns the comparisons of two successful reads that
// differed; failures are not among them (see [Recorder.Failures]).
func (r *Recorder) Mismatches() []dualwrite.Comparison {
	var out []dualwrite.Comparison
	for _, c := range r.Comparisons() {
		if !c.Match && c.Fault == dualwrite.NoFault {
			out = append(out, c)
		}
	}
	return out
}

// Failures returns the comparisons that failed: a read's error, a timeout
// or a panic.
func (r *Recorder) Failures() []dualwrite.Comparison {
	var out []dualwrite.Comparison
	for _, c := range r.Comparisons() {
		if c.Fault != dualwrite.NoFault {
			out = append(out, c)
		}
	}
	return out
}

// Drops returns the dropped shadow reads so far.
func (r *Recorder) Drops() []dualwrite.ShadowDrop {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]dualwrite.ShadowDrop(nil), r.drops...)
}

// Fallbacks returns the stage fallbacks so far.
func (r *Recorder) Fallbacks() []flags.Fallback {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]flags.Fallback(nil), r.fallbacks...)
}
