package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/netward/netward/console/store"
	"github.com/netward/netward/console/web"
	"github.com/netward/netward/telemetry"
)

func (u *UI) huntRoutes() {
	u.page(Base+"/hunt", u.huntPage)
	u.page(Base+"/hunt.csv", u.huntPage)
}

type huntPage struct {
	Domains string
	Devices web.Table
	Events  web.Table
	Next    string
	Asked   bool
}

// eventsTable is a timeline of raw records (a machine's, or a hunt's).
func eventsTable(id, caption, csv string, evs []telemetry.Record, withDevice bool) web.Table {
	t := web.Table{ID: id, Caption: caption, CSV: csv, ClientSort: true,
		Empty: web.Empty{Title: "No events match", Text: "Events are read from the raw telemetry kept for the retention period. Try another period or filter."}}
	t.Columns = []web.Column{{Key: "t", Label: "Time (UTC)", Sortable: true}}
	if withDevice {
		t.Columns = append(t.Columns, web.Column{Key: "m", Label: "Machine", Sortable: true})
	}
	t.Columns = append(t.Columns, web.Column{Key: "a", Label: "Action", Sortable: true}, web.Column{Key: "d", Label: "Domain or address", Sortable: true},
		web.Column{Key: "u", Label: "User", Sortable: true, Narrow: true}, web.Column{Key: "p", Label: "Process", Narrow: true},
		web.Column{Key: "b", Label: "Bytes", Numeric: true, Narrow: true})
	for _, e := range evs {
		target := e.RemoteUrl
		if target == "" {
			target = e.RemoteIP
		}
		if e.RemotePort != 0 && e.RemoteIP != "" {
			target += fmt.Sprintf(" (%s:%d)", e.RemoteIP, e.RemotePort)
		}
		cells := []web.Cell{{Text: e.Timestamp.UTC().Format("2006-01-02 15:04:05"), Sort: strconv.FormatInt(e.Timestamp.UnixNano(), 10)}}
		if withDevice {
			cells = append(cells, web.LinkCell(e.DeviceId, Base+"/machines/"+url.PathEscape(e.DeviceId)))
		}
		cells = append(cells, web.TextCell(e.ActionType), web.Cell{Text: target, Mono: true}, web.TextCell(e.InitiatingProcessAccountName),
			web.TextCell(e.InitiatingProcessFileName), web.BytesCell(e.BytesSent+e.BytesReceived))
		t.Rows = append(t.Rows, web.Row{Cells: cells})
	}
	return t
}

// huntPage is part 2's hunting query: events of a list of domains (and
// their subdomains) across the fleet, paged by the API's cursor.
func (u *UI) huntPage(w http.ResponseWriter, r *http.Request) {
	p := apiPeriod(r)
	q := r.URL.Query()
	pg := huntPage{Domains: q.Get("domains")}
	if strings.TrimSpace(pg.Domains) != "" {
		pg.Asked = true
		aq := url.Values{"period": {string(p)}, "domains": {pg.Domains}, "limit": {"200"}}
		if csvWanted(r) {
			aq.Set("limit", "1000")
		}
		if c := q.Get("cursor"); c != "" {
			aq.Set("cursor", c)
		}
		var out struct {
			Devices    []store.HuntDevice `json:"devices"`
			Events     []telemetry.Record `json:"events"`
			NextCursor string             `json:"nextCursor"`
		}
		if !u.get(w, r, "/api/hunt?"+aq.Encode(), &out) {
			return
		}
		pg.Events = eventsTable("hunt-events", "Events of "+pg.Domains, Base+"/hunt.csv?"+r.URL.RawQuery, out.Events, true)
		if csvWanted(r) {
			u.web.WriteCSV(w, r, "hunt-"+string(p), pg.Events)
			return
		}
		pg.Devices = web.Table{ID: "hunt-devices", Caption: "Machines that reached " + pg.Domains, ClientSort: true,
			Columns: []web.Column{{Key: "m", Label: "Machine", Sortable: true}, {Key: "n", Label: "Records", Numeric: true, Sortable: true},
				{Key: "f", Label: "First hour (UTC)", Sortable: true}, {Key: "l", Label: "Last hour (UTC)", Sortable: true}},
			Empty: web.Empty{Title: "No machine reached these domains in the period"}}
		for _, d := range out.Devices {
			pg.Devices.Rows = append(pg.Devices.Rows, web.Row{Cells: []web.Cell{web.LinkCell(d.DeviceID, Base+"/machines/"+url.PathEscape(d.DeviceID)+"/events?period="+string(p)),
				web.CountCell(d.Records), web.TextCell(d.FirstHour.UTC().Format("2006-01-02 15:04")), web.TextCell(d.LastHour.UTC().Format("2006-01-02 15:04"))}})
		}
		if out.NextCursor != "" {
			nq := r.URL.Query()
			nq.Set("cursor", out.NextCursor)
			pg.Next = "?" + nq.Encode()
		}
	}
	u.web.Render(w, r, "apps/hunt", pg)
}
