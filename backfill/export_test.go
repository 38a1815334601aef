package backfill

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// WithAfterClaim calls fn after each chunk is claimed and before its
// transaction begins: a worker stalled there still holds the chunk's lease
// (and renews it) but no lock, on either database.
func WithAfterClaim(fn func(seq int64)) Option {
	return func(o *options) error { o.afterClaim = fn; return nil }
}

// WithBeforeCommit calls fn in each chunk's transaction after its
// statement, before the job's status is checked and the chunk marked done.
func WithBeforeCommit(fn func(seq int64)) Option {
	return func(o *options) error { o.beforeCommit = fn; return nil }
}

// WithReserved calls fn at each reservation on the rate limit with the
// rows reserved, the limiter's burst, and the time the limiter lets the
// reservation go (by its own clock).
func WithReserved(fn func(rows, burst int, at time.Time)) Option {
	return func(o *options) error { o.reserved = fn; return nil }
}

// WithoutLeaseRenewal makes the workers never renew a lease: a worker
// stalled with a chunk is then one frozen, or cut off from the database.
func WithoutLeaseRenewal() Option {
	return func(o *options) error { o.noRenewal = true; return nil }
}

// FillSpan runs the job's chunk statement over the keys (lo, hi] in tx,
// as a chunk does, trip being the round trip a time seen at the client
// is taken off by, and returns the rows it changed and the time it counts
// of its own in the database.
func (b *Backfill) FillSpan(ctx context.Context, tx *sqlx.Tx, lo, hi Key, trip time.Duration) (int64, time.Duration, error) {
	return b.fill(ctx, tx, span{Lo: lo, Hi: hi}, trip)
}

// ErrNoChunk is what Claim returns when no chunk can be had now.
var ErrNoChunk = errNoChunk

// Claim leases the next chunk for worker at the current chunk size, as a
// worker's loop does before it runs the chunk, and returns the chunk's
// sequence number: the claim's decisions (which lease ran out), without
// a Run around them.
func (b *Backfill) Claim(ctx context.Context, worker string) (int64, error) {
	c, _, err := b.claim(ctx, worker, b.size(), nil, nil, false)
	if err != nil {
		return 0, err
	}
	if c == nil {
		return 0, nil
	}
	return c.Seq, nil
}

// NextChunkSize is the adaptive size after a chunk of size (asked) that
// walked rows in elapsed, under opts' bounds and targets.
func NextChunkSize(size int, rows int64, elapsed time.Duration, opts ...Option) (int, error) {
	o, err := newOptions(opts)
	if err != nil {
		return 0, err
	}
	return nextChunkSize(size, rows, elapsed, o), nil
}

// Others is how the database's statistics are read as a foreground: of
// xacts transactions counted since the last reading, own (as the
// backfill counted them) and owed from the last reading taken off.
func Others(xacts, own, owed int64) (ops, owes int64) { return others(xacts, own, owed) }

// BusyReadings feeds readings (a foreground seen or not) to the default
// pace's judgement and returns, for each, whether it rests.
func BusyReadings(readings ...bool) []bool {
	var s busyStreak
	out := make([]bool, len(readings))
	for i, r := range readings {
		out[i] = s.read(r)
	}
	return out
}

// WithResting calls fn each time a worker starts (or, after the pace
// changed, goes on) resting after a chunk, with how long it means to.
func WithResting(fn func(d time.Duration)) Option {
	return func(o *options) error { o.resting = fn; return nil }
}

// SetDuty sets the share of time the workers work, as a pace would.
func (b *Backfill) SetDuty(d float64) { b.setPace(context.Background(), "", "", d) }

// DutyNow is the share of time a worker works now: 0 while the budget
// takes a reference.
func (b *Backfill) DutyNow() float64 { return b.dutyNow() }

// FinishWithin is when work of d started at now ends, working only
// inside ws.
func FinishWithin(ws []Window, now time.Time, d time.Duration) time.Time {
	return finishWithin(ws, now, d)
}

// StatsReader is a reading of the database's statistics as the default
// pace reads them, the first one its baseline.
func (b *Backfill) StatsReader() func(context.Context) (Foreground, error) {
	return newDBForeground(b).Read
}

// OwnTx is how many transactions the Backfill counted of its own.
func (b *Backfill) OwnTx() int64 { return b.ownTx.Load() }

// StatsTxs commits n transactions on a session of its own to the
// database at u and waits until the database's statistics show them.
func StatsTxs(t testing.TB, u string, n int) { statsTxs(t, u, n) }

// OwnActive is how much of the database's active time the Backfill
// counted of its own.
func (b *Backfill) OwnActive() time.Duration { return time.Duration(b.ownActive.Load()) }
