package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/ident"
)

// Sample is what one heartbeat of an instance reported of a migration's
// window (or, merged by [History.Every], of several): its calls and
// errors per path, its shadow comparisons and its latency histograms. A
// heartbeat whose window saw no call and no comparison stores none. It
// is a value.
type Sample struct {
	// At is the heartbeat's time, by the instance's clock (merged: the
	// last one's).
	At         time.Time `json:"at"`
	OldCalls   int64     `json:"old_calls"`
	OldErrors  int64     `json:"old_errors"`
	NewCalls   int64     `json:"new_calls"`
	NewErrors  int64     `json:"new_errors"`
	Matched    int64     `json:"matched"`
	Mismatched int64     `json:"mismatched"`
	Latency    Latency   `json:"latency"`
}

// Add returns s with o's counts and histograms added to it, at the later
// of their times.
func (s Sample) Add(o Sample) Sample {
	if o.At.After(s.At) {
		s.At = o.At
	}
	s.OldCalls += o.OldCalls
	s.OldErrors += o.OldErrors
	s.NewCalls += o.NewCalls
	s.NewErrors += o.NewErrors
	s.Matched += o.Matched
	s.Mismatched += o.Mismatched
	for k := range Buckets {
		s.Latency.Old[k] += o.Latency.Old[k]
		s.Latency.New[k] += o.Latency.New[k]
	}
	return s
}

// Consistency counts the sample's shadow comparisons (Ratio 0 when there
// were none).
func (s Sample) Consistency() Consistency {
	return Totals{Matched: s.Matched, Mismatched: s.Mismatched}.Since(Totals{})
}

// InstanceSamples are one instance's samples of a migration, oldest
// first. It is a value.
type InstanceSamples struct {
	ID      string   `json:"id"`
	Samples []Sample `json:"samples"`
}

// History is what a migration's instances' heartbeats recorded after
// Since and up to Now: a series of [Sample]s per instance, by id. It is a
// value, safe to share once read.
type History struct {
	Since     time.Time         `json:"since"`
	Now       time.Time         `json:"now"`
	Instances []InstanceSamples `json:"instances"`
}

// ConsistencyAt is the fleet's shadow [Consistency] over the heartbeats
// of one step of a [History.Consistency], at the last of them. It is a
// value.
type ConsistencyAt struct {
	At time.Time `json:"at"`
	Consistency
}

// Samples reads the samples of migration that the heartbeats stamped
// after since and at or before now, grouped per instance. The samples
// are kept for a retention ([WithSampleRetention]): what is older is
// gone.
func Samples(ctx context.Context, db DB, migration string, since, now time.Time) (History, error) {
	h := History{Since: since, Now: now, Instances: []InstanceSamples{}}
	q, d, err := dialects.Handle(ctx, db)
	if err != nil {
		return h, fmt.Errorf("read samples: %w", err)
	}
	var rows []struct {
		ID         string       `db:"instance_id"`
		At         dialect.Time `db:"at"`
		OldCalls   int64        `db:"old_calls"`
		OldErrors  int64        `db:"old_errors"`
		NewCalls   int64        `db:"new_calls"`
		NewErrors  int64        `db:"new_errors"`
		Matched    int64        `db:"matched"`
		Mismatched int64        `db:"mismatched"`
		Latency    string       `db:"latency"`
	}
	if ok, err := d.TableExists(ctx, q, samplesTable); err != nil {
		return h, fmt.Errorf("read samples: %w", err)
	} else if !ok {
		return h, nil // a ledger an older build made, no Ensure since: no samples yet
	}
	if err := sqlx.SelectContext(ctx, q, &rows, d.ReadSamples(), migration, dialect.Stamp(since), dialect.Stamp(now)); err != nil {
		return h, fmt.Errorf("read samples: %w", err)
	}
	for _, r := range rows {
		s := Sample{At: r.At.UTC(), OldCalls: r.OldCalls, OldErrors: r.OldErrors, NewCalls: r.NewCalls, NewErrors: r.NewErrors,
			Matched: r.Matched, Mismatched: r.Mismatched}
		if err := json.Unmarshal([]byte(r.Latency), &s.Latency); err != nil {
			return h, fmt.Errorf("read samples: latency of %s: %w", r.ID, err)
		}
		if n := len(h.Instances); n == 0 || h.Instances[n-1].ID != r.ID {
			h.Instances = append(h.Instances, InstanceSamples{ID: r.ID})
		}
		last := &h.Instances[len(h.Instances)-1]
		last.Samples = append(last.Samples, s)
	}
	return h, nil
}

// bucket is the step a time falls in: the steps end on multiples of step
// since the Unix epoch, a time on one ending its step. A step of zero or
// less makes a step of each time.
func bucket(at time.Time, step time.Duration) int64 {
	ns := at.UnixNano()
	if step <= 0 {
		return ns
	}
	k := ns / int64(step)
	if ns%int64(step) > 0 {
		k++
	}
	return k
}

// Every merges each instance's samples into one per step (steps end on
// multiples of step since the Unix epoch), each at its last heartbeat:
// fewer points to draw over a long time, their counts and histograms
// added up exactly. A step of zero or less merges the samples of one
// time only.
func (h History) Every(step time.Duration) History {
	out := History{Since: h.Since, Now: h.Now, Instances: make([]InstanceSamples, 0, len(h.Instances))}
	for _, in := range h.Instances {
		merged := InstanceSamples{ID: in.ID}
		var key int64
		for _, s := range in.Samples {
			k := bucket(s.At, step)
			if n := len(merged.Samples); n > 0 && k == key {
				merged.Samples[n-1] = merged.Samples[n-1].Add(s)
				continue
			}
			key = k
			merged.Samples = append(merged.Samples, s)
		}
		out.Instances = append(out.Instances, merged)
	}
	return out
}

// Consistency is the fleet's shadow consistency per step (as
// [History.Every] cuts them): every instance's comparisons in a step
// added up, at the step's last heartbeat, oldest first. A step without
// comparisons has no point.
func (h History) Consistency(step time.Duration) []ConsistencyAt {
	sums := map[int64]Sample{}
	for _, in := range h.Instances {
		for _, s := range in.Samples {
			if s.Matched+s.Mismatched == 0 {
				continue
			}
			k := bucket(s.At, step)
			sums[k] = sums[k].Add(Sample{At: s.At, Matched: s.Matched, Mismatched: s.Mismatched})
		}
	}
	keys := make([]int64, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return keys[a] < keys[b] })
	out := make([]ConsistencyAt, 0, len(keys))
	for _, k := range keys {
		out = append(out, ConsistencyAt{At: sums[k].At, Consistency: sums[k].Consistency()})
	}
	return out
}

// samplesTable holds the heartbeats' samples: an addition to the ledger
// outside its versions (see ledger.Ensure).
var samplesTable = ident.Table{Name: "schemashift_heartbeat_samples"}
