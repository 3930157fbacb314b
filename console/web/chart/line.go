package chart

import (
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netward/netward/console/web/format"
)

// Point is one value of a time series: the quantity of the bucket that
// starts at T (bytes or transactions of that hour or day).
type Point struct {
	T time.Time
	V float64
}

// Series is one named line of a Line chart.
type Series struct {
	Name   string
	Color  Color
	Points []Point
}

// Line is a time-series chart of one or more series, drawn as lines or, with
// Area, as filled areas (traffic up and down, transactions per hour).
//
//	c := chart.Line{Title: "Traffic", Unit: chart.Bytes, Area: true,
//		Series: []chart.Series{{Name: "Download", Points: down}, {Name: "Upload", Points: up}}}
//	data.Traffic = c.HTML() // in the template: {{.Traffic}}
type Line struct {
	// ID is the id of the <figure>, prefix of the ids inside it; set it when
	// a page shows two charts with the same title. Default: from the title.
	ID string
	// Title names the chart for everyone (the SVG's <title>, the table's
	// caption). Desc replaces the generated summary (peaks and totals).
	Title, Desc string
	Unit        Unit
	Series      []Series
	Area        bool
	// From and To fix the time axis (the period shown); zero means the
	// range of the data.
	From, To time.Time
	// Step is the bucket size, used to format times in tooltips and the
	// table; zero infers it from the data.
	Step time.Duration
	// Location formats times; nil means UTC.
	Location *time.Location
	// Height in CSS pixels; default 220.
	Height int
	// MaxPoints bounds the points drawn per series (default 240): longer
	// series are downsampled with LTTB, keeping peaks.
	MaxPoints int
}

// HTML returns the chart as an HTML fragment for html/template.
func (c Line) HTML() template.HTML { return html(c.draw) }

// Render writes the chart's HTML fragment to w.
func (c Line) Render(w io.Writer) error { return render(w, c.draw) }

type linePrep struct {
	name, color  string
	pts          []Point // cleaned, sorted, downsampled
	total, peak  float64
	peakAt       time.Time
	finite, orig int
}

func (c Line) draw(w *svgWriter) {
	id := chartID(c.ID, "line", c.Title)
	loc := locOrUTC(c.Location)
	height := sizeOr(c.Height, 220, 2000)
	maxPts := sizeOr(c.MaxPoints, 240, 1<<30)
	series := make([]linePrep, 0, len(c.Series))
	var minT, maxT time.Time
	lo, hi := math.Inf(1), math.Inf(-1)
	step := c.Step
	for i, s := range c.Series {
		p := linePrep{name: s.Name, color: s.Color.hex(i), orig: len(s.Points), peak: math.NaN()}
		pts := make([]Point, len(s.Points))
		for j, pt := range s.Points {
			pts[j] = Point{T: pt.T, V: clean(pt.V)}
		}
		sort.SliceStable(pts, func(a, b int) bool { return pts[a].T.Before(pts[b].T) })
		for j, pt := range pts {
			if minT.IsZero() || pt.T.Before(minT) {
				minT = pt.T
			}
			if maxT.IsZero() || pt.T.After(maxT) {
				maxT = pt.T
			}
			if j > 0 && c.Step == 0 {
				if d := pt.T.Sub(pts[j-1].T); d > 0 && (step == 0 || d < step) {
					step = d
				}
			}
			if math.IsNaN(pt.V) {
				continue
			}
			p.finite++
			p.total = clean(p.total + pt.V)
			if math.IsNaN(p.peak) || pt.V > p.peak {
				p.peak, p.peakAt = pt.V, pt.T
			}
			lo, hi = math.Min(lo, pt.V), math.Max(hi, pt.V)
		}
		if len(pts) > maxPts {
			pts = downsample(pts, maxPts)
		}
		p.pts = pts
		series = append(series, p)
	}
	if step == 0 {
		step = time.Hour
	}
	from, to := c.From, c.To
	if from.IsZero() {
		from = minT
	}
	if to.IsZero() {
		to = maxT
	}
	if to.Before(from) {
		from, to = to, from
	}

	w.open("figure", "class", "chart chart-line", "id", id)
	w.nl()
	if math.IsInf(lo, 1) { // no finite value at all
		emptyChart(w, id, c.Title, strconv.Itoa(height))
		w.close("figure")
		return
	}
	names, colors := make([]string, len(series)), make([]string, len(series))
	for i, s := range series {
		names[i], colors[i] = s.name, s.color
	}
	legend(w, names, colors)

	const top, bottomGap = 16.0, 24.0
	plotH := float64(height) - top - bottomGap
	axis := newYAxis(lo, hi, c.Unit, 4)
	a, b := unixSeconds(from), unixSeconds(to)
	xf := func(t time.Time) float64 {
		if b <= a {
			return 0.5
		}
		return (unixSeconds(t) - a) / (b - a)
	}
	yp := func(v float64) float64 { return plotH * (1 - axis.pos(v)) }

	w.open("svg", "class", "chart-svg", "width", "100%", "height", strconv.Itoa(height), "role", "img",
		"aria-labelledby", id+"-title", "aria-describedby", id+"-desc", "font-size", fontSize)
	w.elem("title", c.Title, "id", id+"-title")
	desc := c.Desc
	if desc == "" {
		desc = c.summary(series, from, to, step, loc)
	}
	w.elem("desc", desc, "id", id+"-desc")
	w.nl()
	// Grid lines under the plot, value labels over it: they sit above their
	// line in the left gutter, with a halo where a line passes under them.
	gridLines(w, axis, func(v float64) float64 { return top + yp(v) })
	w.open("svg", "x", pct(gutter), "y", num(top), "width", pct(plotW), "height", num(plotH),
		"viewBox", "0 0 1000 "+num(plotH), "preserveAspectRatio", "none", "overflow", "visible")
	base := yp(math.Max(axis.lo, math.Min(0, axis.hi)))
	for pass := 0; pass < 2; pass++ {
		if pass == 0 && !c.Area {
			continue
		}
		for _, s := range series {
			var d strings.Builder
			for _, seg := range segments(s.pts) {
				if pass == 0 {
					d.WriteString("M" + num(1000*xf(seg[0].T)) + " " + num(base))
				}
				for k, pt := range seg {
					cmd := "L"
					if k == 0 && pass == 1 {
						cmd = "M"
					}
					d.WriteString(cmd + num(1000*xf(pt.T)) + " " + num(yp(pt.V)))
				}
				if pass == 0 {
					d.WriteString("L" + num(1000*xf(seg[len(seg)-1].T)) + " " + num(base) + "Z")
				}
			}
			if d.Len() == 0 {
				continue
			}
			if pass == 0 {
				w.leaf("path", "d", d.String(), "fill", s.color, "fill-opacity", "0.14", "stroke", "none")
			} else {
				w.leaf("path", "d", d.String(), "fill", "none", "stroke", s.color, "stroke-width", "2",
					"stroke-linejoin", "round", "stroke-linecap", "round", "vector-effect", "non-scaling-stroke")
			}
			w.nl()
		}
	}
	w.close("svg")
	w.nl()
	gridLabels(w, axis, func(v float64) float64 { return top + yp(v) }, true)
	// Point markers with tooltips while they stay few; the table has them all.
	for _, s := range series {
		if s.finite > 48 || len(s.pts) > 48 {
			continue
		}
		for _, pt := range s.pts {
			if math.IsNaN(pt.V) {
				continue
			}
			w.open("circle", "cx", pct(gutter+plotW*xf(pt.T)), "cy", num(top+yp(pt.V)), "r", "3", "fill", s.color,
				"stroke", "#fff", "stroke-width", "1.5")
			w.elem("title", s.name+" · "+format.Stamp(pt.T.In(loc), step)+": "+c.Unit.format(pt.V))
			w.close("circle")
		}
		w.nl()
	}
	ticks := timeTicks(from, to, loc, 7)
	for i := range ticks {
		ticks[i].at = gutter + plotW*ticks[i].at
	}
	xTicks(w, ticks, float64(height)-6)
	w.close("svg")
	w.nl()
	c.table(w, id, series, step, loc)
	w.close("figure")
}

// gutter is the share of the width left of the plot, where the value
// labels sit, and plotW the plot's share (a sliver is left on the right for
// the last marker); percentages, so the chart stays responsive.
const (
	gutter = 0.08
	plotW  = 0.91
)

// gridLines draws the horizontal grid; y maps a value to its pixel row.
func gridLines(w *svgWriter, axis yAxis, y func(float64) float64) {
	for _, t := range axis.ticks {
		col := gridColor
		if t == 0 {
			col = axisColor
		}
		w.leaf("line", "x1", "0", "x2", "100%", "y1", num(y(t)), "y2", num(y(t)), "stroke", col, "stroke-width", "1")
	}
	w.nl()
}

// gridLabels writes the value labels above their grid lines.
func gridLabels(w *svgWriter, axis yAxis, y func(float64) float64, zero bool) {
	for i, t := range axis.ticks {
		if t == 0 && !zero {
			continue
		}
		w.elem("text", axis.labels[i], "x", "0", "y", num(y(t)-4), "fill", textColor,
			"stroke", "#fff", "stroke-width", "3", "paint-order", "stroke")
	}
	w.nl()
}

// xTicks writes time labels along the bottom. Every other label has the
// class tick-alt, which the stylesheet hides on narrow screens.
func xTicks(w *svgWriter, ticks []timeTick, y float64) {
	for i, t := range ticks {
		anchor := "middle"
		if t.at < 0.05 {
			anchor = "start"
		} else if t.at > 0.93 {
			anchor = "end"
		}
		class := "tick"
		if len(ticks) > 4 && i%2 == 1 {
			class = "tick tick-alt"
		}
		w.elem("text", t.label, "class", class, "x", pct(t.at), "y", num(y), "text-anchor", anchor, "fill", textColor)
	}
	w.nl()
}

// segments splits points into runs without missing values.
func segments(pts []Point) [][]Point {
	var out [][]Point
	start := -1
	for i, p := range pts {
		if math.IsNaN(p.V) {
			if start >= 0 {
				out = append(out, pts[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, pts[start:])
	}
	return out
}

// downsample keeps n of the finite points with LTTB. Gaps (missing values)
// are not kept: a downsampled line is continuous.
func downsample(pts []Point, n int) []Point {
	var xs, ys []float64
	var keep []Point
	for _, p := range pts {
		if math.IsNaN(p.V) {
			continue
		}
		xs = append(xs, unixSeconds(p.T))
		ys = append(ys, p.V)
		keep = append(keep, p)
	}
	out := make([]Point, 0, n)
	for _, i := range lttb(xs, ys, n) {
		out = append(out, keep[i])
	}
	return out
}

func (c Line) summary(series []linePrep, from, to time.Time, step time.Duration, loc *time.Location) string {
	var b strings.Builder
	b.WriteString("From " + format.Stamp(from.In(loc), step) + " to " + format.Stamp(to.In(loc), step) + ".")
	for _, s := range series {
		b.WriteString(" " + s.name + ": ")
		if s.finite == 0 {
			b.WriteString("no data.")
			continue
		}
		b.WriteString("total " + c.Unit.format(s.total) + ", peak " + c.Unit.format(s.peak) +
			" at " + format.Stamp(s.peakAt.In(loc), step) + ".")
	}
	return b.String()
}

func (c Line) table(w *svgWriter, id string, series []linePrep, step time.Duration, loc *time.Location) {
	type row struct {
		t    time.Time
		vals []float64
	}
	var rows []*row
	byTime := map[int64]*row{}
	sampled, orig := 0, 0
	for i, s := range series {
		sampled += len(s.pts)
		orig += s.orig
		for _, p := range s.pts {
			k := p.T.UnixNano()
			r, ok := byTime[k]
			if !ok {
				r = &row{t: p.T, vals: make([]float64, len(series))}
				for j := range r.vals {
					r.vals[j] = math.NaN()
				}
				byTime[k] = r
				rows = append(rows, r)
			}
			r.vals[i] = p.V
		}
	}
	sort.SliceStable(rows, func(a, b int) bool { return rows[a].t.Before(rows[b].t) })
	caption := c.Title
	if sampled < orig {
		caption += " (sampled: " + format.Int(int64(sampled)) + " of " + format.Int(int64(orig)) + " points)"
	}
	cols := []string{"Time"}
	for _, s := range series {
		cols = append(cols, s.name)
	}
	out := make([]tableRow, len(rows))
	for i, r := range rows {
		out[i].head = format.Stamp(r.t.In(loc), step)
		for _, v := range r.vals {
			out[i].cells = append(out[i].cells, c.Unit.format(v))
		}
	}
	dataTable(w, id, caption, cols, out)
}
