// Package backoff is the wait between retries that schemashift's
// packages share: exponential in the attempt, capped, with equal jitter
// (half the wait fixed, half random), so that workers retrying together
// spread out yet never retry sooner than half the wait.
//
// It is one function rather than a retry module's policy object: the
// callers (the DDL executor's lock-timeout retries, a backfill chunk's
// retries) own their loops, their contexts and what they record between
// attempts, and need only the length of the next wait.
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// Wait is the wait before retry attempt (0 for the first retry): base
// doubled attempt times, at most limit, of which a random half is taken
// off. A limit below base is base; a base of 0 or less waits nothing. It
// is safe for concurrent use.
func Wait(base time.Duration, attempt int, limit time.Duration) time.Duration {
	if base <= 0 {
		return 0
	}
	limit = max(limit, base)
	ceiling := min(float64(base)*math.Pow(2, float64(max(attempt, 0))), float64(limit))
	return time.Duration(ceiling/2 + rand.Float64()*ceiling/2)
}
