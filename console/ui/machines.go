package ui

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/netward/netward/console/store"
	"github.com/netward/netward/console/web"
	"github.com/netward/netward/console/web/format"
	"github.com/netward/netward/telemetry"
)

func (u *UI) machineRoutes() {
	u.page(Base+"/machines", u.machinesPage)
	u.page(Base+"/machines.csv", u.machinesPage)
	u.page(Base+"/machines/{id}", u.machinePage)
	u.page(Base+"/machines/{id}/{tab}", u.machinePage)
}

type machinesPage struct {
	Machines web.Table
	Stale    int
	Sequence int64
}

// machine is a machine as GET /api/machines answers it.
type machine struct {
	device
	Risk        string           `json:"risk"`
	RiskReasons []string         `json:"riskReasons"`
	Total       store.Counters   `json:"total"`
	Alerts      map[string]int64 `json:"alerts"`
}

func osOf(d store.Device) string {
	return strings.TrimSpace(d.OSPlatform + " " + d.OSVersion)
}

// riskOf maps the API's risk level to the badge.
func riskOf(s string) web.Risk {
	switch s {
	case "high":
		return web.RiskHigh
	case "medium":
		return web.RiskMedium
	case "low":
		return web.RiskLow
	}
	return web.RiskInformational
}

func (u *UI) machinesPage(w http.ResponseWriter, r *http.Request) {
	p := apiPeriod(r)
	var out struct {
		Machines []machine `json:"machines"`
		Sequence int64     `json:"sequence"`
	}
	if !u.get(w, r, "/api/machines?period="+string(p), &out) {
		return
	}
	now := u.now()
	pg := machinesPage{Sequence: out.Sequence}
	t := web.Table{ID: "machines", Caption: "Machines, " + strings.ToLower(p.Label()), URL: r.URL, ClientSort: true, Filter: true, FilterLabel: "Filter machines",
		CSV: Base + "/machines.csv?period=" + string(p),
		Columns: []web.Column{{Key: "name", Label: "Machine", Sortable: true}, {Key: "risk", Label: "Risk", Sortable: true},
			{Key: "os", Label: "OS", Sortable: true, Narrow: true}, {Key: "agent", Label: "Agent", Sortable: true, Narrow: true},
			{Key: "seen", Label: "Last check-in", Sortable: true}, {Key: "seq", Label: "Policy sequence", Numeric: true, Sortable: true},
			{Key: "traffic", Label: "Traffic", Numeric: true, Sortable: true, Narrow: true}, {Key: "state", Label: "State", Sortable: true, Narrow: true}},
		Empty: web.Empty{Title: "No machines yet", Text: "Create an enrollment key and run the enroll command on a machine.", Action: "Enrollment keys", Href: Base + "/settings/enrollment"}}
	for _, d := range out.Machines {
		seq := web.Cell{Text: strconv.FormatInt(d.SequenceHeld, 10), Sort: strconv.FormatInt(d.SequenceHeld, 10)}
		if !d.CheckinKnown {
			seq = web.Cell{Text: "unknown", Sort: "-1"}
		}
		if d.Stale {
			seq.Flag = "stale"
			pg.Stale++
		}
		risk := web.RiskCell(riskOf(d.Risk))
		risk.Sub = strings.Join(d.RiskReasons, "; ")
		t.Rows = append(t.Rows, web.Row{Key: d.ID, Label: d.Name, Cells: []web.Cell{
			{Text: d.Name, Href: Base + "/machines/" + url.PathEscape(d.ID) + "?period=" + string(p), Sub: d.ID},
			risk, web.TextCell(osOf(d.Device)), web.TextCell(d.AgentVersion), web.TimeCell(d.LastSeenAt, now), seq,
			web.BytesCell(d.Total.BytesSent + d.Total.BytesReceived), {Text: d.State, Sub: d.StateDetail}}})
	}
	pageTable(r, &t)
	pg.Machines = t
	u.listOut(w, r, "machines-"+string(p), t, "machines/index", pg)
}

// machinePage is one machine with its tabs.
type machinePage struct {
	Device  device
	OS      string
	Tabs    web.Tabs
	Tab     string
	Mini    []web.Stat
	Traffic template.HTML
	Actions template.HTML
	Table   web.Table
	// Events filters.
	Action, Domain string
	ActionTypes    []string
	Next           string
	Risk           web.Risk
	RiskReasons    []string
}

// machineDetail is GET /api/machines/{id}.
type machineDetail struct {
	Period      store.Period     `json:"period"`
	Device      device           `json:"machine"`
	Risk        string           `json:"risk"`
	RiskReasons []string         `json:"riskReasons"`
	Alerts      map[string]int64 `json:"alerts"`
	Total       store.Counters   `json:"total"`
	Series      []store.Bucket   `json:"series"`
	Apps        []discovered     `json:"apps"`
	Users       []store.Seen     `json:"users"`
	Addresses   []store.Seen     `json:"addresses"`
}

func (u *UI) machinePage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	tab, csv := r.PathValue("tab"), false
	if t, ok := strings.CutSuffix(tab, ".csv"); ok {
		tab, csv = t, true
	}
	if tab == "" {
		tab = "overview"
	}
	p := apiPeriod(r)
	var det machineDetail
	if !u.get(w, r, "/api/machines/"+url.PathEscape(id)+"?period="+string(p), &det) {
		return
	}
	pg0 := det.Period
	base := Base + "/machines/" + url.PathEscape(id)
	q := "?period=" + string(p)
	pg := machinePage{Device: det.Device, OS: osOf(det.Device.Device), Tab: tab, Risk: riskOf(det.Risk), RiskReasons: det.RiskReasons}
	pg.Tabs = web.Tabs{Label: "Machine " + det.Device.Name}
	for _, it := range []struct{ key, label string }{{"overview", "Overview"}, {"apps", "Discovered apps"}, {"users", "User history"}, {"ips", "IP address history"}, {"events", "Events"}} {
		href := base + "/" + it.key + q
		if it.key == "overview" {
			href = base + q
		}
		tb := web.Tab{Label: it.label, Href: href, Current: it.key == tab}
		switch it.key {
		case "users":
			tb.Count = strconv.Itoa(len(det.Users))
		case "ips":
			tb.Count = strconv.Itoa(len(det.Addresses))
		}
		pg.Tabs.Items = append(pg.Tabs.Items, tb)
	}
	now := u.now()
	long := strings.ToLower(p.Label())
	name := "machine-" + id + "-" + tab + "-" + string(p)
	switch tab {
	case "overview":
		pts, all := det.Series, det.Total
		pg.Mini = []web.Stat{{Label: "Transactions", Value: format.Count(float64(all.Transactions))},
			{Label: "Total traffic", Value: format.Bytes(float64(all.BytesSent + all.BytesReceived))},
			{Label: "Uploads", Value: format.Bytes(float64(all.BytesSent))}, {Label: "Downloads", Value: format.Bytes(float64(all.BytesReceived))},
			{Label: "Blocks", Value: format.Count(float64(all.Blocks))}, {Label: "Warns", Value: format.Count(float64(all.Warns))},
			{Label: "Bypasses", Value: format.Count(float64(all.Bypasses))}}
		pg.Traffic = trafficChart("machine-traffic", "Traffic of "+det.Device.Name+", "+long, pts, pg0, 0)
		pg.Actions = actionsChart("machine-actions", "Blocks, warns and bypasses, "+long, pts, pg0)
		pg.Table = web.Table{ID: "series", Caption: "Traffic per bucket",
			Columns: []web.Column{{Key: "t", Label: "Start (UTC)"}, {Key: "tx", Label: "Transactions", Numeric: true}, {Key: "up", Label: "Upload", Numeric: true},
				{Key: "down", Label: "Download", Numeric: true}, {Key: "b", Label: "Blocks", Numeric: true}, {Key: "w", Label: "Warns", Numeric: true}, {Key: "p", Label: "Bypasses", Numeric: true}}}
		for _, x := range pts {
			pg.Table.Rows = append(pg.Table.Rows, web.Row{Cells: []web.Cell{web.TextCell(x.At.UTC().Format(time.RFC3339)), web.CountCell(x.Transactions),
				web.BytesCell(x.BytesSent), web.BytesCell(x.BytesReceived), web.CountCell(x.Blocks), web.CountCell(x.Warns), web.CountCell(x.Bypasses)}})
		}
		pg.Table.CSV = base + "/overview.csv" + q
	case "apps":
		t := web.Table{ID: "machine-apps", Caption: "Apps on " + det.Device.Name + ", " + long, URL: r.URL, ClientSort: true, CSV: base + "/apps.csv" + q,
			Columns: []web.Column{{Key: "app", Label: "App or domain", Sortable: true}, {Key: "traffic", Label: "Traffic", Numeric: true, Sortable: true},
				{Key: "tx", Label: "Transactions", Numeric: true, Sortable: true},
				{Key: "blocks", Label: "Blocks", Numeric: true, Sortable: true}, {Key: "bypasses", Label: "Bypasses", Numeric: true, Sortable: true},
				{Key: "seen", Label: "Last seen", Sortable: true, Narrow: true}, {Key: "tag", Label: "Tag", Sortable: true}},
			Empty: web.Empty{Title: "No traffic from this machine in the period"}}
		for _, a := range det.Apps {
			c := web.Cell{Text: a.Name}
			if a.AppID != "" {
				c.Href = Base + "/apps" + q + "&app=" + url.QueryEscape(a.AppID) + "#drawer"
			} else {
				c.Mono, c.Sub = true, "no catalog app"
			}
			t.Rows = append(t.Rows, web.Row{Key: a.AppID + a.Domain, Label: a.Name, Cells: []web.Cell{c, web.BytesCell(a.bytes()), web.CountCell(a.Transactions),
				web.CountCell(a.Blocks), web.CountCell(a.Bypasses), web.TimeCell(a.LastSeen, now), web.TagCell(web.Tag(a.Tag))}})
		}
		pg.Table = t
	case "users", "ips":
		list, what := det.Users, "Users"
		t := web.Table{ID: "machine-" + tab, URL: r.URL, ClientSort: true, CSV: base + "/" + tab + ".csv" + q,
			Columns: []web.Column{{Key: "v", Label: "User", Sortable: true}, {Key: "first", Label: "First seen", Sortable: true}, {Key: "last", Label: "Last seen", Sortable: true}},
			Empty:   web.Empty{Title: "Nothing recorded yet", Text: "The agent reports who is signed in and its addresses with its telemetry."}}
		if tab == "ips" {
			list, what = det.Addresses, "IP addresses"
			t.Columns = []web.Column{{Key: "v", Label: "Address", Sortable: true}, {Key: "if", Label: "Interface", Sortable: true, Narrow: true}, {Key: "mac", Label: "MAC", Narrow: true},
				{Key: "first", Label: "First seen", Sortable: true}, {Key: "last", Label: "Last seen", Sortable: true}}
		}
		t.Caption = what + " of " + det.Device.Name
		for _, s := range list {
			cells := []web.Cell{{Text: s.Value, Mono: tab == "ips"}}
			if tab == "ips" {
				cells = append(cells, web.TextCell(s.Interface), web.Cell{Text: s.MAC, Mono: true})
			}
			cells = append(cells, web.Cell{Text: s.FirstSeen.UTC().Format("2006-01-02 15:04"), Sort: strconv.FormatInt(s.FirstSeen.Unix(), 10)},
				web.Cell{Text: s.LastSeen.UTC().Format("2006-01-02 15:04"), Sort: strconv.FormatInt(s.LastSeen.Unix(), 10), Sub: format.Ago(s.LastSeen, now)})
			t.Rows = append(t.Rows, web.Row{Key: s.Value, Label: s.Value, Cells: cells})
		}
		pg.Table = t
	case "events":
		qs := r.URL.Query()
		pg.Action, pg.Domain = qs.Get("action"), qs.Get("domain")
		pg.ActionTypes = []string{telemetry.ConnectionSuccess, telemetry.DnsQueryResponse, telemetry.ConnectionFailed, telemetry.NetworkProtectionBlocked,
			telemetry.NetworkProtectionWarned, telemetry.NetworkProtectionUserBypassEvent, telemetry.NetworkProtectionAudited}
		eq := url.Values{"period": {string(p)}, "limit": {"200"}}
		if pg.Action != "" {
			eq.Set("action", pg.Action)
		}
		if pg.Domain != "" {
			eq.Set("domain", pg.Domain)
		}
		if c := qs.Get("cursor"); c != "" {
			eq.Set("cursor", c)
		}
		if csv {
			eq.Set("limit", "1000")
		}
		var ev struct {
			Events     []telemetry.Record `json:"events"`
			NextCursor string             `json:"nextCursor"`
		}
		if !u.get(w, r, "/api/machines/"+url.PathEscape(id)+"/events?"+eq.Encode(), &ev) {
			return
		}
		evs := ev.Events
		if ev.NextCursor != "" {
			nq := r.URL.Query()
			nq.Set("cursor", ev.NextCursor)
			pg.Next = "?" + nq.Encode()
		}
		t := eventsTable("events", "Events of "+det.Device.Name, base+"/events.csv?"+r.URL.RawQuery, evs, false)
		t.URL = r.URL
		pg.Table = t
	default:
		u.web.Error(w, r, http.StatusNotFound, "This machine has no such tab.")
		return
	}
	if csv {
		u.web.WriteCSV(w, r, name, pg.Table)
		return
	}
	u.web.Render(w, r, "machines/detail", pg)
}
