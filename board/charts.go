package board

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/schemashift/schemashift/report"
)

// The board's charts are SVG drawn here, on the server, and inlined in the
// page: the page loads no script library and no external asset, and a
// chart is as current as the page it is on. Every text in them is
// escaped; every number is the data's.

// point is one value of a series at a time.
type point struct {
	At    time.Time
	Value float64
}

// series is one line of a chart.
type series struct {
	Name   string
	Points []point
}

// chart is what a line chart says around its lines.
type chart struct {
	ID, Title, Unit string
	// Threshold, when set, is drawn as a dashed line labelled Threshold.
	Threshold *float64
}

const (
	chartW, chartH                     = 640, 220
	padL, padR, padT, padB             = 72, 16, 30, 40
	plotW, plotH                       = chartW - padL - padR, chartH - padT - padB
	lineColour, thresholdColour, muted = "#1a73e8", "#b3261e", "#5f6368"
)

var esc = template.HTMLEscapeString

// num writes v for an axis label: whole numbers as they are, small ones
// with three significant digits.
func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for an axis.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func svgOpen(b *strings.Builder, id, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="%s" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`,
		esc(id), chartW, chartH, chartW, chartH, esc(title))
	fmt.Fprintf(b, `<title>%s</title><rect width="%d" height="%d" fill="#fff"/>`, esc(title), chartW, chartH)
	fmt.Fprintf(b, `<text class="chart-title" x="%d" y="18" font-size="13" font-weight="600">%s</text>`, padL, esc(title))
}

// lineChart draws the series over time, from zero up.
func lineChart(c chart, ss ...series) template.HTML {
	var b strings.Builder
	svgOpen(&b, c.ID, c.Title)
	var t0, t1 time.Time
	top := 0.0
	n := 0
	for _, s := range ss {
		for _, p := range s.Points {
			if n == 0 || p.At.Before(t0) {
				t0 = p.At
			}
			if n == 0 || p.At.After(t1) {
				t1 = p.At
			}
			top = max(top, p.Value)
			n++
		}
	}
	if c.Threshold != nil {
		top = max(top, *c.Threshold)
	}
	if n == 0 {
		fmt.Fprintf(&b, `<text class="empty" x="%d" y="%d" fill="%s">no data yet</text></svg>`, padL, padT+plotH/2, muted)
		return template.HTML(b.String()) // #nosec: built here, every text escaped
	}
	top = niceCeil(top)
	span := t1.Sub(t0)
	x := func(t time.Time) float64 {
		if span <= 0 {
			return padL + plotW/2
		}
		return padL + float64(plotW)*float64(t.Sub(t0))/float64(span)
	}
	y := func(v float64) float64 { return padT + float64(plotH)*(1-v/top) }
	// Axes, grid and their labels.
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/>`, padL, y(v), padL+plotW, y(v))
		fmt.Fprintf(&b, `<text class="y-label" x="%d" y="%.1f" text-anchor="end" fill="%s">%s</text>`, padL-6, y(v)+4, muted, esc(num(v)))
	}
	fmt.Fprintf(&b, `<text class="unit" x="12" y="%d" fill="%s" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`,
		padT+plotH/2, muted, padT+plotH/2, esc(c.Unit))
	labels := []time.Time{t0}
	if span > 0 {
		labels = append(labels, t0.Add(span/2), t1)
	}
	for i, t := range labels {
		anchor := []string{"start", "middle", "end"}[i]
		if span <= 0 {
			anchor = "middle"
		}
		fmt.Fprintf(&b, `<text class="x-label" x="%.1f" y="%d" text-anchor="%s" fill="%s">%s</text>`, x(t), padT+plotH+16, anchor, muted, t.UTC().Format("15:04:05"))
	}
	fmt.Fprintf(&b, `<text class="x-span" x="%d" y="%d" text-anchor="end" fill="%s">UTC, over %s</text>`, padL+plotW, padT+plotH+32, muted, esc(spanText(span)))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, padL, padT+plotH, padL+plotW, padT+plotH)
	if c.Threshold != nil {
		ty := y(*c.Threshold)
		fmt.Fprintf(&b, `<line class="threshold" x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/>`, padL, ty, padL+plotW, ty, thresholdColour)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="%s">threshold %s</text>`, padL+plotW, ty-4, thresholdColour, esc(num(*c.Threshold)))
	}
	for _, s := range ss {
		var pts []string
		for _, p := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.At), y(p.Value)))
		}
		fmt.Fprintf(&b, `<polyline class="series" data-series="%s" fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`,
			esc(s.Name), lineColour, strings.Join(pts, " "))
		if len(pts) == 1 {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, x(s.Points[0].At), y(s.Points[0].Value), lineColour)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec: built here, every text escaped
}

func spanText(d time.Duration) string {
	if d <= 0 {
		return "one point"
	}
	return report.HumanDuration(d)
}

// latencyChart draws each path's p50 and p99 as bars, with its calls and
// error rate under them: over every instance's heartbeats (the fleet's
// reads add the instances' histograms up).
func latencyChart(paths []Path) template.HTML {
	var b strings.Builder
	svgOpen(&b, "latency", "Latency and errors per path (all instances)")
	top := 0.0
	for _, p := range paths {
		top = max(top, ms(p.P99), ms(p.P50))
	}
	if top == 0 {
		fmt.Fprintf(&b, `<text class="empty" x="%d" y="%d" fill="%s">no call reported yet</text></svg>`, padL, padT+plotH/2, muted)
		return template.HTML(b.String()) // #nosec: built here, every text escaped
	}
	top = niceCeil(top)
	y := func(v float64) float64 { return padT + float64(plotH)*(1-v/top) }
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/>`, padL, y(v), padL+plotW, y(v))
		fmt.Fprintf(&b, `<text class="y-label" x="%d" y="%.1f" text-anchor="end" fill="%s">%s</text>`, padL-6, y(v)+4, muted, esc(num(v)))
	}
	fmt.Fprintf(&b, `<text class="unit" x="12" y="%d" fill="%s" transform="rotate(-90 12 %d)" text-anchor="middle">ms</text>`, padT+plotH/2, muted, padT+plotH/2)
	group := float64(plotW) / float64(max(1, len(paths)))
	const barW = 48.0
	for i, p := range paths {
		gx := padL + group*float64(i) + group/2
		for k, q := range []struct {
			name   string
			v      time.Duration
			colour string
		}{{"p50", p.P50, "#8ab4f8"}, {"p99", p.P99, lineColour}} {
			bx := gx - barW - 4 + float64(k)*(barW+8)
			v := ms(q.v)
			fmt.Fprintf(&b, `<rect class="bar" data-path="%s" data-quantile="%s" data-ms="%s" x="%.1f" y="%.1f" width="%.0f" height="%.1f" fill="%s"/>`,
				esc(p.Path), q.name, esc(num(v)), bx, y(v), barW, y(0)-y(v), q.colour)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s %s ms</text>`, bx+barW/2, y(v)-4, q.name, esc(num(v)))
		}
		fill := "#1d1d1f"
		if p.Errors > 0 {
			fill = thresholdColour
		}
		fmt.Fprintf(&b, `<text class="path-label" x="%.1f" y="%d" text-anchor="middle" fill="%s">%s path · %d calls · errors %.2f %%</text>`,
			gx, padT+plotH+16, fill, esc(p.Path), p.Calls, 100*p.ErrorRate)
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, padL, padT+plotH, padL+plotW, padT+plotH)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec: built here, every text escaped
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
