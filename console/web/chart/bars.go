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

// Layer is one stacked quantity of a Bars chart (Blocks, Warns, Bypasses).
type Layer struct {
	Name  string
	Color Color
}

// Bucket is one bar: the values of each layer, in Layers order, for the
// bucket that starts at T. Missing values count as zero.
type Bucket struct {
	T      time.Time
	Values []float64
}

// Bars is a stacked bar chart over time (blocks / warns / bypasses per day).
// Bars are evenly spaced in time order; negative and missing values are drawn
// as zero (the table shows them as they are).
//
//	c := chart.Bars{Title: "Policy actions", Step: 24 * time.Hour,
//		Layers: []chart.Layer{{"Blocks", chart.Vermillion}, {"Warns", chart.Orange}, {"Bypasses", chart.Purple}},
//		Buckets: days}
type Bars struct {
	ID, Title, Desc string
	Unit            Unit
	Layers          []Layer
	Buckets         []Bucket
	// Step is the bucket size (an hour, a day); zero infers it.
	Step     time.Duration
	Location *time.Location
	Height   int // default 220
	// MaxBars bounds the bars drawn (default 120): more buckets are merged,
	// neighbours summed, so totals stay right.
	MaxBars int
}

// HTML returns the chart as an HTML fragment for html/template.
func (c Bars) HTML() template.HTML { return html(c.draw) }

// Render writes the chart's HTML fragment to w.
func (c Bars) Render(w io.Writer) error { return render(w, c.draw) }

func (c Bars) draw(w *svgWriter) {
	id := chartID(c.ID, "bars", c.Title)
	loc := locOrUTC(c.Location)
	height := sizeOr(c.Height, 220, 2000)
	maxBars := sizeOr(c.MaxBars, 120, 1<<30)
	nl := len(c.Layers)
	buckets := make([]Bucket, len(c.Buckets))
	for i, b := range c.Buckets {
		vals := make([]float64, nl)
		for j := range vals {
			vals[j] = math.NaN()
			if j < len(b.Values) {
				vals[j] = clean(b.Values[j])
			}
		}
		buckets[i] = Bucket{T: b.T, Values: vals}
	}
	sort.SliceStable(buckets, func(a, b int) bool { return buckets[a].T.Before(buckets[b].T) })
	step := c.Step
	if step <= 0 {
		for i := 1; i < len(buckets); i++ {
			if d := buckets[i].T.Sub(buckets[i-1].T); d > 0 && (step == 0 || d < step) {
				step = d
			}
		}
		if step <= 0 {
			step = 24 * time.Hour
		}
	}
	if k := (len(buckets) + maxBars - 1) / maxBars; k > 1 {
		buckets, step = mergeBuckets(buckets, k, nl), step*time.Duration(k)
	}
	totals := make([]float64, len(buckets))
	layerTotals := make([]float64, nl)
	hi := 0.0
	for i, b := range buckets {
		for j, v := range b.Values {
			if v > 0 {
				totals[i] = clean(totals[i] + v)
				layerTotals[j] = clean(layerTotals[j] + v)
			}
		}
		hi = math.Max(hi, totals[i])
	}

	w.open("figure", "class", "chart chart-bars", "id", id)
	w.nl()
	if len(buckets) == 0 || nl == 0 {
		emptyChart(w, id, c.Title, strconv.Itoa(height))
		w.close("figure")
		return
	}
	names, colors := make([]string, nl), make([]string, nl)
	for i, l := range c.Layers {
		names[i], colors[i] = l.Name, l.Color.hex(i)
	}
	legend(w, names, colors)

	const top, bottomGap = 16.0, 24.0
	plotH := float64(height) - top - bottomGap
	axis := newYAxis(0, hi, c.Unit, 4)
	yp := func(v float64) float64 { return top + plotH*(1-axis.pos(v)) }

	w.open("svg", "class", "chart-svg", "width", "100%", "height", strconv.Itoa(height), "role", "img",
		"aria-labelledby", id+"-title", "aria-describedby", id+"-desc", "font-size", fontSize)
	w.elem("title", c.Title, "id", id+"-title")
	desc := c.Desc
	first, last := buckets[0].T.In(loc), buckets[len(buckets)-1].T.In(loc)
	if desc == "" {
		var b strings.Builder
		b.WriteString("From " + format.Stamp(first, step) + " to " + format.Stamp(last, step) + ".")
		for j, n := range names {
			b.WriteString(" " + n + ": " + c.Unit.format(layerTotals[j]) + ".")
		}
		desc = b.String()
	}
	w.elem("desc", desc, "id", id+"-desc")
	w.nl()
	gridLines(w, axis, yp)
	n := float64(len(buckets))
	slot := 1 / n
	barW := slot * 0.68
	for i, b := range buckets {
		x := gutter + plotW*(float64(i)*slot+(slot-barW)/2)
		var tip strings.Builder
		tip.WriteString(format.Stamp(b.T.In(loc), step))
		for j, v := range b.Values {
			tip.WriteString(" · " + names[j] + " " + c.Unit.format(v))
		}
		w.open("g")
		w.elem("title", tip.String())
		acc := 0.0
		for j, v := range b.Values {
			if !(v > 0) {
				continue
			}
			y0, y1 := yp(acc), yp(clean(acc+v))
			acc = clean(acc + v)
			if y0-y1 < 0.01 {
				continue
			}
			w.leaf("rect", "x", pct(x), "y", num(y1), "width", pct(plotW*barW), "height", num(y0-y1), "fill", colors[j])
		}
		w.close("g")
	}
	w.nl()
	gridLabels(w, axis, yp, true)
	// Label about six bars, centred under them.
	every := int(math.Ceil(n / 6))
	span := last.Sub(first) + step
	var ticks []timeTick
	for i := 0; i < len(buckets); i += every {
		ticks = append(ticks, timeTick{at: gutter + plotW*(float64(i)+0.5)*slot, label: format.Tick(buckets[i].T.In(loc), span)})
	}
	xTicks(w, ticks, float64(height)-6)
	w.close("svg")
	w.nl()

	rows := make([]tableRow, len(buckets))
	for i, b := range buckets {
		rows[i].head = format.Stamp(b.T.In(loc), step)
		for _, v := range b.Values {
			rows[i].cells = append(rows[i].cells, c.Unit.format(v))
		}
	}
	dataTable(w, id, c.Title, append([]string{"Time"}, names...), rows)
	w.close("figure")
}

// mergeBuckets sums every k neighbouring buckets into one that starts at the
// first one's time.
func mergeBuckets(in []Bucket, k, layers int) []Bucket {
	var out []Bucket
	for i := 0; i < len(in); i += k {
		m := Bucket{T: in[i].T, Values: make([]float64, layers)}
		for j := range m.Values {
			m.Values[j] = math.NaN()
		}
		for _, b := range in[i:min(i+k, len(in))] {
			for j, v := range b.Values {
				if math.IsNaN(v) {
					continue
				}
				if math.IsNaN(m.Values[j]) {
					m.Values[j] = 0
				}
				m.Values[j] = clean(m.Values[j] + v)
			}
		}
		out = append(out, m)
	}
	return out
}
