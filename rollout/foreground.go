package rollout

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/fleet"
)

// FleetForeground is a [backfill.ForegroundSignal] read from the fleet's
// own heartbeats: the calls every instance's dual-path adapters made on
// a migration's paths (old and new, authoritative and shadow), and their
// latencies, as each heartbeat stores them ([fleet.Samples]). A latency
// budget paced by it ([backfill.WithLatencyBudget]) holds the latency
// the services see, across the fleet, rather than one process's or the
// database's; the backfill may run anywhere.
//
// Each Read reports the heartbeats that became visible since the
// previous Read (stamped up to two heartbeat periods before it, as an
// instance's clock may run behind and a commit take its time): the
// 99th percentile of their latencies ([fleet.Histogram.Estimate]) and
// their calls over the time between the two Reads. A heartbeat reports a
// whole heartbeat period, so a window shorter than the period reads no
// heartbeat, or one: the budget's Window and Baseline are set to at
// least twice the heartbeat period it names ([FleetForeground.MinWindow];
// a shorter one given is refused).
//
// The heartbeats keep latencies in buckets a factor of two apart, so the
// percentile is read within its bucket (on a log scale): a latency
// spread over several buckets is read within a fifth or so, but calls
// bunched within one bucket's width hide a change of less than 2× (1.5×
// may read as 1.1×). Where one process runs the foreground, a
// [backfill.ForegroundRecorder] fed by its adapters reads finer; the
// fleet's throughput, a count, is exact. It is safe for concurrent use.
type FleetForeground struct {
	db        fleet.DB
	migration string
	heartbeat time.Duration
	now       func() time.Time

	mu      sync.Mutex
	since   time.Time
	started bool
	// seen are the heartbeats counted, by instance, time and counts,
	// kept while a Read's look-back still reaches them.
	seen map[sampleKey]time.Time
}

// sampleKey tells one heartbeat's sample from another: its instance, its
// time and what it counted (two of one instance at one time and with the
// same counts, a clock standing still, count once).
type sampleKey struct {
	id                       string
	at                       int64
	old, new, errs, compared int64
}

func keyOf(id string, s fleet.Sample) sampleKey {
	return sampleKey{id, s.At.UnixNano(), s.OldCalls, s.NewCalls, s.OldErrors + s.NewErrors, s.Matched + s.Mismatched}
}

// NewFleetForeground reads migration's heartbeats in db, from a fleet
// whose instances beat every heartbeat (0: fleet's default, 10s); now is
// the clock the heartbeats' times are compared with (nil: time.Now).
func NewFleetForeground(db fleet.DB, migration string, heartbeat time.Duration, now func() time.Time) (*FleetForeground, error) {
	if migration == "" {
		return nil, fmt.Errorf("fleet foreground: %w: no migration", ErrInvalidArgument)
	}
	if heartbeat < 0 {
		return nil, fmt.Errorf("fleet foreground: %w: negative heartbeat", ErrInvalidArgument)
	}
	if heartbeat == 0 {
		heartbeat = 10 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &FleetForeground{db: db, migration: migration, heartbeat: heartbeat, now: now}, nil
}

// Source implements [backfill.ForegroundSignal]: [backfill.SourceFleet].
func (*FleetForeground) Source() string { return backfill.SourceFleet }

// MinWindow is the shortest window a budget reads the fleet over: two
// heartbeat periods, so that every instance's heartbeat lands in each.
func (f *FleetForeground) MinWindow() time.Duration { return 2 * f.heartbeat }

// Lag is how long after the foreground the heartbeats report it: a
// heartbeat period (each reports the period before it). A budget's
// reference waits that long at rest before it reads.
func (f *FleetForeground) Lag() time.Duration { return f.heartbeat }

// Read implements [backfill.ForegroundSignal].
func (f *FleetForeground) Read(ctx context.Context) (backfill.Foreground, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	from := f.since
	if !f.started {
		// The window starts: what is visible now is before it, seen and
		// not counted by the Reads that look back over it.
		from, f.seen = now, map[sampleKey]time.Time{}
	}
	total, err := f.unseen(ctx, from, now)
	if err != nil {
		return backfill.Foreground{}, fmt.Errorf("fleet foreground: %w", err)
	}
	if !f.started {
		f.since, f.started = now, true
		return backfill.Foreground{}, nil
	}
	calls := total.OldCalls + total.NewCalls
	var lat fleet.Histogram
	for k := range fleet.Buckets {
		lat[k] = total.Latency.Old[k] + total.Latency.New[k]
	}
	secs := now.Sub(f.since).Seconds()
	f.since = now
	fg := backfill.Foreground{Ops: calls}
	if calls > 0 && secs > 0 {
		fg.Throughput = float64(calls) / secs
		fg.Latency = lat.Estimate(0.99)
	}
	return fg, nil
}

var _ backfill.ForegroundSignal = (*FleetForeground)(nil)

// unseen adds up the samples not seen before among those stamped from
// two heartbeat periods before from up to now, and marks them seen. A
// heartbeat is stamped by its instance's clock before it commits: one
// stamped before the last Read may become visible after it (an
// instance's clock behind this one, a slow commit), so each Read looks
// back and counts a sample once.
func (f *FleetForeground) unseen(ctx context.Context, from, now time.Time) (fleet.Sample, error) {
	lookback := 2 * f.heartbeat
	h, err := fleet.Samples(ctx, f.db, f.migration, from.Add(-lookback), now)
	if err != nil {
		return fleet.Sample{}, err
	}
	var total fleet.Sample
	for _, in := range h.Instances {
		for _, s := range in.Samples {
			k := keyOf(in.ID, s)
			if _, ok := f.seen[k]; ok {
				continue
			}
			f.seen[k] = s.At
			total = total.Add(s)
		}
	}
	for k, at := range f.seen {
		if !at.After(now.Add(-2 * lookback)) {
			delete(f.seen, k) // beyond every later Read's look-back
		}
	}
	return total, nil
}
