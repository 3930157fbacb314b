package ui

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
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

func osOf(d store.Device) string {
	return strings.TrimSpace(d.OSPlatform + " " + d.OSVersion)
}

func (u *UI) machinesPage(w http.ResponseWriter, r *http.Request) {
	var out struct {
		Devices  []device `json:"devices"`
		Sequence int64    `json:"sequence"`
	}
	if !u.get(w, r, "/api/devices", &out) {
		return
	}
	p := web.PeriodOf(r, web.Period30d)
	now := u.now()
	pg := machinesPage{Sequence: out.Sequence}
	t := web.Table{ID: "machines", Caption: "Machines", URL: r.URL, ClientSort: true, Filter: true, FilterLabel: "Filter machines", CSV: Base + "/machines.csv",
		Columns: []web.Column{{Key: "name", Label: "Machine", Sortable: true}, {Key: "os", Label: "OS", Sortable: true, Narrow: true},
			{Key: "agent", Label: "Agent", Sortable: true, Narrow: true}, {Key: "seen", Label: "Last check-in", Sortable: true},
			{Key: "seq", Label: "Policy sequence", Numeric: true, Sortable: true}, {Key: "state", Label: "State", Sortable: true},
			{Key: "users", Label: "Users", Narrow: true}},
		Empty: web.Empty{Title: "No machines yet", Text: "Create an enrollment key and run the enroll command on a machine.", Action: "Enrollment keys", Href: Base + "/settings/enrollment"}}
	for _, d := range out.Devices {
		seq := web.Cell{Text: strconv.FormatInt(d.SequenceHeld, 10), Sort: strconv.FormatInt(d.SequenceHeld, 10)}
		if !d.CheckinKnown {
			seq = web.Cell{Text: "unknown", Sort: "-1"}
		}
		if d.Stale {
			seq.Flag = "stale"
			pg.Stale++
		}
		state := web.Cell{Text: d.State, Sub: d.StateDetail}
		t.Rows = append(t.Rows, web.Row{Key: d.ID, Label: d.Name, Cells: []web.Cell{
			{Text: d.Name, Href: Base + "/machines/" + url.PathEscape(d.ID) + "?period=" + string(p), Sub: d.ID},
			web.TextCell(osOf(d.Device)), web.TextCell(d.AgentVersion), web.TimeCell(d.LastSeenAt, now), seq, state,
			web.TextCell(strings.Join(d.LoggedOnUsers, ", "))}})
	}
	pg.Machines = t
	u.listOut(w, r, "machines", t, "machines/index", pg)
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
	Truncated      bool
}

type deviceDetail struct {
	Device    device       `json:"device"`
	Users     []store.Seen `json:"users"`
	Addresses []store.Seen `json:"addresses"`
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
	var det deviceDetail
	if !u.get(w, r, "/api/devices/"+url.PathEscape(id), &det) {
		return
	}
	p, d := u.periodOf(r)
	base := Base + "/machines/" + url.PathEscape(id)
	q := "?period=" + string(p)
	pg := machinePage{Device: det.Device, OS: osOf(det.Device.Device), Tab: tab}
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
	name := "machine-" + id + "-" + tab
	switch tab {
	case "overview":
		pts, err := u.series(r, id, "", d)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		var all store.Counters
		for _, x := range pts {
			all.Add(x.Counters)
		}
		pg.Mini = []web.Stat{{Label: "Transactions", Value: format.Count(float64(all.Transactions))},
			{Label: "Total traffic", Value: format.Bytes(float64(all.BytesSent + all.BytesReceived))},
			{Label: "Uploads", Value: format.Bytes(float64(all.BytesSent))}, {Label: "Downloads", Value: format.Bytes(float64(all.BytesReceived))},
			{Label: "Blocks", Value: format.Count(float64(all.Blocks))}, {Label: "Warns", Value: format.Count(float64(all.Warns))},
			{Label: "Bypasses", Value: format.Count(float64(all.Bypasses))}}
		pg.Traffic = trafficChart("machine-traffic", "Traffic of "+det.Device.Name+", "+long, pts, d, 0)
		pg.Actions = actionsChart("machine-actions", "Blocks, warns and bypasses, "+long, pts, d)
		pg.Table = web.Table{ID: "series", Caption: "Traffic per " + map[bool]string{true: "hour", false: "day"}[d.step == time.Hour],
			Columns: []web.Column{{Key: "t", Label: "Start (UTC)"}, {Key: "tx", Label: "Transactions", Numeric: true}, {Key: "up", Label: "Upload", Numeric: true},
				{Key: "down", Label: "Download", Numeric: true}, {Key: "b", Label: "Blocks", Numeric: true}, {Key: "w", Label: "Warns", Numeric: true}, {Key: "p", Label: "Bypasses", Numeric: true}}}
		for _, x := range pts {
			pg.Table.Rows = append(pg.Table.Rows, web.Row{Cells: []web.Cell{web.TextCell(x.T.UTC().Format(time.RFC3339)), web.CountCell(x.Transactions),
				web.BytesCell(x.BytesSent), web.BytesCell(x.BytesReceived), web.CountCell(x.Blocks), web.CountCell(x.Warns), web.CountCell(x.Bypasses)}})
		}
		pg.Table.CSV = base + "/overview.csv" + q
	case "apps":
		cat, ok := u.catalogMap(w, r)
		if !ok {
			return
		}
		totals, err := u.appTotals(r, id, d)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		slices.SortFunc(totals, func(a, b store.UIAppTotal) int {
			return int((b.BytesSent + b.BytesReceived) - (a.BytesSent + a.BytesReceived))
		})
		t := web.Table{ID: "machine-apps", Caption: "Apps on " + det.Device.Name + ", " + long, URL: r.URL, ClientSort: true, CSV: base + "/apps.csv" + q,
			Columns: []web.Column{{Key: "app", Label: "App", Sortable: true}, {Key: "traffic", Label: "Traffic", Numeric: true, Sortable: true},
				{Key: "tx", Label: "Transactions", Numeric: true, Sortable: true}, {Key: "users", Label: "Users", Numeric: true, Sortable: true},
				{Key: "blocks", Label: "Blocks", Numeric: true, Sortable: true}, {Key: "bypasses", Label: "Bypasses", Numeric: true, Sortable: true},
				{Key: "seen", Label: "Last seen", Sortable: true, Narrow: true}, {Key: "tag", Label: "Tag", Sortable: true}},
			Empty: web.Empty{Title: "No traffic from this machine in the period"}}
		for _, a := range totals {
			n, _ := appName(cat, a.AppID)
			c := web.Cell{Text: n}
			if a.AppID != "" {
				c.Href = Base + "/apps" + q + "&app=" + url.QueryEscape(a.AppID) + "#drawer"
			}
			t.Rows = append(t.Rows, web.Row{Key: a.AppID, Label: n, Cells: []web.Cell{c, web.BytesCell(a.BytesSent + a.BytesReceived), web.CountCell(a.Transactions),
				web.CountCell(a.Users), web.CountCell(a.Blocks), web.CountCell(a.Bypasses), web.TimeCell(time.Unix(a.LastHour+3600, 0), now), web.TagCell(web.Tag(cat[a.AppID].Tag))}})
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
		evs, trunc, err := u.events(r, id, pg.Action, pg.Domain, d)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		pg.Truncated = trunc
		t := web.Table{ID: "events", Caption: "Events of " + det.Device.Name, URL: r.URL, ClientSort: true, CSV: base + "/events.csv?" + r.URL.RawQuery,
			Columns: []web.Column{{Key: "t", Label: "Time (UTC)", Sortable: true}, {Key: "a", Label: "Action", Sortable: true}, {Key: "d", Label: "Domain or address", Sortable: true},
				{Key: "u", Label: "User", Sortable: true, Narrow: true}, {Key: "p", Label: "Process", Narrow: true}, {Key: "b", Label: "Bytes", Numeric: true, Narrow: true}},
			Empty: web.Empty{Title: "No events match", Text: "Events are read from the raw telemetry kept for the retention period. Try another period or filter."}}
		for _, e := range evs {
			target := e.RemoteUrl
			if target == "" {
				target = e.RemoteIP
			}
			if e.RemotePort != 0 && e.RemoteIP != "" {
				target += fmt.Sprintf(" (%s:%d)", e.RemoteIP, e.RemotePort)
			}
			t.Rows = append(t.Rows, web.Row{Cells: []web.Cell{{Text: e.Timestamp.UTC().Format("2006-01-02 15:04:05"), Sort: strconv.FormatInt(e.Timestamp.UnixNano(), 10)},
				web.TextCell(e.ActionType), {Text: target, Mono: true}, web.TextCell(e.InitiatingProcessAccountName), web.TextCell(e.InitiatingProcessFileName),
				web.BytesCell(e.BytesSent + e.BytesReceived)}})
		}
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
