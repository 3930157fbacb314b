package chart

import (
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
)

// Sparkline is a small word-sized line without axes, for stat cards and
// table rows. Label names it for screen readers; the summary gives first,
// last and peak values.
//
//	chart.Sparkline{Label: "Traffic, last 7 days", Unit: chart.Bytes, Values: daily}.HTML()
type Sparkline struct {
	Label  string
	Unit   Unit
	Values []float64
	Color  Color
	// Width and Height in CSS pixels; default 120 × 32.
	Width, Height int
}

// HTML returns the sparkline's <svg> for html/template.
func (c Sparkline) HTML() template.HTML { return html(c.draw) }

// Render writes the sparkline's <svg> to w.
func (c Sparkline) Render(w io.Writer) error { return render(w, c.draw) }

func (c Sparkline) draw(w *svgWriter) {
	wd, ht := sizeOr(c.Width, 120, 2000), sizeOr(c.Height, 32, 500)
	var xs, ys []float64
	lo, hi := 0.0, math.Inf(-1)
	peak := math.NaN()
	for i, v := range c.Values {
		v = clean(v)
		if math.IsNaN(v) {
			continue
		}
		xs, ys = append(xs, float64(i)), append(ys, v)
		lo, hi = math.Min(lo, v), math.Max(hi, v)
		if math.IsNaN(peak) || v > peak {
			peak = v
		}
	}
	color := c.Color.hex(0)
	W, H := strconv.Itoa(wd), strconv.Itoa(ht)
	w.open("svg", "class", "spark", "width", W, "height", H, "viewBox", "0 0 "+W+" "+H, "preserveAspectRatio", "none", "role", "img",
		"aria-label", c.Label+": "+c.summary(ys), "focusable", "false")
	w.elem("title", c.Label)
	if len(ys) == 0 {
		w.leaf("line", "x1", "0", "x2", W, "y1", num(float64(ht)-1), "y2", num(float64(ht)-1), "stroke", gridColor)
		w.close("svg")
		return
	}
	if idx := lttb(xs, ys, wd); len(idx) < len(xs) {
		nx, ny := make([]float64, len(idx)), make([]float64, len(idx))
		for k, i := range idx {
			nx[k], ny[k] = xs[i], ys[i]
		}
		xs, ys = nx, ny
	}
	n := float64(len(c.Values) - 1)
	if hi == lo {
		hi = lo + 1
	}
	px := func(x float64) float64 {
		if n <= 0 {
			return float64(wd) / 2
		}
		return 1 + x/n*float64(wd-2)
	}
	py := func(v float64) float64 { return 2 + (float64(ht)-4)*(1-(v/2-lo/2)/(hi/2-lo/2)) }
	var line, area strings.Builder
	for i := range xs {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		line.WriteString(cmd + num(px(xs[i])) + " " + num(py(ys[i])))
	}
	area.WriteString("M" + num(px(xs[0])) + " " + num(py(math.Max(lo, 0))) + strings.Replace(line.String(), "M", "L", 1) +
		"L" + num(px(xs[len(xs)-1])) + " " + num(py(math.Max(lo, 0))) + "Z")
	w.leaf("path", "d", area.String(), "fill", color, "fill-opacity", "0.15")
	w.leaf("path", "d", line.String(), "fill", "none", "stroke", color, "stroke-width", "1.5", "stroke-linejoin", "round",
		"vector-effect", "non-scaling-stroke")
	w.close("svg")
}

func (c Sparkline) summary(ys []float64) string {
	if len(ys) == 0 {
		return "no data"
	}
	peak := ys[0]
	for _, v := range ys {
		peak = math.Max(peak, v)
	}
	return "from " + c.Unit.format(ys[0]) + " to " + c.Unit.format(ys[len(ys)-1]) + ", peak " + c.Unit.format(peak)
}
