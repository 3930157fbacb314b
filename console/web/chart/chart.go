// Package chart draws the console's charts as server-rendered SVG, readable
// without JavaScript: time series (lines or areas), stacked bars over time,
// horizontal ranking bars and sparklines.
//
// Each chart is a plain struct; its Render method writes an HTML fragment to
// an io.Writer and its HTML method returns the same fragment as template.HTML
// for html/template pages. The fragment is a <figure> holding a legend, an
// <svg role="img"> named by its <title> and described by a generated <desc>
// summary, and a data table in a <div class="visually-hidden"> that screen
// readers read (the console's stylesheet hides it from sight; without the
// stylesheet it shows).
//
// The SVG is responsive without scaling its text: the outer <svg> is 100%
// wide and has a fixed pixel height; text and bars are placed in percentages
// and the plot lines sit in an inner <svg> stretched with
// preserveAspectRatio="none" and non-scaling strokes. So a chart is as
// legible at 390 px as at 1,280 px.
//
// Output is deterministic (the same chart renders to the same bytes), every
// string from the caller is escaped, and hostile data is tolerated: NaN and
// ±Inf are treated as missing, values are clamped to ±1e300, unsorted and
// duplicate times are sorted, and long series are downsampled (see
// Line.MaxPoints and Bars.MaxBars) so thousands of points stay a few KB.
package chart

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/netward/netward/console/web/format"
)

// Unit says how a chart formats its values.
type Unit int

const (
	// Count values are formatted with thousands separators ("12,345").
	Count Unit = iota
	// Bytes values are formatted as B, KB, MB, GB... (binary multiples).
	Bytes
)

func (u Unit) format(v float64) string {
	if u == Bytes {
		return format.Bytes(v)
	}
	return format.Count(v)
}

// Color picks a colour from the Okabe–Ito palette, which people with every
// common form of colour blindness can tell apart. Auto takes the next colour
// in order (Blue, Orange, Green, Vermillion, Purple, Sky, Grey).
type Color int

// The palette. Suggested meanings in the console: Blue for allowed traffic
// or downloads, Orange for uploads and warns, Vermillion for blocks, Purple
// for bypasses.
const (
	Auto Color = iota
	Blue
	Orange
	Green
	Vermillion
	Purple
	Sky
	Grey
)

// hex returns the colour of c, or of the i-th automatic colour for Auto.
func (c Color) hex(i int) string {
	if c <= Auto || c > Grey {
		c = Color(i%int(Grey)) + 1
	}
	switch c {
	case Blue:
		return "#0072B2"
	case Orange:
		return "#E69F00"
	case Green:
		return "#009E73"
	case Vermillion:
		return "#D55E00"
	case Purple:
		return "#CC79A7"
	case Sky:
		return "#56B4E9"
	}
	return "#6B7280"
}

const (
	textColor  = "#4B5563" // 7.6:1 on white
	gridColor  = "#E5E7EB"
	axisColor  = "#9CA3AF"
	trackColor = "#EEF1F4"
	fontSize   = "12"
	maxValue   = 1e300 // larger magnitudes are clamped so ranges never overflow
	noData     = "No data for this period"
)

// html renders a chart through r into template.HTML.
func html(r func(*svgWriter)) template.HTML {
	var b bytes.Buffer
	r(newWriter(&b))
	return template.HTML(b.String()) //nolint:gosec // every caller string is escaped by svgWriter
}

// render writes a chart through r to w.
func render(w io.Writer, r func(*svgWriter)) error {
	var b bytes.Buffer
	r(newWriter(&b))
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("chart: write: %w", err)
	}
	return nil
}

// chartID returns id made safe for an HTML id attribute, or a stable id
// derived from the chart's kind and title.
func chartID(id, kind, title string) string {
	if id == "" {
		h := fnv.New32a()
		h.Write([]byte(kind + "\x00" + title))
		return fmt.Sprintf("chart-%08x", h.Sum32())
	}
	var b strings.Builder
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= 64 {
			break
		}
	}
	s := b.String()
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		s = "c-" + s
	}
	return s
}

// clean maps NaN and ±Inf to NaN (missing) and clamps the rest to ±maxValue.
func clean(v float64) float64 {
	switch {
	case math.IsNaN(v), math.IsInf(v, 0):
		return math.NaN()
	case v > maxValue:
		return maxValue
	case v < -maxValue:
		return -maxValue
	}
	return v
}

// unixSeconds is t as float seconds, which unlike time.Sub never saturates,
// so even a range from year 1 to year 9999 places points correctly.
func unixSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

// num formats a coordinate: at most two decimals, no trailing zeros.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	if s == "-0" {
		return "0"
	}
	return s
}

// pct formats a fraction of the width as a percentage coordinate.
func pct(f float64) string {
	if math.IsNaN(f) {
		f = 0
	}
	return num(math.Max(0, math.Min(100, f*100))) + "%"
}

// truncate shortens s to n runes with an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// legend writes the HTML legend of named, coloured series.
func legend(w *svgWriter, names []string, colors []string) {
	if len(names) < 2 {
		return
	}
	w.open("ul", "class", "chart-legend", "aria-hidden", "true")
	for i, n := range names {
		w.open("li")
		w.open("svg", "width", "12", "height", "12", "viewBox", "0 0 12 12", "focusable", "false")
		w.leaf("rect", "width", "12", "height", "12", "rx", "2", "fill", colors[i])
		w.close("svg")
		w.text(n)
		w.close("li")
	}
	w.close("ul")
}

// emptyChart writes the SVG of a chart without data: the frame, a message,
// and the same accessible name, so a page keeps its layout.
func emptyChart(w *svgWriter, id, title, height string) {
	w.open("svg", "class", "chart-svg", "width", "100%", "height", height, "role", "img",
		"aria-labelledby", id+"-title "+id+"-desc", "font-size", fontSize)
	w.elem("title", title, "id", id+"-title")
	w.elem("desc", noData+".", "id", id+"-desc")
	w.elem("text", noData, "x", "50%", "y", "50%", "text-anchor", "middle", "fill", textColor)
	w.close("svg")
}

// tableRow is one row of a chart's data table: a row header and its cells.
type tableRow struct {
	head  string
	cells []string
}

// dataTable writes the chart's data table for screen readers. The wrapper
// hides it: a <table> ignores the 1 px width of the visually-hidden pattern
// and would widen a phone's page.
func dataTable(w *svgWriter, id, caption string, cols []string, rows []tableRow) {
	w.open("div", "class", "visually-hidden")
	w.open("table", "id", id+"-data")
	w.elem("caption", caption)
	w.open("thead")
	w.open("tr")
	for _, c := range cols {
		w.elem("th", c, "scope", "col")
	}
	w.close("tr")
	w.close("thead")
	w.open("tbody")
	for _, r := range rows {
		w.open("tr")
		w.elem("th", r.head, "scope", "row")
		for _, c := range r.cells {
			w.elem("td", c)
		}
		w.close("tr")
	}
	w.close("tbody")
	w.close("table")
	w.close("div")
	w.nl()
}

// sizeOr returns v, or def when v is not in 1..limit (zero means default).
func sizeOr(v, def, limit int) int {
	if v <= 0 || v > limit {
		return def
	}
	return v
}

// locOrUTC returns loc, or UTC for nil.
func locOrUTC(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}
