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
	// Colour is the line's (lineColour when ""); Dash draws it dashed.
	Colour string
	Dash   bool
	// Instance, when set, is the fleet instance the line is of
	// (data-instance); Quantile or Path what of it (data-quantile,
	// data-path).
	Instance, Quantile, Path string
	// Marks draws a dot at every point (and, under a chart's threshold
	// with Below set, a larger one in the threshold's colour).
	Marks bool
}

// legendItem is one entry of a chart's legend: a line's colour and dash
// and what it stands for (an instance when Instance is set).
type legendItem struct {
	Label, Colour string
	Dash          bool
	Instance      string
}

// chart is what a line chart says around its lines.
type chart struct {
	ID, Title, Unit string
	// Threshold, when set, is drawn as a dashed line labelled threshold;
	// with Below, the points under it are marked.
	Threshold *float64
	Below     bool
	// Lo and Hi, when Hi > Lo, fix the y axis; else it runs from zero
	// to a round number over the highest value.
	Lo, Hi float64
	Legend []legendItem
	// Note is said under the legend (what was left out).
	Note string
	// Empty is said when there is no point to draw.
	Empty string
}

const (
	chartW, chartH                     = 640, 220
	padL, padR, padT, padB             = 72, 16, 30, 40
	plotW, plotH                       = chartW - padL - padR, chartH - padT - padB
	lineColour, thresholdColour, muted = "#1a73e8", "#b3261e", "#5f6368"
	legendRow                          = 18
)

// palette colours the instances of a chart, in order: distinct to the
// eye, none of them the threshold's red.
var palette = [chartInstances]string{"#1a73e8", "#e8710a", "#188038", "#9334e6", "#007b83", "#c5221f", "#795548", "#f538a0"}

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

func svgOpen(b *strings.Builder, id, title string, height int) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="%s" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`,
		esc(id), chartW, height, chartW, height, esc(title))
	fmt.Fprintf(b, `<title>%s</title><rect width="%d" height="%d" fill="#fff"/>`, esc(title), chartW, height)
	fmt.Fprintf(b, `<text class="chart-title" x="%d" y="18" font-size="13" font-weight="600">%s</text>`, padL, esc(title))
}

// legendText is how much of a label a legend shows: a long one is cut,
// its whole text in the entry's tooltip.
func legendText(s string) string {
	const most = 36
	r := []rune(s)
	if len(r) <= most {
		return s
	}
	return string(r[:most-1]) + "…"
}

// layoutLegend places the legend's entries in rows under the plot, by an
// estimate of their width (the server knows no font): x and row of each.
func layoutLegend(items []legendItem) (xs []float64, rows []int, n int) {
	x, row := float64(padL), 0
	for _, it := range items {
		w := 34 + 6.5*float64(len([]rune(legendText(it.Label))))
		if x+w > chartW-padR && x > padL {
			x, row = padL, row+1
		}
		xs, rows = append(xs, x), append(rows, row)
		x += w + 12
	}
	if len(items) > 0 {
		n = row + 1
	}
	return xs, rows, n
}

// lineChart draws the series over time.
func lineChart(c chart, ss ...series) template.HTML {
	var b strings.Builder
	xs, rows, legendRows := layoutLegend(c.Legend)
	if c.Note != "" {
		legendRows++
	}
	height := chartH + legendRows*legendRow
	svgOpen(&b, c.ID, c.Title, height)
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
		empty := c.Empty
		if empty == "" {
			empty = "no data yet"
		}
		fmt.Fprintf(&b, `<text class="empty" x="%d" y="%d" fill="%s">%s</text></svg>`, padL, padT+plotH/2, muted, esc(empty))
		return template.HTML(b.String()) // #nosec: built here, every text escaped
	}
	lo, hi := 0.0, niceCeil(top)
	if c.Hi > c.Lo {
		lo, hi = c.Lo, c.Hi
	}
	span := t1.Sub(t0)
	x := func(t time.Time) float64 {
		if span <= 0 {
			return padL + plotW/2
		}
		return padL + float64(plotW)*float64(t.Sub(t0))/float64(span)
	}
	y := func(v float64) float64 {
		v = min(max(v, lo), hi)
		return padT + float64(plotH)*(1-(v-lo)/(hi-lo))
	}
	// Axes, grid and their labels.
	for i := 0; i <= 4; i++ {
		v := lo + (hi-lo)*float64(i)/4
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
		fmt.Fprintf(&b, `<line class="threshold" data-value="%s" x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/>`,
			esc(num(*c.Threshold)), padL, ty, padL+plotW, ty, thresholdColour)
		fmt.Fprintf(&b, `<text class="threshold-label" x="%d" y="%.1f" text-anchor="end" fill="%s">threshold %s</text>`, padL+plotW, ty-4, thresholdColour, esc(num(*c.Threshold)))
	}
	for _, s := range ss {
		colour := s.Colour
		if colour == "" {
			colour = lineColour
		}
		var pts []string
		for _, p := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.At), y(p.Value)))
		}
		attrs := fmt.Sprintf(`data-series="%s"`, esc(s.Name))
		for _, a := range [][2]string{{"data-instance", s.Instance}, {"data-quantile", s.Quantile}, {"data-path", s.Path}} {
			if a[1] != "" {
				attrs += fmt.Sprintf(` %s="%s"`, a[0], esc(a[1]))
			}
		}
		dash := ""
		if s.Dash {
			dash = ` stroke-dasharray="4 3"`
		}
		fmt.Fprintf(&b, `<polyline class="series" %s fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>`, attrs, colour, dash, strings.Join(pts, " "))
		for _, p := range s.Points {
			switch {
			case s.Marks && c.Below && c.Threshold != nil && p.Value < *c.Threshold:
				fmt.Fprintf(&b, `<circle class="below" cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s: %s, below the threshold %s</title></circle>`,
					x(p.At), y(p.Value), thresholdColour, p.At.UTC().Format("15:04:05"), esc(num(p.Value)), esc(num(*c.Threshold)))
			case s.Marks || len(s.Points) == 1:
				fmt.Fprintf(&b, `<circle class="point" cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s: %s</title></circle>`,
					x(p.At), y(p.Value), colour, p.At.UTC().Format("15:04:05"), esc(num(p.Value)))
			}
		}
	}
	if len(c.Legend) > 0 || c.Note != "" {
		b.WriteString(`<g class="legend">`)
		base := padT + plotH + padB + 6
		for i, it := range c.Legend {
			ly := float64(base + rows[i]*legendRow)
			dash := ""
			if it.Dash {
				dash = ` stroke-dasharray="4 3"`
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`, xs[i], ly, xs[i]+26, ly, it.Colour, dash)
			inst := ""
			class := "legend-key"
			if it.Instance != "" {
				inst, class = fmt.Sprintf(` data-instance="%s"`, esc(it.Instance)), "legend-instance"
			}
			fmt.Fprintf(&b, `<text class="%s"%s x="%.1f" y="%.1f"><title>%s</title>%s</text>`, class, inst, xs[i]+32, ly+4, esc(it.Label), esc(legendText(it.Label)))
		}
		if c.Note != "" {
			fmt.Fprintf(&b, `<text class="note" x="%d" y="%d" fill="%s">%s</text>`, padL, base+(legendRows-1)*legendRow+4, muted, esc(c.Note))
		}
		b.WriteString(`</g>`)
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
	svgOpen(&b, "latency", "Latency and errors per path (all instances)", chartH)
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
