package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialects"
)

// Latencies of each path are kept as histograms with power-of-two
// buckets from 50µs: bucket 0 is under 50µs, bucket k under 50µs·2^k, the
// last one everything above. Heartbeats add them up.
const (
	// Buckets is how many buckets a [Histogram] has.
	Buckets     = 21
	latencyBase = 50 * time.Microsecond
)

// Histogram counts calls by latency bucket. It is a value: safe for
// concurrent reads, and copied, not shared, when changed.
//
// The project keeps its own layout rather than a histogram module's (HDR
// and the like), because the layout is part of the stored format: each
// instance's heartbeat adds its counts to those of schemashift_instances
// and the ledger keeps a phase's baseline to subtract ([Histogram.Minus]),
// both as a JSON array of bucket counts, so every build of a fleet, old
// and new, must add up the same fixed buckets. A module's layout is a
// setting and its encoding is its own to change; quantiles within a
// factor of two are all the guardrails and the board need.
type Histogram [Buckets]int64

func bucketOf(d time.Duration) int {
	if d < latencyBase {
		return 0
	}
	return min(bits.Len64(uint64(d/latencyBase)), Buckets-1)
}

// upper returns the upper bound of bucket k.
func upper(k int) time.Duration { return latencyBase << k }

// Total counts the calls of every bucket.
func (h Histogram) Total() int64 {
	var n int64
	for _, c := range h {
		n += c
	}
	return n
}

// Quantile returns the upper bound of the bucket holding the q-quantile.
func (h Histogram) Quantile(q float64) time.Duration {
	n := h.Total()
	if n == 0 {
		return 0
	}
	want := int64(q*float64(n) + 0.5)
	var seen int64
	for k, c := range h {
		seen += c
		if seen >= want {
			return upper(k)
		}
	}
	return upper(Buckets - 1)
}

// Minus returns h less o, bucket by bucket: the calls since o was taken.
func (h Histogram) Minus(o Histogram) Histogram {
	for k := range h {
		h[k] -= o[k]
	}
	return h
}

// Latency holds the histograms of the old and the new path. It is a
// value, like [Histogram].
type Latency struct {
	Old Histogram `json:"old"`
	New Histogram `json:"new"`
}

// Latencies sums the histograms every instance reported for a migration.
func Latencies(ctx context.Context, db DB, migration string) (Latency, error) {
	var rows []string
	var sum Latency
	q, d, err := dialects.Handle(ctx, db)
	if err != nil {
		return sum, fmt.Errorf("read latencies: %w", err)
	}
	if err := sqlx.SelectContext(ctx, q, &rows, d.ReadLatencies(), migration); err != nil {
		return sum, fmt.Errorf("read latencies: %w", err)
	}
	for _, r := range rows {
		var p Latency
		if err := json.Unmarshal([]byte(r), &p); err != nil {
			return sum, fmt.Errorf("read latencies: %w", err)
		}
		for k := range Buckets {
			sum.Old[k] += p.Old[k]
			sum.New[k] += p.New[k]
		}
	}
	return sum, nil
}

// compact writes l as JSON with each histogram's trailing zeros cut
// (JSON reads a short array into a Histogram, the rest zero): a sample's
// window seldom reaches the slow buckets, and a table of a sample per
// heartbeat is kept small this way.
func (l Latency) compact() string {
	var b strings.Builder
	b.WriteString(`{"old":`)
	l.Old.compact(&b)
	b.WriteString(`,"new":`)
	l.New.compact(&b)
	b.WriteString(`}`)
	return b.String()
}

func (h Histogram) compact(b *strings.Builder) {
	n := len(h)
	for n > 0 && h[n-1] == 0 {
		n--
	}
	b.WriteByte('[')
	for k := range n {
		if k > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(h[k], 10))
	}
	b.WriteByte(']')
}

// Estimate returns the q-quantile of h with the calls spread evenly
// within each bucket on a log scale (bucket 0, from 0, linearly; each
// other from the bucket below's bound): a finer reading than [Histogram.Quantile]'s bucket
// bound where the quantile is compared with another of the same
// histograms (a latency budget's 1.5× could not be told apart from 2×
// by bounds a factor of two apart). The last bucket has no upper bound:
// a quantile there is its lower bound.
func (h Histogram) Estimate(q float64) time.Duration {
	n := h.Total()
	if n == 0 {
		return 0
	}
	want := q * float64(n)
	var seen float64
	for k, c := range h {
		if c == 0 {
			continue
		}
		lo := time.Duration(0)
		if k > 0 {
			lo = upper(k - 1)
		}
		if k == Buckets-1 {
			return lo
		}
		if seen+float64(c) >= want {
			frac := (want - seen) / float64(c)
			if k == 0 {
				return time.Duration(frac * float64(upper(0)))
			}
			// Geometric within the bucket, as its bounds are: latencies
			// spread on a log scale are read truer than linearly.
			return time.Duration(float64(lo) * math.Exp2(frac))
		}
		seen += float64(c)
	}
	return upper(Buckets - 2)
}
