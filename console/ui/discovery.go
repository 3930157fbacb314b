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

	"github.com/netward/netward/console/store"
	"github.com/netward/netward/console/web"
	"github.com/netward/netward/console/web/chart"
	"github.com/netward/netward/console/web/format"
)

func (u *UI) discoveryRoutes() {
	u.page(Base+"/{$}", u.dashboard)
	u.page(Base+"/apps", u.appsPage)
	u.page(Base+"/apps.csv", u.appsPage)
}

// periodOf is the request's period as a discovery range.
func (u *UI) periodOf(r *http.Request) (web.Period, discovery) {
	p := web.PeriodOf(r, web.Period30d)
	from, to := p.Range(u.now().UTC())
	return p, discovery{from: from, to: to, step: p.Step()}
}

// catalogMap is the catalog (shipped and custom apps) with tags, by id.
func (u *UI) catalogMap(w http.ResponseWriter, r *http.Request) (map[string]appJSON, bool) {
	var out struct {
		Apps []appJSON `json:"apps"`
	}
	if !u.get(w, r, "/api/apps?limit=5000", &out) {
		return nil, false
	}
	m := make(map[string]appJSON, len(out.Apps))
	for _, a := range out.Apps {
		m[a.ID] = a
	}
	return m, true
}

func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	u.log.Error("ui: page failed", "path", r.URL.Path, "err", err)
	u.web.Error(w, r, http.StatusInternalServerError, "This page could not be read from the store; the error is in the console's log.")
}

// filled turns sparse buckets into a point per step from d.from to d.to.
func filled(pts []store.UIPoint, d discovery, v func(store.Counters) float64) []chart.Point {
	byT := make(map[int64]store.Counters, len(pts))
	for _, p := range pts {
		byT[p.T.Unix()] = p.Counters
	}
	var out []chart.Point
	for t := d.from; t.Before(d.to); t = t.Add(d.step) {
		out = append(out, chart.Point{T: t, V: v(byT[t.Unix()])})
	}
	return out
}

func down(c store.Counters) float64 { return float64(c.BytesReceived) }
func up(c store.Counters) float64   { return float64(c.BytesSent) }
func txs(c store.Counters) float64  { return float64(c.Transactions) }

func trafficChart(id, title string, pts []store.UIPoint, d discovery, height int) template.HTML {
	return chart.Line{ID: id, Title: title, Unit: chart.Bytes, Area: true, From: d.from, To: d.to.Add(-d.step), Step: d.step, Height: height,
		Series: []chart.Series{{Name: "Download", Color: chart.Blue, Points: filled(pts, d, down)}, {Name: "Upload", Color: chart.Orange, Points: filled(pts, d, up)}}}.HTML()
}

func actionsChart(id, title string, pts []store.UIPoint, d discovery) template.HTML {
	byT := make(map[int64]store.Counters, len(pts))
	for _, p := range pts {
		byT[p.T.Unix()] = p.Counters
	}
	var buckets []chart.Bucket
	for t := d.from; t.Before(d.to); t = t.Add(d.step) {
		c := byT[t.Unix()]
		buckets = append(buckets, chart.Bucket{T: t, Values: []float64{float64(c.Blocks), float64(c.Warns), float64(c.Bypasses)}})
	}
	return chart.Bars{ID: id, Title: title, Step: d.step,
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
	p, d := u.periodOf(r)
	cat, ok := u.catalogMap(w, r)
	if !ok {
		return
	}
	totals, err := u.appTotals(r, "", d)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	pts, err := u.series(r, "", "", d)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	users, machines, err := u.fleetTotals(r, d)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	var all store.Counters
	apps := 0
	var top, topUsers []chart.Item
	byCat := map[string]float64{}
	for _, t := range totals {
		all.Add(t.Counters)
		if t.AppID == "" {
			continue
		}
		apps++
		name, category := appName(cat, t.AppID)
		bytes := float64(t.BytesSent + t.BytesReceived)
		top = append(top, chart.Item{Label: name, Value: bytes, Note: format.Count(float64(t.Users)) + " users · " + category})
		topUsers = append(topUsers, chart.Item{Label: name, Value: float64(t.Users)})
		byCat[category] += bytes
	}
	var cats []chart.Item
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
	for _, pt := range filled(pts, d, func(c store.Counters) float64 { return float64(c.BytesSent + c.BytesReceived) }) {
		spark = append(spark, pt.V)
	}
	for _, pt := range filled(pts, d, txs) {
		sparkTx = append(sparkTx, pt.V)
	}
	q := "?period=" + string(p)
	pg := dashboardPage{
		Empty: len(totals) == 0,
		EmptyState: web.Empty{Title: "No traffic in this period yet", Text: "The charts fill in as enrolled agents upload their telemetry.",
			Action: "Enroll machines", Href: Base + "/settings/enrollment"},
		Stats: []web.Stat{
			{Label: "Discovered apps", Value: format.Count(float64(apps)), Href: Base + "/apps" + q},
			{Label: "Machines", Value: format.Count(float64(machines)), Sub: "with traffic", Href: Base + "/machines" + q},
			{Label: "Users", Value: format.Count(float64(users))},
			{Label: "Traffic", Value: format.Bytes(float64(all.BytesSent + all.BytesReceived)), Sub: "↑ " + format.Bytes(float64(all.BytesSent)) + " · ↓ " + format.Bytes(float64(all.BytesReceived)),
				Spark: chart.Sparkline{Label: "Traffic, " + long, Unit: chart.Bytes, Values: spark}.HTML()},
			{Label: "Transactions", Value: format.Count(float64(all.Transactions)), Sub: fmt.Sprintf("%s blocks · %s bypasses", format.Count(float64(all.Blocks)), format.Count(float64(all.Bypasses))),
				Spark: chart.Sparkline{Label: "Transactions, " + long, Values: sparkTx, Color: chart.Green}.HTML()},
		},
		Traffic: trafficChart("traffic", "Traffic, "+long, pts, d, 0),
		Transactions: chart.Line{ID: "transactions", Title: "Transactions, " + long, From: d.from, To: d.to.Add(-d.step), Step: d.step,
			Series: []chart.Series{{Name: "Transactions", Color: chart.Green, Points: filled(pts, d, txs)}}}.HTML(),
		Actions:       actionsChart("actions", "Blocks, warns and bypasses, "+long, pts, d),
		TopApps:       chart.Ranking{ID: "top-apps", Title: "Top apps by traffic", Unit: chart.Bytes, Items: top, Max: 8}.HTML(),
		TopUsers:      chart.Ranking{ID: "top-users", Title: "Top apps by users", Items: topUsers, Max: 8, Color: chart.Sky}.HTML(),
		TopCategories: chart.Ranking{ID: "top-categories", Title: "Top categories by traffic", Unit: chart.Bytes, Items: cats, Max: 8, Color: chart.Green}.HTML(),
	}
	u.web.Render(w, r, "dashboard", pg)
}

// appName is an app's display name and first category ("Unknown domains"
// for traffic no catalog app claims).
func appName(cat map[string]appJSON, id string) (name, category string) {
	if id == "" {
		return "Unknown domains", "Uncategorised"
	}
	a, ok := cat[id]
	if !ok {
		return id, "Uncategorised"
	}
	category = "Uncategorised"
	if len(a.Categories) > 0 {
		category = a.Categories[0]
	}
	return a.Name, category
}

// --- discovered apps ---

type appsPage struct {
	Apps                  web.Table
	Categories, Tags      []string
	Category, Tag, MinUsr string
	Unknown               int64
	drawer                *web.Drawer
}

func (p appsPage) PageDrawer() *web.Drawer { return p.drawer }

type appRow struct {
	store.UIAppTotal
	app      appJSON
	category string
}

func (u *UI) appsPage(w http.ResponseWriter, r *http.Request) {
	p, d := u.periodOf(r)
	q := r.URL.Query()
	cat, ok := u.catalogMap(w, r)
	if !ok {
		return
	}
	totals, err := u.appTotals(r, "", d)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	pg := appsPage{Category: q.Get("category"), Tag: q.Get("tag"), MinUsr: q.Get("minUsers"),
		Tags: []string{"Sanctioned", "Unsanctioned", "Monitored", "Untagged"}}
	minUsers, _ := strconv.ParseInt(pg.MinUsr, 10, 64)
	search := strings.ToLower(strings.TrimSpace(q.Get("q")))
	seenCat := map[string]bool{}
	var rows []appRow
	for _, t := range totals {
		if t.AppID == "" {
			pg.Unknown = t.Transactions
			continue
		}
		a, ok := cat[t.AppID]
		if !ok {
			a = appJSON{}
			a.ID, a.Name = t.AppID, t.AppID
		}
		_, category := appName(cat, t.AppID)
		if !seenCat[category] {
			seenCat[category] = true
			pg.Categories = append(pg.Categories, category)
		}
		tag := a.Tag
		switch {
		case pg.Category != "" && !slices.Contains(a.Categories, pg.Category) && category != pg.Category:
			continue
		case pg.Tag == "Untagged" && tag != "", pg.Tag != "" && pg.Tag != "Untagged" && tag != pg.Tag:
			continue
		case t.Users < minUsers:
			continue
		case search != "" && !strings.Contains(strings.ToLower(a.Name), search) && !strings.Contains(a.ID, search):
			continue
		}
		rows = append(rows, appRow{UIAppTotal: t, app: a, category: category})
	}
	slices.Sort(pg.Categories)
	sortKey, desc := q.Get("sort"), q.Get("dir") != "asc"
	if sortKey == "" {
		sortKey, desc = "traffic", true
	}
	key := func(a appRow) float64 {
		switch sortKey {
		case "transactions":
			return float64(a.Transactions)
		case "users":
			return float64(a.Users)
		case "machines":
			return float64(a.Machines)
		case "seen":
			return float64(a.LastHour)
		case "blocks":
			return float64(a.Blocks)
		case "bypasses":
			return float64(a.Bypasses)
		}
		return float64(a.BytesSent + a.BytesReceived)
	}
	slices.SortStableFunc(rows, func(a, b appRow) int {
		var c int
		switch sortKey {
		case "app":
			c = strings.Compare(strings.ToLower(a.app.Name), strings.ToLower(b.app.Name))
		case "tag":
			c = strings.Compare(web.Tag(a.app.Tag).Label(), web.Tag(b.app.Tag).Label())
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
		Columns: []web.Column{{Key: "app", Label: "App", Sortable: true}, {Key: "category", Label: "Category", Narrow: true},
			{Key: "traffic", Label: "Traffic", Numeric: true, Sortable: true}, {Key: "transactions", Label: "Transactions", Numeric: true, Sortable: true, Narrow: true},
			{Key: "users", Label: "Users", Numeric: true, Sortable: true}, {Key: "machines", Label: "Machines", Numeric: true, Sortable: true},
			{Key: "blocks", Label: "Blocks", Numeric: true, Sortable: true, Narrow: true}, {Key: "bypasses", Label: "Bypasses", Numeric: true, Sortable: true, Narrow: true},
			{Key: "seen", Label: "Last seen", Sortable: true, Narrow: true}, {Key: "tag", Label: "Tag", Sortable: true}},
		Empty: web.Empty{Title: "No apps discovered in this period", Text: "Apps appear here once enrolled agents upload traffic. Try a longer period or other filters.",
			Action: "Enroll machines", Href: Base + "/settings/enrollment"},
		Select: view.admin, Form: "bulk-tag"}
	page := pageParam(r)
	if !csvWanted(r) {
		t.Pager = web.NewPager(r.URL, page, 100, len(rows))
		rows = rows[min(len(rows), (t.Pager.Page-1)*100):min(len(rows), t.Pager.Page*100)]
	}
	for _, a := range rows {
		dq := url.Values{}
		for k, v := range q {
			dq[k] = v
		}
		dq.Set("app", a.AppID)
		t.Rows = append(t.Rows, web.Row{Key: a.AppID, Label: a.app.Name, Cells: []web.Cell{
			{Text: a.app.Name, Href: "?" + dq.Encode() + "#drawer", Drawer: true}, web.TextCell(a.category),
			web.BytesCell(a.BytesSent + a.BytesReceived), web.CountCell(a.Transactions), web.CountCell(a.Users), web.CountCell(a.Machines),
			web.CountCell(a.Blocks), web.CountCell(a.Bypasses), web.TimeCell(time.Unix(a.LastHour+3600, 0), now), web.TagCell(web.Tag(a.app.Tag))}})
	}
	if csvWanted(r) {
		u.web.WriteCSV(w, r, "discovered-apps-"+string(p), t)
		return
	}
	pg.Apps = t
	if id := q.Get("app"); id != "" {
		dr, err := u.appDrawer(r, cat, id, d, p)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		pg.drawer = dr
	}
	u.web.Render(w, r, "apps", pg)
}

type appDrawer struct {
	ID, Name string
	Tag      web.Tag
	Form     *web.TagForm // admins only
	Stats    []web.Stat
	Traffic  template.HTML
	Domains  web.Table
	Machines web.Table
	Users    web.Table
	Back     string
}

func (u *UI) appDrawer(r *http.Request, cat map[string]appJSON, id string, d discovery, p web.Period) (*web.Drawer, error) {
	name, category := appName(cat, id)
	a := cat[id]
	pts, err := u.series(r, "", id, d)
	if err != nil {
		return nil, err
	}
	doms, err := u.appBy(r, id, "domain", d)
	if err != nil {
		return nil, err
	}
	devs, err := u.appBy(r, id, "device_id", d)
	if err != nil {
		return nil, err
	}
	users, err := u.appUsers(r, id, d)
	if err != nil {
		return nil, err
	}
	var all store.Counters
	var form *web.TagForm
	if pr, _ := principal(r); pr.Admin() {
		v := &web.View{CSRFField: "csrf_token", CSRFToken: pr.CSRF}
		f := v.TagForm(Base+"/apps/tag", id, name, web.Tag(a.Tag))
		form = &f
	}
	for _, x := range doms {
		all.Add(x.Counters)
	}
	bypassers := 0
	now := u.now()
	dr := &appDrawer{ID: id, Name: name, Tag: web.Tag(a.Tag), Form: form, Back: r.URL.RequestURI(),
		Traffic: trafficChart("drawer-traffic", name+" traffic, "+strings.ToLower(p.Label()), pts, d, 160)}
	dr.Domains = web.Table{ID: "drawer-domains", Caption: "Domains of " + name, Columns: []web.Column{{Key: "d", Label: "Domain"}, {Key: "t", Label: "Traffic", Numeric: true},
		{Key: "b", Label: "Blocks", Numeric: true}, {Key: "w", Label: "Warns", Numeric: true}, {Key: "p", Label: "Bypasses", Numeric: true}}, Empty: web.Empty{Title: "No domains seen"}}
	for _, x := range doms {
		dr.Domains.Rows = append(dr.Domains.Rows, web.Row{Cells: []web.Cell{{Text: x.Key, Mono: true}, web.BytesCell(x.BytesSent + x.BytesReceived),
			web.CountCell(x.Blocks), web.CountCell(x.Warns), web.CountCell(x.Bypasses)}})
	}
	dr.Machines = web.Table{ID: "drawer-machines", Caption: "Machines using " + name, Columns: []web.Column{{Key: "m", Label: "Machine"}, {Key: "t", Label: "Traffic", Numeric: true},
		{Key: "u", Label: "Users", Numeric: true}, {Key: "s", Label: "Last seen"}}, Empty: web.Empty{Title: "No machines"}}
	for _, x := range devs {
		dr.Machines.Rows = append(dr.Machines.Rows, web.Row{Cells: []web.Cell{web.LinkCell(x.Key, Base+"/machines/"+url.PathEscape(x.Key)+"?period="+string(p)),
			web.BytesCell(x.BytesSent + x.BytesReceived), web.CountCell(x.Users), web.TimeCell(time.Unix(x.LastHour+3600, 0), now)}})
	}
	dr.Users = web.Table{ID: "drawer-users", Caption: "Users of " + name, Columns: []web.Column{{Key: "u", Label: "User"}, {Key: "m", Label: "Machines", Numeric: true}, {Key: "b", Label: "Bypassed"}},
		Empty: web.Empty{Title: "No users recorded"}}
	for _, x := range users {
		b := "no"
		if x.Bypassed {
			b, bypassers = "yes", bypassers+1
		}
		dr.Users.Rows = append(dr.Users.Rows, web.Row{Cells: []web.Cell{web.TextCell(x.User), web.CountCell(x.Machines), web.TextCell(b)}})
	}
	dr.Stats = []web.Stat{
		{Label: "Traffic", Value: format.Bytes(float64(all.BytesSent + all.BytesReceived))},
		{Label: "Transactions", Value: format.Count(float64(all.Transactions))},
		{Label: "Users", Value: format.Count(float64(len(users)))},
		{Label: "Machines", Value: format.Count(float64(len(devs)))},
		{Label: "Blocks", Value: format.Count(float64(all.Blocks))},
		{Label: "Warns", Value: format.Count(float64(all.Warns))},
		{Label: "Bypasses", Value: format.Count(float64(all.Bypasses)), Sub: fmt.Sprintf("%d distinct users bypassed", bypassers)},
	}
	close := url.Values{}
	for k, v := range r.URL.Query() {
		if k != "app" {
			close[k] = v
		}
	}
	return &web.Drawer{Title: name, Subtitle: category + " · " + id, Close: Base + "/apps?" + close.Encode(), Body: dr}, nil
}
