package backfill

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
)

// scriptSignal is a foreground signal whose n-th read (from 1) returns
// at(n): reads 1 and 2 are a budget's baseline, each after them a
// window's end, except that a reference's window opens with a read of
// its own.
type scriptSignal struct {
	mu    sync.Mutex
	reads int
	at    func(n int) Foreground
}

func (*scriptSignal) Source() string { return SourceApplication }

func (s *scriptSignal) Read(context.Context) (Foreground, error) {
	s.mu.Lock()
	s.reads++
	n := s.reads
	s.mu.Unlock()
	return s.at(n), nil
}

var (
	scriptBase = Foreground{Latency: time.Millisecond, Throughput: 1000, Ops: 1000}
	scriptOver = Foreground{Latency: 10 * time.Millisecond, Throughput: 1000, Ops: 1000}
)

// await waits for ch, failing t after 30 s (a bound on failure, not a
// wait for success).
func await(t *testing.T, ch <-chan struct{}, what string) {
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Errorf("%s: not in 30 s", what)
	}
}

// closer closes ch once, however often it is called.
func closer(ch chan struct{}) func() {
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// The budget of these tests: its baseline 1ms, the two readings after it
// ten times that (past the limit), so that the window after the second
// is a reference: reads 5 and 6 open and close it.
func scriptBudget(sig *scriptSignal) Option {
	return WithLatencyBudget(LatencyBudget{P99: 1.5, Signal: sig, Baseline: 20 * time.Millisecond, Window: 20 * time.Millisecond})
}

// A reference's window opens only once every chunk that was running as
// the pace fell to 0 has ended: a chunk held before its commit (its rows
// locked) as the reference is decided makes the reference wait for it.
// Opened at once, the reference would read the foreground with the
// backfill's chunk still in it.
func TestAReferenceWaitsForTheChunksRunning(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	tailTable(t, db)(50, 1950)
	held, release := make(chan struct{}), make(chan struct{})
	let := closer(release)
	var (
		b              *Backfill
		working, duty  = -1, -1.0
		drained, reads bool
	)
	sig := &scriptSignal{at: func(n int) Foreground {
		switch n {
		case 3:
			return scriptOver
		case 4:
			await(t, held, "the second chunk held")
			return scriptOver
		case 5: // the reference's window opens
			b.mu.Lock()
			working, duty, reads = b.working, b.duty, true
			b.mu.Unlock()
			let() // the test ends either way
		}
		return scriptBase
	}}
	b = tailBackfill(t, db, scriptBudget(sig),
		WithBeforeCommit(func(seq int64) {
			if seq == 2 {
				close(held)
				await(t, release, "the second chunk released")
			}
		}))
	b.opts.draining = func() {
		drained = true // the pacing loop alone writes and (before Run returns) reads it
		let()
	}
	p, err := b.Run(t.Context())
	require.NoError(t, err)
	require.Equal(t, Done, p.Status)
	require.True(t, reads, "a reference was taken")
	assert.True(t, drained, "the reference waited for the held chunk")
	assert.Zero(t, working, "no chunk in its turn as the reference's window opened")
	assert.Zero(t, duty, "the pace at 0 through the reference")
}

// A chunk claimed as a reference began (its worker past the wait for the
// pace before the pace fell) does not run in the reference's window: its
// turn waits for the reference to end before it touches a row.
func TestAChunkClaimedAsAReferenceBeginsWaitsForIt(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	tailTable(t, db)(50, 1950)
	claimed, release, waited, committing := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	let := closer(release)
	var mu sync.Mutex
	var waitedFirst, closed bool
	sig := &scriptSignal{at: func(n int) Foreground {
		switch n {
		case 3:
			return scriptOver
		case 4:
			await(t, claimed, "the second chunk claimed")
			return scriptOver
		case 5: // the reference's window opens: the claimed chunk goes on
			let()
		case 6: // and it closes: the chunk has waited, or it ran meanwhile
			select {
			case <-waited:
				mu.Lock()
				waitedFirst = true
				mu.Unlock()
			case <-committing:
			case <-time.After(30 * time.Second):
				t.Error("the second chunk neither waited nor ran in 30 s")
			}
			mu.Lock()
			closed = true
			mu.Unlock()
		}
		return scriptBase
	}}
	b := tailBackfill(t, db, scriptBudget(sig),
		WithAfterClaim(func(seq int64) {
			if seq == 2 {
				close(claimed)
				await(t, release, "the second chunk released")
			}
		}),
		WithBeforeCommit(func(seq int64) {
			if seq == 2 {
				mu.Lock()
				defer mu.Unlock()
				assert.True(t, closed, "the second chunk ran in the reference's window")
				close(committing)
			}
		}))
	b.opts.turnWaits = closer(waited)
	p, err := b.Run(t.Context())
	require.NoError(t, err)
	require.Equal(t, Done, p.Status)
	assert.True(t, waitedFirst, "the second chunk's turn waited for the reference")
}
