package board

import (
	"fmt"
	"html/template"
	"math"
	"sort"
	"time"

	"github.com/schemashift/schemashift/fleet"
)

// The charts over time of the fleet's heartbeats: shadow consistency
// against the plan's threshold, and per instance each path's latency and
// error rate, from fleet.Samples.

const (
	// chartPoints is about how many points a line over time has: the
	// samples are merged into steps of the time they span over it.
	chartPoints = 60
	// chartInstances is how many instances a chart draws, those with
	// the most calls (one colour each of the palette); the legend says
	// how many more there are.
	chartInstances = 8
)

// chartStep is the step the samples of h are merged into: the time from
// the first of them to now over chartPoints, at least a second.
func chartStep(h fleet.History, now time.Time) time.Duration {
	first := now
	for _, in := range h.Instances {
		if len(in.Samples) > 0 && in.Samples[0].At.Before(first) {
			first = in.Samples[0].At
		}
	}
	return max(now.Sub(first)/chartPoints, time.Second)
}

// consistencyRange is the y axis of the consistency chart: up to 1, down
// to a round distance under the lowest point or the threshold, so that a
// dip just under a threshold of 0.99 shows.
func consistencyRange(points []fleet.ConsistencyAt, threshold float64) (lo, hi float64) {
	low := threshold
	for _, p := range points {
		low = min(low, p.Ratio)
	}
	d := min(niceCeil(math.Max((1-low)*1.15, 0.01)), 1)
	return 1 - d, 1
}

// consistencyChart draws the fleet's shadow consistency per step against
// the plan's threshold, the points under it marked.
func consistencyChart(points []fleet.ConsistencyAt, threshold float64) template.HTML {
	s := series{Name: "fleet", Marks: true}
	for _, p := range points {
		s.Points = append(s.Points, point{At: p.At, Value: p.Ratio})
	}
	lo, hi := consistencyRange(points, threshold)
	th := threshold
	return lineChart(chart{ID: "consistency-over-time", Title: "Shadow consistency over time (all instances)", Unit: "matched / compared",
		Threshold: &th, Below: true, Lo: lo, Hi: hi, Empty: "no shadow comparison reported yet",
		Legend: []legendItem{{Label: "consistency per step", Colour: lineColour}, {Label: "plan's threshold", Colour: thresholdColour, Dash: true}}}, s)
}

// drawn picks the instances a chart draws: those with the most calls and
// comparisons in h, at most chartInstances, in the order of h (by id);
// and how many are left out.
func drawn(h fleet.History) (kept []fleet.InstanceSamples, left int) {
	type weighed struct {
		at int
		n  int64
	}
	w := make([]weighed, len(h.Instances))
	for i, in := range h.Instances {
		w[i].at = i
		for _, s := range in.Samples {
			w[i].n += s.OldCalls + s.NewCalls + s.Matched + s.Mismatched
		}
	}
	sort.SliceStable(w, func(a, b int) bool { return w[a].n > w[b].n })
	if len(w) > chartInstances {
		left, w = len(w)-chartInstances, w[:chartInstances]
	}
	sort.Slice(w, func(a, b int) bool { return w[a].at < w[b].at })
	for _, x := range w {
		kept = append(kept, h.Instances[x.at])
	}
	return kept, left
}

func leftOut(n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return "1 more instance, with fewer calls, is not drawn"
	}
	return fmt.Sprintf("%d more instances, with fewer calls, are not drawn", n)
}

// instanceLegend names the instances, each in its colour, then the key of
// the two dashes.
func instanceLegend(kept []fleet.InstanceSamples, solid, dashed string) []legendItem {
	var l []legendItem
	for i, in := range kept {
		l = append(l, legendItem{Label: in.ID, Colour: palette[i], Instance: in.ID})
	}
	return append(l, legendItem{Label: solid, Colour: muted}, legendItem{Label: dashed, Colour: muted, Dash: true})
}

// pathLatencyChart draws p50 (dashed) and p99 (solid) of one path's
// calls per instance over time, in ms; a step without a call on the
// path has no point.
func pathLatencyChart(h fleet.History, path string) template.HTML {
	kept, left := drawn(h)
	var ss []series
	for i, in := range kept {
		p50 := series{Name: in.ID + " p50", Instance: in.ID, Quantile: "p50", Path: path, Colour: palette[i], Dash: true}
		p99 := series{Name: in.ID + " p99", Instance: in.ID, Quantile: "p99", Path: path, Colour: palette[i]}
		for _, s := range in.Samples {
			hist := s.Latency.Old
			if path == "new" {
				hist = s.Latency.New
			}
			if hist.Total() == 0 {
				continue
			}
			p50.Points = append(p50.Points, point{At: s.At, Value: ms(hist.Quantile(0.5))})
			p99.Points = append(p99.Points, point{At: s.At, Value: ms(hist.Quantile(0.99))})
		}
		if len(p99.Points) > 0 {
			ss = append(ss, p99, p50)
		}
	}
	return lineChart(chart{ID: "latency-" + path + "-over-time", Title: "Latency of the " + path + " path per instance (p50, p99)", Unit: "ms",
		Empty: "no call on the " + path + " path reported yet", Legend: instanceLegend(kept, "p99", "p50"), Note: leftOut(left)}, ss...)
}

// errorRateChart draws each instance's error rate per path over time, in
// percent of its calls: new solid, old dashed.
func errorRateChart(h fleet.History) template.HTML {
	kept, left := drawn(h)
	var ss []series
	for i, in := range kept {
		for _, path := range []string{"new", "old"} {
			s := series{Name: in.ID + " " + path, Instance: in.ID, Path: path, Colour: palette[i], Dash: path == "old"}
			for _, x := range in.Samples {
				calls, errs := x.NewCalls, x.NewErrors
				if path == "old" {
					calls, errs = x.OldCalls, x.OldErrors
				}
				if calls > 0 {
					s.Points = append(s.Points, point{At: x.At, Value: 100 * float64(errs) / float64(calls)})
				}
			}
			if len(s.Points) > 0 {
				ss = append(ss, s)
			}
		}
	}
	return lineChart(chart{ID: "errors-over-time", Title: "Error rate per instance and path", Unit: "% of calls",
		Empty: "no call reported yet", Legend: instanceLegend(kept, "new path", "old path"), Note: leftOut(left)}, ss...)
}
