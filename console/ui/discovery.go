package ui

import (
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/console/web"
	"github.com/netward/netward/console/web/chart"
	"github.com/netward/netward/console/web/format"
)

func (u *UI) discoveryRoutes() {
	u.page(Base+"/{$}", u.dashboard)
	u.page(Base+"/apps", u.appsPage)
	u.page(Base+"/apps.csv", u.appsPage)
	u.page(Base+"/apps/domains", u.unknownDomains)
	u.page(Base+"/apps/domains.csv", u.unknownDomains)
}

// apiPeriod is the ?period= the API is asked for.
func apiPeriod(r *http.Request) web.Period { return web.PeriodOf(r, web.Period30d) }

// discovered is a discovered app (or unknown domain) as the API answers it.
type discovered struct {
	AppID    string `json:"appId"`
	Name     string `json:"name"`
	Category string `json:"category"`
	Tag      string `json:"tag"`
	Custom   bool   `json:"custom"`
	Domain   string `json:"domain"`
	store.Counters
	Users       int64     `json:"users"`
	Machines    int64     `json:"machines"`
	BypassUsers int64     `json:"bypassUsers"`
	LastSeen    time.Time `json:"lastSeen"`
}

func (d discovered) bytes() int64 { return d.BytesSent + d.BytesReceived }

// appDetail is GET /api/discovery/apps/{id}.
type appDetail struct {
	Period      store.Period      `json:"period"`
	App         discovered        `json:"app"`
	Total       store.Counters    `json:"total"`
	BypassUsers int64             `json:"bypassUsers"`
	Domains     []store.Breakdown `json:"domains"`
	Machines    []store.Breakdown `json:"machines"`
	Users       []store.Named     `json:"users"`
	Series      []store.Bucket    `json:"series"`
}

func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	u.log.Error("ui: page failed", "path", r.URL.Path, "err", err)
	u.web.Error(w, r, http.StatusInternalServerError, "This page could not be read from the store; the error is in the console's log.")
}

// step is the bucket length of a period.
func step(p store.Period) time.Duration {
	if p.Span <= 0 {
		return time.Hour
	}
	return time.Duration(p.Span) * time.Second
}

// filled turns the API's sparse buckets into a point per bucket of p.
func filled(pts []store.Bucket, p store.Period, v func(store.Counters) float64) []chart.Point {
	byT := make(map[int64]store.Counters, len(pts))
	for _, b := range pts {
		byT[b.At.Unix()] = b.Counters
	}
	var out []chart.Point
	for t := p.From; t.Before(p.To) && len(out) < 10000; t = t.Add(step(p)) {
		out = append(out, chart.Point{T: t, V: v(byT[t.Unix()])})
	}
	return out
}

func down(c store.Counters) float64 { return float64(c.BytesReceived) }
func up(c store.Counters) float64   { return float64(c.BytesSent) }
func txs(c store.Counters) float64  { return float64(c.Transactions) }

func trafficChart(id, title string, pts []store.Bucket, p store.Period, height int) template.HTML {
	return chart.Line{ID: id, Title: title, Unit: chart.Bytes, Area: true, From: p.From, To: p.To.Add(-step(p)), Step: step(p), Height: height,
		Series: []chart.Series{{Name: "Download", Color: chart.Blue, Points: filled(pts, p, down)}, {Name: "Upload", Color: chart.Orange, Points: filled(pts, p, up)}}}.HTML()
}

func actionsChart(id, title string, pts []store.Bucket, p store.Period) template.HTML {
	byT := make(map[int64]store.Counters, len(pts))
	for _, b := range pts {
		byT[b.At.Unix()] = b.Counters
	}
	var buckets []chart.Bucket
	for t := p.From; t.Before(p.To) && len(buckets) < 10000; t = t.Add(step(p)) {
		c := byT[t.Unix()]
		buckets = append(buckets, chart.Bucket{T: t, Values: []float64{float64(c.Blocks), float64(c.Warns), float64(c.Bypasses)}})
	}
	return chart.Bars{ID: id, Title: title, Step: step(p),
		Layers:  []chart.Layer{{Name: "Blocks", Color: chart.Vermillion}, {Name: "Warns", Color: chart.Orange}, {Name: "Bypasses", Color: chart.Purple}},
		Buckets: buckets}.HTML()
}

// --- dashboard ---

type dashboardPage struct {
	Stats                            []web.Stat
	Traffic, Transactions, Actions   template.HTML
	TopApps, TopUsers, TopCategories template.HTML
	Empty                            bool
	EmptyState                       web.Empty
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request) {
	p := apiPeriod(r)
	var apps struct {
		Period store.Period `json:"period"`
		Apps   []discovered `json:"apps"`
	}
	var devices struct {
		Devices []device `json:"devices"`
	}
	var al struct {
		Alerts []store.Alert `json:"alerts"`
	}
	var fleet store.FleetSummary
	if !u.getAll(w, r, fetch{"/api/discovery/apps?limit=100000&period=" + string(p), &apps}, fetch{"/api/devices", &devices},
		fetch{"/api/alerts?state=new&limit=10000&period=" + string(p), &al}, fetch{"/api/discovery/summary?period=" + string(p), &fleet}) {
		return
	}
	devs := devices.Devices
	pts, all, users, active := fleet.Series, fleet.Total, fleet.Users, fleet.Machines
	stale := 0
	for _, d := range devs {
		if d.Stale {
			stale++
		}
	}
	var top, topUsers, cats []chart.Item
	byCat := map[string]float64{}
	for _, a := range apps.Apps {
		cat := cmp.Or(a.Category, "Uncategorised")
		top = append(top, chart.Item{Label: a.Name, Value: float64(a.bytes()), Note: format.Count(float64(a.Users)) + " users · " + cat})
		topUsers = append(topUsers, chart.Item{Label: a.Name, Value: float64(a.Users)})
		byCat[cat] += float64(a.bytes())
	}
	for c, v := range byCat {
		cats = append(cats, chart.Item{Label: c, Value: v})
	}
	for _, l := range [][]chart.Item{top, topUsers, cats} {
		slices.SortFunc(l, func(a, b chart.Item) int {
			return cmp.Or(cmp.Compare(b.Value, a.Value), strings.Compare(a.Label, b.Label))
		})
	}
	long := strings.ToLower(p.Label())
	var spark, sparkTx []float64
	for _, pt := range filled(pts, apps.Period, func(c store.Counters) float64 { return float64(c.BytesSent + c.BytesReceived) }) {
		spark = append(spark, pt.V)
	}
	for _, pt := range filled(pts, apps.Period, txs) {
		sparkTx = append(sparkTx, pt.V)
	}
	q := "?period=" + string(p)
	machinesSub := fmt.Sprintf("%s enrolled", format.Count(float64(len(devs))))
	if stale > 0 {
		machinesSub += fmt.Sprintf(" · %d stale", stale)
	}
	ap := apps.Period
	pg := dashboardPage{
		Empty: len(pts) == 0,
		EmptyState: web.Empty{Title: "No traffic in this period yet", Text: "The charts fill in as enrolled agents upload their telemetry.",
			Action: "Enroll machines", Href: Base + "/settings/enrollment"},
		Stats: []web.Stat{
			{Label: "Discovered apps", Value: format.Count(float64(len(apps.Apps))), Href: Base + "/apps" + q},
			{Label: "Machines", Value: format.Count(float64(active)), Sub: machinesSub, Href: Base + "/machines" + q},
			{Label: "Users", Value: format.Count(float64(users))},
			{Label: "Traffic", Value: format.Bytes(float64(all.BytesSent + all.BytesReceived)), Sub: "↑ " + format.Bytes(float64(all.BytesSent)) + " · ↓ " + format.Bytes(float64(all.BytesReceived)),
				Spark: chart.Sparkline{Label: "Traffic, " + long, Unit: chart.Bytes, Values: spark}.HTML()},
			{Label: "Transactions", Value: format.Count(float64(all.Transactions)), Sub: fmt.Sprintf("%s blocks · %s bypasses", format.Count(float64(all.Blocks)), format.Count(float64(all.Bypasses))),
				Spark: chart.Sparkline{Label: "Transactions, " + long, Values: sparkTx, Color: chart.Green}.HTML()},
			{Label: "New alerts", Value: format.Count(float64(len(al.Alerts))), Href: Base + "/alerts" + q},
		},
		Traffic: trafficChart("traffic", "Traffic, "+long, pts, ap, 0),
		Transactions: chart.Line{ID: "transactions", Title: "Transactions, " + long, From: ap.From, To: ap.To.Add(-step(ap)), Step: step(ap),
			Series: []chart.Series{{Name: "Transactions", Color: chart.Green, Points: filled(pts, ap, txs)}}}.HTML(),
		Actions:       actionsChart("actions", "Blocks, warns and bypasses, "+long, pts, ap),
		TopApps:       chart.Ranking{ID: "top-apps", Title: "Top apps by traffic", Unit: chart.Bytes, Items: top, Max: 8}.HTML(),
		TopUsers:      chart.Ranking{ID: "top-users", Title: "Top apps by users", Items: topUsers, Max: 8, Color: chart.Sky}.HTML(),
		TopCategories: chart.Ranking{ID: "top-categories", Title: "Top categories by traffic", Unit: chart.Bytes, Items: cats, Max: 8, Color: chart.Green}.HTML(),
	}
	u.web.Render(w, r, "dashboard", pg)
}

// --- discovered apps ---

type appsPage struct {
	Apps                  web.Table
	Categories, Tags      []string
	Category, Tag, MinUsr string
	drawer                *web.Drawer
}

func (p appsPage) PageDrawer() *web.Drawer { return p.drawer }

func (u *UI) appsPage(w http.ResponseWriter, r *http.Request) {
	p := apiPeriod(r)
	q := r.URL.Query()
	pg := appsPage{Category: q.Get("category"), Tag: q.Get("tag"), MinUsr: q.Get("minUsers"),
		Tags: []string{"Sanctioned", "Unsanctioned", "Monitored", "Untagged"}}
	var cats struct {
		Categories []catalog.CategoryCount `json:"categories"`
	}
	apiq := url.Values{"period": {string(p)}, "limit": {"100000"}}
	if pg.Category != "" {
		apiq.Set("category", pg.Category)
	}
	if pg.Tag != "" {
		apiq.Set("tag", strings.ToLower(pg.Tag))
	}
	if n, err := strconv.Atoi(pg.MinUsr); err == nil && n > 0 {
		apiq.Set("minUsers", strconv.Itoa(n))
	}
	var out struct {
		Apps []discovered `json:"apps"`
	}
	drawerID := q.Get("app")
	var detail appDetail
	drawerRead := fetch{"/api/discovery/apps/" + url.PathEscape(drawerID) + "?period=" + string(p), &detail}
	if drawerID != "" && web.DrawerOnly(r) && !csvWanted(r) {
		// The script opening the drawer over the list it shows keeps
		// only the drawer: the list is not read again for it (on 1,000
		// devices × 30 days, half of the page's work).
		if !u.get(w, r, drawerRead.path, drawerRead.out) {
			return
		}
		pg.drawer = u.appDrawer(r, drawerID, p, detail)
		u.web.Render(w, r, "apps", pg) // the drawer alone (web.DrawerOnly)
		return
	}
	// The list, its filters and the open drawer's app are read at once.
	reads := []fetch{{"/api/categories", &cats}, {"/api/discovery/apps?" + apiq.Encode(), &out}}
	if drawerID != "" {
		reads = append(reads, drawerRead)
	}
	if !u.getAll(w, r, reads...) {
		return
	}
	for _, c := range cats.Categories {
		pg.Categories = append(pg.Categories, c.Category)
	}
	search := strings.ToLower(strings.TrimSpace(q.Get("q")))
	rows := out.Apps[:0]
	for _, a := range out.Apps {
		if search == "" || strings.Contains(strings.ToLower(a.Name), search) || strings.Contains(a.AppID, search) {
			rows = append(rows, a)
		}
	}
	sortKey, desc := q.Get("sort"), q.Get("dir") != "asc"
	if sortKey == "" {
		sortKey, desc = "traffic", true
	}
	key := func(a discovered) float64 {
		switch sortKey {
		case "transactions":
			return float64(a.Transactions)
		case "users":
			return float64(a.Users)
		case "machines":
			return float64(a.Machines)
		case "seen":
			return float64(a.LastSeen.Unix())
		case "blocks":
			return float64(a.Blocks)
		case "bypasses":
			return float64(a.Bypasses)
		}
		return float64(a.bytes())
	}
	slices.SortStableFunc(rows, func(a, b discovered) int {
		var c int
		switch sortKey {
		case "app":
			c = strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
		case "category":
			c = strings.Compare(a.Category, b.Category)
		case "tag":
			c = strings.Compare(web.Tag(a.Tag).Label(), web.Tag(b.Tag).Label())
		default:
			c = cmp.Compare(key(a), key(b))
		}
		if desc {
			c = -c
		}
		return cmp.Or(c, strings.Compare(a.AppID, b.AppID))
	})
	view := viewOf(r)
	now := u.now()
	t := web.Table{ID: "apps-table", Caption: "Discovered apps, " + strings.ToLower(p.Label()), URL: r.URL, Sort: sortKey, Desc: desc,
		Filter: true, FilterLabel: "Search apps", Query: q.Get("q"), CSV: Base + "/apps.csv?" + r.URL.RawQuery,
		Columns: []web.Column{{Key: "app", Label: "App", Sortable: true}, {Key: "category", Label: "Category", Sortable: true, Narrow: true},
			{Key: "traffic", Label: "Traffic", Numeric: true, Sortable: true}, {Key: "transactions", Label: "Transactions", Numeric: true, Sortable: true, Narrow: true},
			{Key: "users", Label: "Users", Numeric: true, Sortable: true}, {Key: "machines", Label: "Machines", Numeric: true, Sortable: true},
			{Key: "blocks", Label: "Blocks", Numeric: true, Sortable: true, Narrow: true}, {Key: "bypasses", Label: "Bypasses", Numeric: true, Sortable: true, Narrow: true},
			{Key: "seen", Label: "Last seen", Sortable: true, Narrow: true}, {Key: "tag", Label: "Tag", Sortable: true}},
		Empty: web.Empty{Title: "No apps discovered in this period", Text: "Apps appear here once enrolled agents upload traffic. Try a longer period or other filters.",
			Action: "Enroll machines", Href: Base + "/settings/enrollment"},
		Select: view.admin, Form: "bulk-tag"}
	if !csvWanted(r) {
		t.Pager = web.NewPager(r.URL, pageParam(r), 100, len(rows))
		rows = rows[min(len(rows), (t.Pager.Page-1)*100):min(len(rows), t.Pager.Page*100)]
	}
	for _, a := range rows {
		dq := url.Values{}
		for k, v := range q {
			dq[k] = v
		}
		dq.Set("app", a.AppID)
		t.Rows = append(t.Rows, web.Row{Key: a.AppID, Label: a.Name, Cells: []web.Cell{
			{Text: a.Name, Href: "?" + dq.Encode() + "#drawer", Drawer: true}, web.TextCell(a.Category),
			web.BytesCell(a.bytes()), web.CountCell(a.Transactions), web.CountCell(a.Users), web.CountCell(a.Machines),
			web.CountCell(a.Blocks), web.CountCell(a.Bypasses), web.TimeCell(a.LastSeen, now), web.TagCell(web.Tag(a.Tag))}})
	}
	if csvWanted(r) {
		u.web.WriteCSV(w, r, "discovered-apps-"+string(p), t)
		return
	}
	pg.Apps = t
	if drawerID != "" {
		pg.drawer = u.appDrawer(r, drawerID, p, detail)
	}
	u.web.Render(w, r, "apps", pg)
}

func (u *UI) domainsTable(list []discovered, p web.Period) web.Table {
	now := u.now()
	t := web.Table{ID: "unknown-domains", Caption: "Domains no app claims, " + strings.ToLower(p.Label()), CSV: Base + "/apps/domains.csv?period=" + string(p),
		Columns: []web.Column{{Key: "d", Label: "Domain"}, {Key: "m", Label: "Machines", Numeric: true}, {Key: "u", Label: "Users", Numeric: true},
			{Key: "t", Label: "Traffic", Numeric: true}, {Key: "x", Label: "Transactions", Numeric: true, Narrow: true}, {Key: "s", Label: "Last seen", Narrow: true}},
		Empty: web.Empty{Title: "Every domain seen belongs to a catalog app"}}
	for _, d := range list {
		t.Rows = append(t.Rows, web.Row{Key: d.Domain, Label: d.Domain, Cells: []web.Cell{{Text: d.Domain, Mono: true}, web.CountCell(d.Machines), web.CountCell(d.Users),
			web.BytesCell(d.bytes()), web.CountCell(d.Transactions), web.TimeCell(d.LastSeen, now)}})
	}
	return t
}

// unknownDomains lists the domains no catalog app claims, ranked by
// machines then traffic: candidates for custom apps. A page of its own, so
// the Discovered apps page does not pay for the ranking.
func (u *UI) unknownDomains(w http.ResponseWriter, r *http.Request) {
	p := apiPeriod(r)
	limit := "500"
	if csvWanted(r) {
		limit = "100000"
	}
	var cand struct {
		Domains []discovered `json:"domains"`
	}
	if !u.get(w, r, "/api/discovery/candidates?limit="+limit+"&period="+string(p), &cand) {
		return
	}
	t := u.domainsTable(cand.Domains, p)
	t.URL = r.URL
	u.listOut(w, r, "unknown-domains-"+string(p), t, "apps/domains", domainsPage{Domains: t})
}

type domainsPage struct{ Domains web.Table }

type appDrawer struct {
	ID, Name string
	Tag      web.Tag
	Form     *web.TagForm // admins only
	Stats    []web.Stat
	Traffic  template.HTML
	Domains  web.Table
	Machines web.Table
	Users    web.Table
	// MachinesMore and UsersMore say how many rows a capped table left
	// to its CSV export (nil when it shows them all).
	MachinesMore, UsersMore *more
	Hunt                    string // the hunting page for the app's domains
}

// more is a capped list: Shown rows of Total.
type more struct{ Shown, Total int }

// drawerRows caps the drawer's machine and user tables: on a large fleet
// a popular app has a row per machine, and the page stays within its
// weight budget (300 KB) by listing the busiest and linking the CSV.
const drawerRows = 100

func capped(n int) *more {
	if n <= drawerRows {
		return nil
	}
	return &more{Shown: drawerRows, Total: n}
}

func (u *UI) appDrawer(r *http.Request, id string, p web.Period, d appDetail) *web.Drawer {
	name := d.App.Name
	var form *web.TagForm
	if pr, _ := principal(r); pr.Admin() {
		v := &web.View{CSRFField: "csrf_token", CSRFToken: pr.CSRF}
		f := v.TagForm(Base+"/apps/tag", id, name, web.Tag(d.App.Tag))
		form = &f
	}
	now := u.now()
	dr := &appDrawer{ID: id, Name: name, Tag: web.Tag(d.App.Tag), Form: form,
		Traffic: trafficChart("drawer-traffic", name+" traffic, "+strings.ToLower(p.Label()), d.Series, d.Period, 160)}
	dr.Domains = web.Table{ID: "drawer-domains", Caption: "Domains of " + name, Columns: []web.Column{{Key: "d", Label: "Domain"}, {Key: "t", Label: "Traffic", Numeric: true},
		{Key: "b", Label: "Blocks", Numeric: true}, {Key: "w", Label: "Warns", Numeric: true}, {Key: "p", Label: "Bypasses", Numeric: true}}, Empty: web.Empty{Title: "No domains seen"}}
	for _, x := range d.Domains {
		dr.Domains.Rows = append(dr.Domains.Rows, web.Row{Cells: []web.Cell{{Text: x.Key, Mono: true}, web.BytesCell(x.BytesSent + x.BytesReceived),
			web.CountCell(x.Blocks), web.CountCell(x.Warns), web.CountCell(x.Bypasses)}})
	}
	dr.Machines = web.Table{ID: "drawer-machines", Caption: "Machines using " + name, Columns: []web.Column{{Key: "m", Label: "Machine"}, {Key: "t", Label: "Traffic", Numeric: true},
		{Key: "b", Label: "Bypasses", Numeric: true}, {Key: "s", Label: "Last seen"}}, Empty: web.Empty{Title: "No machines"}}
	csv := "/api/discovery/apps/" + url.PathEscape(id) + "?" + url.Values{"period": {string(p)}, "format": {"csv"}}.Encode()
	dr.Machines.CSV = csv + "&list=machines"
	dr.MachinesMore, dr.UsersMore = capped(len(d.Machines)), capped(len(d.Users))
	for _, x := range d.Machines[:min(len(d.Machines), drawerRows)] {
		dr.Machines.Rows = append(dr.Machines.Rows, web.Row{Cells: []web.Cell{web.LinkCell(x.Key, Base+"/machines/"+url.PathEscape(x.Key)+"?period="+string(p)),
			web.BytesCell(x.BytesSent + x.BytesReceived), web.CountCell(x.Bypasses), web.TimeCell(x.LastSeen, now)}})
	}
	dr.Users = web.Table{ID: "drawer-users", Caption: "Users of " + name, Columns: []web.Column{{Key: "u", Label: "User"}, {Key: "b", Label: "Bypassed a warning"}},
		Empty: web.Empty{Title: "No users recorded"}, CSV: csv + "&list=users"}
	for _, x := range d.Users[:min(len(d.Users), drawerRows)] {
		b := "no"
		if x.Bypassed {
			b = "yes"
		}
		dr.Users.Rows = append(dr.Users.Rows, web.Row{Cells: []web.Cell{web.TextCell(x.Name), web.TextCell(b)}})
	}
	var doms []string
	for _, x := range d.Domains {
		if len(doms) < 100 && x.Key != "" && !strings.HasPrefix(x.Key, "(") {
			doms = append(doms, x.Key)
		}
	}
	if len(doms) > 0 {
		dr.Hunt = Base + "/hunt?" + url.Values{"period": {string(p)}, "domains": {strings.Join(doms, ",")}}.Encode()
	}
	all := d.Total
	dr.Stats = []web.Stat{
		{Label: "Traffic", Value: format.Bytes(float64(all.BytesSent + all.BytesReceived))},
		{Label: "Transactions", Value: format.Count(float64(all.Transactions))},
		{Label: "Users", Value: format.Count(float64(len(d.Users)))},
		{Label: "Machines", Value: format.Count(float64(len(d.Machines)))},
		{Label: "Blocks", Value: format.Count(float64(all.Blocks))},
		{Label: "Warns", Value: format.Count(float64(all.Warns))},
		{Label: "Bypasses", Value: format.Count(float64(all.Bypasses)), Sub: fmt.Sprintf("%d distinct users bypassed", d.BypassUsers)},
	}
	close := url.Values{}
	for k, v := range r.URL.Query() {
		if k != "app" {
			close[k] = v
		}
	}
	sub := id
	if d.App.Category != "" {
		sub = d.App.Category + " · " + id
	}
	return &web.Drawer{Title: name, Subtitle: sub, Close: Base + "/apps?" + close.Encode(), Body: dr}
}
