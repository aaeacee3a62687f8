package report

import (
	"fmt"
	"html"
	"math"
	"strings"

	"github.com/spate-broker/spate/bench"
)

// A chart is one inline SVG line plot. Axes are linear (from zero), log10 (latencies) or
// percentile (HdrHistogram's distribution plot: x = log10(1/(1−p)), so 90%, 99%, 99.9% … are
// evenly spaced).
type chart struct {
	id, title string
	x, y      axis
	lines     []line
}

type axisKind int

const (
	linear axisKind = iota
	log10
	percentile
)

type axis struct {
	label  string
	kind   axisKind
	format func(float64) string // tick labels
}

// line is one series; NaN y values are gaps.
type line struct {
	name   string
	xs, ys []float64
	dash   bool
	color  string // empty: the palette's colour for the line's position
}

// Layout, in SVG user units.
const (
	chartW, chartH                     = 760, 320
	padLeft, padRight, padBot          = 72, 36, 46
	plotW                              = chartW - padLeft - padRight
	maxPercentileX                     = 6 // 99.9999%
	legendPerRow, legendStepX          = 4, 170
	legendMaxRunes                     = 24
	svgFont                            = `font-family="system-ui, sans-serif" font-size="11"`
	colorAxis, colorGrid, colorText    = "#555", "#e4e4e4", "#222"
	latencyAxisLabel, secondsAxisLabel = "latency", "seconds since start"
)

// palette: distinguishable, colour-blind-friendly (Okabe–Ito).
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}

// scale maps data values of one axis to [0, 1].
type scale struct {
	kind     axisKind
	lo, hi   float64 // in transformed units
	ticks    []float64
	tickText []string
}

func (s *scale) pos(v float64) float64 {
	t := min(max(s.transform(v), s.lo), s.hi)
	if s.hi == s.lo {
		return 0
	}
	return (t - s.lo) / (s.hi - s.lo)
}

func (s *scale) transform(v float64) float64 {
	switch s.kind {
	case log10:
		return math.Log10(max(v, 1e-9))
	case percentile:
		return math.Log10(1 / (1 - min(v, 99.9999)/100))
	default:
		return v
	}
}

// valid reports whether v can be drawn on the axis.
func (s *scale) valid(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && (s.kind != log10 || v > 0)
}

func newScale(a axis, vals []float64) *scale {
	s := &scale{kind: a.kind}
	vmin, vmax := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		// The percentile axis ends at the decade after the last percentile below 100; the
		// 100th (the maximum) is drawn at the right edge.
		if s.valid(v) && (a.kind != percentile || v < 100) {
			vmin, vmax = min(vmin, v), max(vmax, v)
		}
	}
	if math.IsInf(vmin, 1) { // no data
		vmin, vmax = 1, 10
	}
	format := a.format
	if format == nil {
		format = func(v float64) string { return fmt.Sprintf("%g", v) }
	}
	switch a.kind {
	case log10:
		s.lo, s.hi = math.Floor(math.Log10(vmin)), math.Ceil(math.Log10(vmax))
		if s.hi == s.lo {
			s.hi++
		}
		for e := s.lo; e <= s.hi; e++ {
			s.ticks = append(s.ticks, math.Pow(10, e))
		}
	case percentile:
		s.lo, s.hi = 0, max(min(math.Ceil(s.transform(vmax)-1e-9), maxPercentileX), 2)
		for e := 0.0; e <= s.hi; e++ {
			s.ticks = append(s.ticks, 100*(1-math.Pow(10, -e)))
		}
		format = func(v float64) string { return trimFloat(v) + "%" }
	default:
		step := niceStep(max(vmax, 0) / 5)
		s.lo, s.hi = 0, math.Ceil(max(vmax, 0)/step)*step
		if s.hi == 0 {
			s.hi = step
		}
		for v := 0.0; v <= s.hi+step/2; v += step {
			s.ticks = append(s.ticks, v)
		}
	}
	for _, t := range s.ticks {
		s.tickText = append(s.tickText, format(t))
	}
	return s
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.6f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// svg renders the chart as an inline <svg> element (valid XML, no external references).
func (c *chart) svg() string {
	var xs, ys []float64
	for _, l := range c.lines {
		xs = append(xs, l.xs...)
		ys = append(ys, l.ys...)
	}
	sx, sy := newScale(c.x, xs), newScale(c.y, ys)
	rows := (len(c.lines) + legendPerRow - 1) / legendPerRow
	top := 30 + 16*rows // title, then the legend's rows
	box := frame{top: top, h: chartH - top - padBot}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" %s>`,
		esc(c.id), chartW, chartH, chartW, chartH, esc(c.title), svgFont)
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.title))
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13" font-weight="600" fill="%s">%s</text>`, padLeft, colorText, esc(c.title))
	// Grid, ticks and labels.
	b.WriteString(`<g class="axis">`)
	for i, t := range sy.ticks {
		y := box.y(sy, t)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/>`, padLeft, padLeft+plotW, y, y, colorGrid)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle" fill="%s">%s</text>`, padLeft-6, y, colorAxis, esc(sy.tickText[i]))
	}
	for i, t := range sx.ticks {
		x := box.x(sx, t)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s"/>`, x, x, box.top, box.top+box.h, colorGrid)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%s</text>`, x, box.top+box.h+16, colorAxis, esc(sx.tickText[i]))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`, padLeft, box.top, plotW, box.h, colorAxis)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text>`, padLeft+plotW/2, chartH-6, colorAxis, esc(c.x.label))
	fmt.Fprintf(&b, `<text transform="translate(14 %d) rotate(-90)" text-anchor="middle" fill="%s">%s</text>`, box.top+box.h/2, colorAxis, esc(c.y.label))
	b.WriteString(`</g>`)
	// Lines, then the legend.
	for i, l := range c.lines {
		color := l.color
		if color == "" {
			color = palette[i%len(palette)]
		}
		dash := ""
		if l.dash {
			dash = ` stroke-dasharray="5 3"`
		}
		fmt.Fprintf(&b, `<g class="series" data-series="%s">`, esc(l.name))
		for _, seg := range box.segments(l, sx, sy) {
			fmt.Fprintf(&b, `<polyline class="line" fill="none" stroke="%s" stroke-width="1.6"%s points="%s"><title>%s</title></polyline>`,
				color, dash, seg, esc(l.name))
		}
		b.WriteString(`</g>`)
		lx, ly := padLeft+(i%legendPerRow)*legendStepX, 32+16*(i/legendPerRow)
		name := l.name
		if r := []rune(name); len(r) > legendMaxRunes {
			name = string(r[:legendMaxRunes-1]) + "…"
		}
		fmt.Fprintf(&b, `<g class="legend"><line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d" dominant-baseline="middle" fill="%s">%s</text></g>`,
			lx, lx+18, ly, ly, color, dash, lx+22, ly, colorText, esc(name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// frame is the plot area: from top, h high, padLeft to padLeft+plotW wide.
type frame struct{ top, h int }

func (f frame) x(s *scale, v float64) float64 { return padLeft + plotW*s.pos(v) }
func (f frame) y(s *scale, v float64) float64 { return float64(f.top) + float64(f.h)*(1-s.pos(v)) }

// segments returns the line's polyline point lists, split at gaps.
func (f frame) segments(l line, sx, sy *scale) []string {
	var segs []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			segs = append(segs, cur.String())
			cur.Reset()
		}
	}
	for i := range l.xs {
		if i >= len(l.ys) || !sx.valid(l.xs[i]) || !sy.valid(l.ys[i]) {
			flush()
			continue
		}
		x, y := f.x(sx, l.xs[i]), f.y(sy, l.ys[i])
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		fmt.Fprintf(&cur, "%.1f,%.1f", x, y)
	}
	flush()
	return segs
}

func esc(s string) string { return html.EscapeString(s) }

// Axis helpers for the report's charts.

func secondsAxis() axis { return axis{label: secondsAxisLabel, format: trimFloat} }

func latencyAxis() axis {
	return axis{label: latencyAxisLabel, kind: log10, format: func(us float64) string { return bench.Micros(int64(us)) }}
}

func rateAxis(label string) axis {
	return axis{label: label, format: func(v float64) string { return bench.Count(v) }}
}

// rates turns a series' per-interval counts into per-second rates at each sample's time.
func rates(series []bench.Sample, count func(bench.Sample) int64) (xs, ys []float64) {
	prev := 0.0
	for _, s := range series {
		dt := s.TS - prev
		prev = s.TS
		if dt <= 0 {
			continue
		}
		xs = append(xs, s.TS)
		ys = append(ys, float64(count(s))/dt)
	}
	return xs, ys
}

// latencies returns one percentile of each sample (NaN where nothing was recorded).
func latencies(series []bench.Sample, pick func(bench.Sample) (bench.LatencyPoint, int64)) (xs, ys []float64) {
	for _, s := range series {
		p, v := pick(s)
		xs = append(xs, s.TS)
		if p.Count == 0 {
			ys = append(ys, math.NaN())
		} else {
			ys = append(ys, float64(v))
		}
	}
	return xs, ys
}

// distribution returns a latency's percentile spectrum, up to the resolution its count gives
// (1 in count) and then the maximum.
func distribution(l *bench.Latency) (xs, ys []float64) {
	if l == nil {
		return nil, nil
	}
	limit := 100 * (1 - 1/float64(l.Count))
	for _, p := range l.Percentiles {
		if p.P > limit && p.P < 100 {
			continue
		}
		xs = append(xs, p.P)
		ys = append(ys, float64(p.Us))
	}
	return xs, ys
}
