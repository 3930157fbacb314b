package chart

import (
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/netward/netward/console/web/format"
)

// Item is one row of a Ranking. Note adds context to its tooltip and table
// row ("38 users · Cloud storage").
type Item struct {
	Label string
	Value float64
	Note  string
}

// Ranking is a horizontal bar ranking (top apps by traffic or by users, top
// categories), largest first. Each row shows its label and value as text
// above a bar, so the chart reads well on a phone.
//
//	c := chart.Ranking{Title: "Top apps by traffic", Unit: chart.Bytes,
//		Items: []chart.Item{{Label: "Dropbox", Value: 3.2e9}, {Label: "GitHub", Value: 1.1e9}}}
type Ranking struct {
	ID, Title, Desc string
	Unit            Unit
	Items           []Item
	Color           Color
	// Max is the number of rows shown (default 10); the rest are counted in
	// the summary.
	Max int
}

// HTML returns the chart as an HTML fragment for html/template.
func (c Ranking) HTML() template.HTML { return html(c.draw) }

// Render writes the chart's HTML fragment to w.
func (c Ranking) Render(w io.Writer) error { return render(w, c.draw) }

const rankRow = 38

func (c Ranking) draw(w *svgWriter) {
	id := chartID(c.ID, "ranking", c.Title)
	max := c.Max
	if max <= 0 {
		max = 10
	}
	items := make([]Item, len(c.Items))
	for i, it := range c.Items {
		items[i] = Item{Label: it.Label, Value: clean(it.Value), Note: it.Note}
	}
	// Largest first, missing values last, ties by label: deterministic.
	sort.SliceStable(items, func(a, b int) bool {
		va, vb := items[a].Value, items[b].Value
		switch {
		case math.IsNaN(va) != math.IsNaN(vb):
			return !math.IsNaN(va)
		case va != vb && !math.IsNaN(va):
			return va > vb
		}
		return items[a].Label < items[b].Label
	})
	more := 0
	if len(items) > max {
		more = len(items) - max
		items = items[:max]
	}
	top := 0.0
	for _, it := range items {
		if it.Value > top {
			top = it.Value
		}
	}
	color := c.Color.hex(0)

	w.open("figure", "class", "chart chart-rank", "id", id)
	w.nl()
	if len(items) == 0 {
		emptyChart(w, id, c.Title, "120")
		w.close("figure")
		return
	}
	height := len(items)*rankRow + 2
	w.open("svg", "class", "chart-svg", "width", "100%", "height", strconv.Itoa(height), "role", "img",
		"aria-labelledby", id+"-title", "aria-describedby", id+"-desc", "font-size", fontSize)
	w.elem("title", c.Title, "id", id+"-title")
	desc := c.Desc
	if desc == "" {
		var b strings.Builder
		for i, it := range items {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(strconv.Itoa(i+1) + ". " + it.Label + " " + c.Unit.format(it.Value))
		}
		b.WriteString(".")
		if more > 0 {
			b.WriteString(" " + format.Int(int64(more)) + " more not shown.")
		}
		desc = b.String()
	}
	w.elem("desc", desc, "id", id+"-desc")
	w.nl()
	for i, it := range items {
		y := float64(i * rankRow)
		frac := 0.0
		if top > 0 && it.Value > 0 {
			frac = it.Value / top
		}
		tip := it.Label + ": " + c.Unit.format(it.Value)
		if it.Note != "" {
			tip += " · " + it.Note
		}
		w.open("g")
		w.elem("title", tip)
		w.elem("text", truncate(it.Label, 32), "x", "0", "y", num(y+14), "fill", "#1F2937")
		w.elem("text", c.Unit.format(it.Value), "x", "100%", "y", num(y+14), "text-anchor", "end", "fill", textColor)
		w.leaf("rect", "x", "0", "y", num(y+21), "width", "100%", "height", "8", "rx", "4", "fill", trackColor)
		if frac > 0 {
			w.leaf("rect", "x", "0", "y", num(y+21), "width", pct(math.Max(frac, 0.005)), "height", "8", "rx", "4", "fill", color)
		}
		w.close("g")
		w.nl()
	}
	w.close("svg")
	w.nl()
	rows := make([]tableRow, len(items))
	for i, it := range items {
		rows[i] = tableRow{head: it.Label, cells: []string{strconv.Itoa(i + 1), c.Unit.format(it.Value), it.Note}}
	}
	dataTable(w, id, c.Title, []string{"Name", "Rank", "Value", "Details"}, rows)
	w.close("figure")
}
