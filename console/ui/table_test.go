package ui

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/netward/netward/console/web"
)

func TestPageTable(t *testing.T) {
	mk := func() web.Table {
		tb := web.Table{ClientSort: true, Filter: true, Columns: []web.Column{{Key: "name", Label: "Name", Sortable: true}, {Key: "n", Label: "N", Numeric: true, Sortable: true}}}
		for i := 0; i < 250; i++ {
			tb.Rows = append(tb.Rows, web.Row{Cells: []web.Cell{web.TextCell(fmt.Sprintf("m-%03d", i)), web.CountCell(int64(i * 7 % 250))}})
		}
		return tb
	}
	tb := mk()
	pageTable(httptest.NewRequest("GET", "/ui/machines?sort=n&dir=desc&page=2", nil), &tb)
	if len(tb.Rows) != 100 || tb.Pager == nil || tb.Pager.Page != 2 || tb.ClientSort {
		t.Fatalf("page 2: %d rows, pager %+v, client sort %v", len(tb.Rows), tb.Pager, tb.ClientSort)
	}
	if got := tb.Rows[0].Cells[1].Sort; got != "149" {
		t.Errorf("first row of page 2 sorted by n desc = %s, want 149", got)
	}
	// A numeric column sorts as numbers, not text ("9" < "10").
	tb = mk()
	pageTable(httptest.NewRequest("GET", "/ui/machines?sort=n&dir=asc", nil), &tb)
	if tb.Rows[9].Cells[1].Sort != "9" || tb.Rows[10].Cells[1].Sort != "10" {
		t.Errorf("numeric sort: %s, %s", tb.Rows[9].Cells[1].Sort, tb.Rows[10].Cells[1].Sort)
	}
	// The server filter spans every page; a CSV keeps every row.
	tb = mk()
	pageTable(httptest.NewRequest("GET", "/ui/machines?q=m-24", nil), &tb)
	if len(tb.Rows) != 10 {
		t.Errorf("filter m-24: %d rows, want 10", len(tb.Rows))
	}
	tb = mk()
	pageTable(httptest.NewRequest("GET", "/ui/machines.csv?sort=name&dir=desc", nil), &tb)
	if len(tb.Rows) != 250 || tb.Rows[0].Cells[0].Text != "m-249" {
		t.Errorf("CSV: %d rows, first %s", len(tb.Rows), tb.Rows[0].Cells[0].Text)
	}
}
