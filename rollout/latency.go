package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"math/bits"
	"time"

	"github.com/jmoiron/sqlx"
)

// Latencies of each path are kept as histograms with power-of-two
// buckets from 50µs: bucket 0 is under 50µs, bucket k under 50µs·2^k, the
// last one everything above. Heartbeats add them up.
const (
	latencyBuckets = 21
	latencyBase    = 50 * time.Microsecond
)

// histogram counts calls by latency bucket.
type histogram [latencyBuckets]int64

func bucketOf(d time.Duration) int {
	if d < latencyBase {
		return 0
	}
	return min(bits.Len64(uint64(d/latencyBase)), latencyBuckets-1)
}

// upper returns the upper bound of bucket k.
func upper(k int) time.Duration { return latencyBase << k }

func (h histogram) total() int64 {
	var n int64
	for _, c := range h {
		n += c
	}
	return n
}

// quantile returns the upper bound of the bucket holding the q-quantile.
func (h histogram) quantile(q float64) time.Duration {
	n := h.total()
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
	return upper(latencyBuckets - 1)
}

func (h histogram) minus(o histogram) histogram {
	for k := range h {
		h[k] -= o[k]
	}
	return h
}

// paths holds the histograms of the old and the new path.
type paths struct {
	Old histogram `json:"old"`
	New histogram `json:"new"`
}

// latencies sums the histograms every instance reported for a migration.
func latencies(ctx context.Context, q sqlx.QueryerContext, migration string) (paths, error) {
	var rows []string
	var sum paths
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT CAST(latency AS text) FROM schemashift_instances WHERE migration = $1`, migration); err != nil {
		return sum, fmt.Errorf("read latencies: %w", err)
	}
	for _, r := range rows {
		var p paths
		if err := json.Unmarshal([]byte(r), &p); err != nil {
			return sum, fmt.Errorf("read latencies: %w", err)
		}
		for k := range latencyBuckets {
			sum.Old[k] += p.Old[k]
			sum.New[k] += p.New[k]
		}
	}
	return sum, nil
}
