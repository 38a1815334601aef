package fleet

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// Estimate reads a quantile within its bucket, calls spread evenly: it
// lies within the bucket Quantile names, grows with q, and tells a
// latency 1.5× another apart from one 2× it, which bucket bounds a
// factor of two apart cannot.
func TestHistogramEstimate(t *testing.T) {
	t.Parallel()
	fill := func(d time.Duration, n int64) Histogram {
		var h Histogram
		h[bucketOf(d)] += n
		return h
	}
	assert.Zero(t, Histogram{}.Estimate(0.99))
	h := fill(2*time.Millisecond, 100) // bucket [1.6ms, 3.2ms)
	assert.Equal(t, time.Duration(float64(1600*time.Microsecond)*math.Exp2(0.5)), h.Estimate(0.5), "half way through the bucket on a log scale")
	prev := time.Duration(0)
	for _, q := range []float64{0.01, 0.25, 0.5, 0.9, 0.99, 1} {
		e := h.Estimate(q)
		assert.GreaterOrEqual(t, e, prev, "q %v", q)
		assert.LessOrEqual(t, e, h.Quantile(q), "q %v: within the bucket Quantile names", q)
		assert.Greater(t, e, h.Quantile(q)/2, "q %v", q)
		prev = e
	}
	// 99 fast calls and 1 slow: p99 is the slow one's bucket's bottom.
	mixed := fill(100*time.Microsecond, 99)
	mixed[bucketOf(10*time.Millisecond)]++
	assert.Equal(t, upper(bucketOf(100*time.Microsecond)), mixed.Estimate(0.99))
	// The open last bucket: its lower bound.
	var top Histogram
	top[Buckets-1] = 5
	assert.Equal(t, upper(Buckets-2), top.Estimate(0.99))

	// A foreground spread over two decades (100µs to 10ms, evenly on a
	// log scale), then the same 1.5× slower: the estimate's ratio is
	// within a fifth of 1.5 in the bulk, a third at p99 (where the
	// distribution ends within a bucket); Quantile's is 1 or 2.
	spread := func(scale float64) Histogram {
		var h Histogram
		for i := range 1000 {
			d := time.Duration(scale * float64(100*time.Microsecond) * math.Pow(100, float64(i)/1000))
			h[bucketOf(d)]++
		}
		return h
	}
	base, slow := spread(1), spread(1.5)
	for q, within := range map[float64]float64{0.5: 0.2, 0.9: 0.2, 0.99: 0.3} {
		ratio := float64(slow.Estimate(q)) / float64(base.Estimate(q))
		assert.InDelta(t, 1.5, ratio, within, "q %v: estimate ratio %.2f", q, ratio)
		qr := float64(slow.Quantile(q)) / float64(base.Quantile(q))
		assert.True(t, qr == 1 || qr == 2, "q %v: bucket bounds' ratio %.2f", q, qr)
	}
	// Calls bunched within one bucket's width are where no bucketed
	// reading tells 1.5× apart: 1.0–2.0ms against 1.5–3.0ms reads near
	// 1.1× (what FleetForeground's doc warns of).
	bunched := func(scale float64) Histogram {
		var h Histogram
		for i := range 100 {
			h[bucketOf(time.Duration(scale*float64(time.Millisecond+time.Duration(i)*10*time.Microsecond)))]++
		}
		return h
	}
	assert.Less(t, float64(bunched(1.5).Estimate(0.9))/float64(bunched(1).Estimate(0.9)), 1.3)
}
