package backoff_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/schemashift/schemashift/internal/backoff"
)

// Each wait is within half of its ceiling and the ceiling itself: base
// doubled per attempt, held at the limit, whatever the attempt (a huge
// one must not overflow into a negative or a zero wait).
func TestWaitIsWithinItsCeiling(t *testing.T) {
	t.Parallel()
	base, limit := 10*time.Millisecond, 640*time.Millisecond
	for attempt, ceiling := range []time.Duration{10, 20, 40, 80, 160, 320, 640, 640} {
		ceiling *= time.Millisecond
		for range 200 {
			w := backoff.Wait(base, attempt, limit)
			assert.GreaterOrEqual(t, w, ceiling/2, "attempt %d", attempt)
			assert.LessOrEqual(t, w, ceiling, "attempt %d", attempt)
		}
	}
	for _, attempt := range []int{63, 64, 1000, math.MaxInt} {
		w := backoff.Wait(base, attempt, limit)
		assert.GreaterOrEqual(t, w, limit/2, "attempt %d", attempt)
		assert.LessOrEqual(t, w, limit, "attempt %d", attempt)
	}
}

// The jitter is real: waits of one attempt differ, and spread over the
// upper half of the ceiling rather than sitting at one end.
func TestWaitIsJittered(t *testing.T) {
	t.Parallel()
	seen := map[time.Duration]bool{}
	var low, high int
	for range 1000 {
		w := backoff.Wait(time.Second, 3, time.Minute) // ceiling 8 s
		seen[w] = true
		if w < 6*time.Second {
			low++
		} else {
			high++
		}
	}
	assert.Greater(t, len(seen), 900, "waits of one attempt should differ")
	assert.Greater(t, low, 300)
	assert.Greater(t, high, 300)
}

// Degenerate arguments wait what they say: nothing for no base, base for
// a limit under it, the first ceiling for a negative attempt.
func TestWaitEdges(t *testing.T) {
	t.Parallel()
	assert.Zero(t, backoff.Wait(0, 5, time.Second))
	assert.Zero(t, backoff.Wait(-time.Second, 5, time.Second))
	for range 100 {
		w := backoff.Wait(time.Second, 5, time.Millisecond)
		assert.GreaterOrEqual(t, w, 500*time.Millisecond)
		assert.LessOrEqual(t, w, time.Second)
		w = backoff.Wait(time.Second, -3, time.Minute)
		assert.GreaterOrEqual(t, w, 500*time.Millisecond)
		assert.LessOrEqual(t, w, time.Second)
	}
}
