package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
)

// tally counts what the adapters did at one stage: an Observer written
// the way an application would write its own.
type tally struct {
	dualwrite.NopObserver

	mu         sync.Mutex
	reads      map[dualwrite.Origin]int
	shadows    map[dualwrite.Origin]int
	writeOrder map[string]int
	matched    int
	mismatched int
	rechecked  int
	dropped    int
	diffs      []dualwrite.Diff
}

func (t *tally) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reads = map[dualwrite.Origin]int{}
	t.shadows = map[dualwrite.Origin]int{}
	t.writeOrder = map[string]int{}
	t.matched, t.mismatched, t.rechecked, t.dropped, t.diffs = 0, 0, 0, 0, nil
}

func (t *tally) ObserveCall(_ context.Context, c dualwrite.Call) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case c.Op == dualwrite.Read && c.Role == dualwrite.Authoritative:
		t.reads[c.Origin]++
	case c.Op == dualwrite.Read:
		t.shadows[c.Origin]++
	case c.Role == dualwrite.Authoritative:
		t.writeOrder[c.Origin.String()]++
	default:
		t.writeOrder[c.Origin.String()+" (2nd)"]++
	}
}

func (t *tally) ObserveComparison(_ context.Context, c dualwrite.Comparison) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.Rechecked {
		t.rechecked++
	}
	if c.Match {
		t.matched++
		return
	}
	t.mismatched++
	t.diffs = append(t.diffs, c.Diffs...)
}

func (t *tally) ObserveShadowDrop(context.Context, dualwrite.ShadowDrop) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropped++
}

func (t *tally) ObserveFallback(_ context.Context, f flags.Fallback) {
	fmt.Printf("stage fallback for %s: %v\n", f.Migration, f.Err)
}

func (t *tally) line(stage flags.Stage) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	reads := fmt.Sprintf("old %d, new %d", t.reads[dualwrite.Old], t.reads[dualwrite.New])
	var writes []string
	for _, k := range []string{"old", "new", "old (2nd)", "new (2nd)"} {
		if n := t.writeOrder[k]; n > 0 {
			writes = append(writes, fmt.Sprintf("%s %d", k, n))
		}
	}
	shadows := "-"
	comparisons := "-"
	if n := t.shadows[dualwrite.Old] + t.shadows[dualwrite.New]; n > 0 {
		shadows = fmt.Sprintf("old %d, new %d", t.shadows[dualwrite.Old], t.shadows[dualwrite.New])
		comparisons = fmt.Sprintf("%d match, %d mismatch (%d rechecked, %d dropped)", t.matched, t.mismatched, t.rechecked, t.dropped)
	}
	return fmt.Sprintf("%-10s %-24s %-24s %-14s %s", stage, reads, strings.Join(writes, ", "), shadows, comparisons)
}

func (t *tally) mismatches() []dualwrite.Diff {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]dualwrite.Diff(nil), t.diffs...)
}
