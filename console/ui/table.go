package ui

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/netward/netward/console/web"
)

// listPage is the rows per page of the long lists (machines, devices,
// indicators, alerts): a 1,000-machine fleet on one page would be ~600 KB,
// twice the page budget.
const listPage = 100

// pageTable sorts t's rows by ?sort=&dir= (a sortable column; numeric
// columns by their Sort value) and, for a page (not a CSV export), keeps
// one page of rows with a pager. A table that fits one page keeps its
// client-side sort; a paged one sorts on the server only, since the
// browser holds only some of the rows.
func pageTable(r *http.Request, t *web.Table) {
	q := r.URL.Query()
	if key := q.Get("sort"); key != "" {
		col := slices.IndexFunc(t.Columns, func(c web.Column) bool { return c.Key == key && c.Sortable })
		if col >= 0 {
			t.Sort, t.Desc = key, q.Get("dir") == "desc"
			numeric := t.Columns[col].Numeric
			val := func(row web.Row) string {
				if col >= len(row.Cells) {
					return ""
				}
				c := row.Cells[col]
				return cmp.Or(c.Sort, c.Text)
			}
			slices.SortStableFunc(t.Rows, func(a, b web.Row) int {
				va, vb := val(a), val(b)
				c := 0
				if fa, ea := strconv.ParseFloat(va, 64); numeric || ea == nil {
					fb, eb := strconv.ParseFloat(vb, 64)
					if ea == nil && eb == nil {
						c = cmp.Compare(fa, fb)
					} else {
						c = strings.Compare(va, vb)
					}
				} else {
					c = strings.Compare(strings.ToLower(va), strings.ToLower(vb))
				}
				if t.Desc {
					c = -c
				}
				return c
			})
		}
	}
	// The filter box (?q=) filters on the server too, so it works without
	// the script and across pages.
	if f := strings.ToLower(strings.TrimSpace(q.Get("q"))); f != "" && t.Filter {
		t.Rows = slices.DeleteFunc(t.Rows, func(row web.Row) bool {
			for _, c := range row.Cells {
				if strings.Contains(strings.ToLower(c.Text+" "+c.Sub), f) {
					return false
				}
			}
			return true
		})
	}
	if csvWanted(r) || len(t.Rows) <= listPage {
		return
	}
	t.ClientSort = false
	t.Pager = web.NewPager(r.URL, pageParam(r), listPage, len(t.Rows))
	t.Rows = t.Rows[(t.Pager.Page-1)*listPage : min(len(t.Rows), t.Pager.Page*listPage)]
}
