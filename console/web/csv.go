package web

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strings"
)

// WriteCSV sends the table as a CSV download named filename (".csv" added
// when missing): a header row of column labels, then one row per table row.
// Numeric columns carry the raw number (the cell's Sort value: bytes, not
// "1.2 GB"); tags and risks their names. Text cells that a spreadsheet would
// run as a formula (=, +, -, @, tab, CR) are prefixed with an apostrophe
// (OWASP "CSV injection").
func (r *Renderer) WriteCSV(w http.ResponseWriter, req *http.Request, filename string, t Table) {
	r.SetHeaders(w, req)
	name := strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			return c
		}
		return '-'
	}, strings.TrimSuffix(filename, ".csv"))
	if name == "" {
		name = "export"
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.csv"`, name))
	cw := csv.NewWriter(w)
	head := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		head[i] = c.Label
	}
	_ = cw.Write(head)
	for _, row := range t.Rows {
		rec := make([]string, len(t.Columns))
		for i := range t.Columns {
			if i < len(row.Cells) {
				rec[i] = csvValue(t.Columns[i], row.Cells[i])
			}
		}
		_ = cw.Write(rec)
	}
	cw.Flush()
}

func csvValue(col Column, c Cell) string {
	switch {
	case col.Numeric && c.Sort != "":
		return c.Sort
	case c.Tag != nil:
		return c.Tag.Label()
	case c.Risk != "":
		return string(c.Risk)
	}
	v := c.Text
	if c.Sub != "" {
		v += " (" + c.Sub + ")"
	}
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		v = "'" + v
	}
	return v
}
