package backfill

import (
	"context"
	"time"
)

// Chunk describes one finished chunk.
type Chunk struct {
	Job      string
	Seq      int64
	Worker   string
	Rows     int64 // rows walked
	Changed  int64 // rows changed
	Size     int   // the chunk size asked for
	Attempt  int   // 1, or more when the chunk was redone
	Duration time.Duration
}

// Retry describes a retryable failure and the wait before the next try.
type Retry struct {
	Job     string
	Op      string // "claim" or "chunk"
	Kind    string // lock_timeout, deadlock, serialization_failure, statement_timeout, connection
	Attempt int
	Wait    time.Duration
	Err     error
}

// Throttle is a signal's verdict: wait this long before the next chunk.
type Throttle struct {
	Job    string
	Wait   time.Duration
	Reason string
}

// Observer receives what a backfill does. Methods are called from the
// workers' goroutines, so implementations must be safe for concurrent use.
// Embed [NopObserver] to implement part of it.
type Observer interface {
	ObserveChunk(ctx context.Context, c Chunk)
	ObserveRetry(ctx context.Context, r Retry)
	ObserveThrottle(ctx context.Context, t Throttle)
	ObserveProgress(ctx context.Context, p Progress)
}

// NopObserver ignores everything.
type NopObserver struct{}

// ObserveChunk implements [Observer].
func (NopObserver) ObserveChunk(context.Context, Chunk) {}

// ObserveRetry implements [Observer].
func (NopObserver) ObserveRetry(context.Context, Retry) {}

// ObserveThrottle implements [Observer].
func (NopObserver) ObserveThrottle(context.Context, Throttle) {}

// ObserveProgress implements [Observer].
func (NopObserver) ObserveProgress(context.Context, Progress) {}
