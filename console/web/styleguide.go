package web

import (
	"html/template"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netward/netward/console/web/chart"
	"github.com/netward/netward/console/web/format"
)

// StyleGuide serves the style-guide page (GET Base+"/styleguide"): every
// component and chart with realistic sample data, the reference for page
// authors and the page the browser tests exercise. ?drawer=APP opens an
// app's drawer, ?sort=, ?dir=, ?q= and ?page= work as on real lists, a POST
// of the tag form answers with a flash message and changes nothing, and
// Base+"/styleguide/apps.csv" exports the apps table.
func (r *Renderer) StyleGuide() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		now := sampleNow()
		switch {
		case strings.HasSuffix(req.URL.Path, "/apps.csv"):
			r.WriteCSV(w, req, "styleguide-apps", sampleAppsTable(req.URL, now))
		case req.Method == http.MethodPost:
			r.styleGuidePost(w, req)
		case req.Method == http.MethodGet || req.Method == http.MethodHead:
			r.Render(w, req, "styleguide", newStyleGuide(r, req, now))
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			r.Error(w, req, http.StatusMethodNotAllowed, "This page only shows components.")
		}
	})
}

// styleGuidePost demonstrates the post/redirect/get pattern: it checks the
// CSRF token like a real handler would, then flashes what a real page would
// have done.
func (r *Renderer) styleGuidePost(w http.ResponseWriter, req *http.Request) {
	req.Body = http.MaxBytesReader(w, req.Body, 64<<10)
	if err := req.ParseForm(); err != nil {
		r.Error(w, req, http.StatusBadRequest, "The form could not be read.")
		return
	}
	if r.cfg.CSRFToken != nil && req.PostForm.Get(r.cfg.CSRFField) != r.cfg.CSRFToken(req) {
		r.Error(w, req, http.StatusForbidden, "The form expired or came from another site. Reload the page and try again.")
		return
	}
	app := req.PostForm.Get("app")
	name := app
	for _, a := range sampleApps() {
		if a.id == app {
			name = a.name
		}
	}
	tag, ok := map[string]Tag{"": TagNone, "sanctioned": TagSanctioned, "unsanctioned": TagUnsanctioned, "monitored": TagMonitored}[req.PostForm.Get("tag")]
	if !ok {
		r.Error(w, req, http.StatusBadRequest, "Unknown tag: choose Sanctioned, Unsanctioned, Monitored or Clear.")
		return
	}
	msg := "Style guide: " + name + " would now be untagged. Nothing was changed."
	if tag != TagNone {
		msg = "Style guide: " + name + " would now be tagged " + tag.Label() + ". Nothing was changed."
	}
	r.Flash(w, req, Flash{Kind: FlashSuccess, Text: msg})
	http.Redirect(w, req, r.cfg.Base+"/styleguide", http.StatusSeeOther)
}

// sampleNow is the style guide's fixed clock, so its page is the same on
// every run (golden test) and screenshots are comparable.
func sampleNow() time.Time { return time.Date(2026, 6, 30, 14, 20, 0, 0, time.UTC) }

type sampleApp struct {
	id, name, category string
	domains            []string
	tag                Tag
	traffic            float64 // bytes in 30 days
	users, machines    int
	blocks, warns      int
	bypasses, bypassU  int
	risk               int // 1..10 catalog score
}

// sampleApps are names and domains from the shipped v2fly-derived catalog.
func sampleApps() []sampleApp {
	return []sampleApp{
		{"dropbox", "Dropbox", "Cloud storage", []string{"dropbox.com", "dropboxapi.com", "dropboxusercontent.com", "db.tt"}, TagMonitored, 412e9, 318, 402, 0, 1840, 212, 61, 6},
		{"onedrive", "OneDrive", "Cloud storage", []string{"onedrive.com", "1drv.com", "1drv.ms", "livefilestore.com"}, TagSanctioned, 688e9, 1012, 1170, 0, 0, 0, 0, 9},
		{"github", "GitHub", "Development", []string{"github.com", "githubusercontent.com", "github.io", "githubassets.com"}, TagSanctioned, 301e9, 204, 236, 0, 0, 0, 0, 9},
		{"slack", "Slack", "Communication", []string{"slack.com", "slack-edge.com", "slack-files.com", "slack-imgs.com"}, TagSanctioned, 96e9, 871, 990, 0, 0, 0, 0, 8},
		{"openai", "OpenAI", "AI", []string{"openai.com", "chatgpt.com", "oaistatic.com", "oaiusercontent.com"}, TagMonitored, 18.4e9, 266, 281, 0, 3120, 402, 118, 5},
		{"anthropic", "Anthropic", "AI", []string{"anthropic.com", "claude.ai", "clau.de"}, TagNone, 7.9e9, 88, 91, 0, 0, 0, 0, 6},
		{"mega", "Mega", "Cloud storage", []string{"mega.nz", "mega.io", "mega.co.nz"}, TagUnsanctioned, 1.2e9, 14, 15, 966, 0, 0, 0, 3},
		{"telegram", "Telegram", "Communication", []string{"telegram.org", "t.me", "telegra.ph", "cdn-telegram.org"}, TagUnsanctioned, 0.6e9, 23, 25, 1408, 0, 0, 0, 3},
		{"deepseek", "DeepSeek", "AI", []string{"deepseek.com"}, TagUnsanctioned, 0.2e9, 9, 9, 311, 0, 0, 0, 2},
		{"tiktok", "TikTok", "Entertainment", []string{"tiktok.com", "tiktokcdn.com", "tiktokv.com", "byteoversea.com"}, TagNone, 54e9, 191, 204, 0, 0, 0, 0, 4},
		{"zoom", "Zoom", "Uncategorized", []string{"zoom.us", "zoom.com"}, TagSanctioned, 233e9, 640, 702, 0, 0, 0, 0, 8},
		{"atlassian", "Atlassian", "Tech companies", []string{"atlassian.com", "atlassian.net", "bitbucket.org"}, TagSanctioned, 41e9, 402, 433, 0, 0, 0, 0, 8},
		{"discord", "Discord", "Communication", []string{"discord.com", "discord.gg", "discordapp.com", "discord.media"}, TagNone, 12e9, 61, 64, 0, 0, 0, 0, 4},
		{"whatsapp", "WhatsApp", "Communication", []string{"whatsapp.com", "whatsapp.net", "wa.me"}, TagMonitored, 9.7e9, 144, 150, 0, 980, 77, 31, 5},
	}
}

type sampleMachine struct {
	name, os, agent, user, ip string
	seq                       int
	seen                      time.Duration
	risk                      Risk
	traffic                   float64
}

func sampleMachines() []sampleMachine {
	return []sampleMachine{
		{"FIN-LT-0142", "Windows 11 23H2", "0.9.2", `CORP\amartin`, "192.0.2.41", 1843, 3 * time.Minute, RiskHigh, 48.2e9},
		{"ENG-WS-0031", "Ubuntu 24.04", "0.9.2", `CORP\dchen`, "198.51.100.23", 1843, 7 * time.Minute, RiskMedium, 131e9},
		{"HR-LT-0077", "Windows 11 24H2", "0.9.1", `CORP\sokafor`, "192.0.2.118", 1841, 26 * time.Hour, RiskMedium, 9.1e9},
		{"SALES-LT-0210", "Windows 10 22H2", "0.9.2", `CORP\jlindqvist`, "203.0.113.77", 1843, 12 * time.Minute, RiskLow, 22.4e9},
		{"ENG-LT-0119", "Debian 12", "0.9.2", `CORP\pnair`, "2001:db8:4::1c", 1843, 2 * time.Minute, RiskInformational, 64.8e9},
		{"OPS-SRV-0004", "Ubuntu 22.04", "0.8.7", `svc-backup`, "198.51.100.4", 1790, 9 * 24 * time.Hour, RiskLow, 302e9},
	}
}

// styleGuide is the page data of the style guide.
type styleGuide struct {
	Now                                          time.Time
	Stats                                        []Stat
	Traffic, Transactions, Actions               template.HTML
	TopApps, TopUsers, TopCategories, EmptyChart template.HTML
	Apps, Machines, Events                       Table
	Tabs                                         Tabs
	Empty                                        Empty
	Command                                      Command
	Tags                                         []Tag
	Risks                                        []Risk
	Flashes                                      []Flash
	Drawer                                       *Drawer
	Period                                       Period
}

// PageDrawer opens the app drawer when ?drawer= names a sample app.
func (s styleGuide) PageDrawer() *Drawer { return s.Drawer }

// appDrawer is the body of the app drawer.
type appDrawer struct {
	App     sampleApp
	Tag     Tag
	Stats   []Stat
	Traffic template.HTML
	Domains []string
	Users   Table
	Form    TagForm
}

func newStyleGuide(r *Renderer, req *http.Request, now time.Time) styleGuide {
	period := PeriodOf(req, r.cfg.DefaultPeriod)
	from, to := period.Range(now)
	step := period.Step()
	rng := rand.New(rand.NewPCG(19, 2026))
	var down, up, tx []chart.Point
	var actions []chart.Bucket
	var sparkDown, sparkTx []float64
	for t := from; t.Before(to); t = t.Add(step) {
		h := float64(t.Hour())
		work := 0.25
		if t.Weekday() != time.Saturday && t.Weekday() != time.Sunday {
			work = 1
		}
		diurnal := 0.15 + 0.85*math.Max(0, math.Sin((h-6)/13*math.Pi))
		if step >= 24*time.Hour {
			diurnal = 0.55
		}
		scale := float64(step / time.Hour)
		d := scale * (2.2e9*work*diurnal + 0.3e9*rng.Float64())
		u := scale * (0.45e9*work*diurnal + 0.08e9*rng.Float64())
		n := scale * (61000*work*diurnal + 9000*rng.Float64())
		down, up = append(down, chart.Point{T: t, V: d}), append(up, chart.Point{T: t, V: u})
		tx = append(tx, chart.Point{T: t, V: n})
		sparkDown, sparkTx = append(sparkDown, d+u), append(sparkTx, n)
	}
	days := int(period.Duration() / (24 * time.Hour))
	bucketStep := 24 * time.Hour
	if period == Period24h {
		days, bucketStep = 24, time.Hour
	}
	for i := 0; i < days; i++ {
		t := from.Add(time.Duration(i) * bucketStep)
		w := 1.0
		if bucketStep == 24*time.Hour && (t.Weekday() == time.Saturday || t.Weekday() == time.Sunday) {
			w = 0.3
		}
		f := float64(bucketStep/time.Hour) / 24
		actions = append(actions, chart.Bucket{T: t, Values: []float64{
			math.Round(f * w * (95 + 40*rng.Float64())), math.Round(f * w * (160 + 70*rng.Float64())), math.Round(f * w * (18 + 14*rng.Float64())),
		}})
	}
	long := period.Label()
	s := styleGuide{
		Now: now, Period: period,
		Tags:  []Tag{TagSanctioned, TagUnsanctioned, TagMonitored, TagNone},
		Risks: []Risk{RiskHigh, RiskMedium, RiskLow, RiskInformational},
		Stats: []Stat{
			{Label: "Discovered apps", Value: "214", Sub: "9 new this period", Href: "#apps"},
			{Label: "Machines", Value: format.Int(1024), Sub: "6 stale", Href: "#machines"},
			{Label: "Users", Value: format.Int(1318)},
			{Label: "Traffic", Value: format.Bytes(sum(sparkDown)), Sub: "↑ " + format.Bytes(sumPts(up)) + " · ↓ " + format.Bytes(sumPts(down)),
				Spark: chart.Sparkline{Label: "Traffic, " + strings.ToLower(long), Unit: chart.Bytes, Values: sparkDown}.HTML()},
			{Label: "Transactions", Value: format.Count(sum(sparkTx)),
				Spark: chart.Sparkline{Label: "Transactions, " + strings.ToLower(long), Values: sparkTx, Color: chart.Green}.HTML()},
		},
		Traffic: chart.Line{ID: "traffic", Title: "Traffic, " + strings.ToLower(long), Unit: chart.Bytes, Area: true,
			From: from, To: to.Add(-step), Step: step, Series: []chart.Series{
				{Name: "Download", Color: chart.Blue, Points: down}, {Name: "Upload", Color: chart.Orange, Points: up}}}.HTML(),
		Transactions: chart.Line{ID: "transactions", Title: "Transactions, " + strings.ToLower(long),
			From: from, To: to.Add(-step), Step: step, Series: []chart.Series{{Name: "Transactions", Color: chart.Green, Points: tx}}}.HTML(),
		Actions: chart.Bars{ID: "actions", Title: "Blocks, warns and bypasses, " + strings.ToLower(long), Step: bucketStep,
			Layers:  []chart.Layer{{Name: "Blocks", Color: chart.Vermillion}, {Name: "Warns", Color: chart.Orange}, {Name: "Bypasses", Color: chart.Purple}},
			Buckets: actions}.HTML(),
		EmptyChart: chart.Line{ID: "empty-chart", Title: "Traffic of a machine that has not reported yet"}.HTML(),
		Tabs: Tabs{Label: "Machine", Items: []Tab{
			{Label: "Overview", Href: "#tabs", Current: true}, {Label: "Discovered apps", Href: "#tabs", Count: "38"},
			{Label: "User history", Href: "#tabs", Count: "3"}, {Label: "IP address history", Href: "#tabs", Count: "5"},
			{Label: "Events", Href: "#tabs"}}},
		Empty: Empty{Title: "No alerts in this period", Text: "Alerts appear when an Unsanctioned app is accessed or not blocked.",
			Action: "Review alert settings", Href: "#settings"},
		Command: Command{ID: "enroll-cmd", Label: "enrollment command",
			Text: "sudo netward enroll --console https://198.51.100.10:8443 --key /etc/netward/enroll.key --fingerprint SHA256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		Flashes: []Flash{
			{Kind: FlashSuccess, Text: "Dropbox tagged Monitored. Machines warn within a few seconds."},
			{Kind: FlashInfo, Text: "Enrollment key “Berlin office” expires in 3 days."},
			{Kind: FlashWarning, Text: "6 machines hold an old policy sequence."},
			{Kind: FlashError, Text: "Line 14 of indicators.csv: “*.example..com” is not a valid domain."},
		},
	}
	var top, users []chart.Item
	cats := map[string]float64{}
	for _, a := range sampleApps() {
		top = append(top, chart.Item{Label: a.name, Value: a.traffic, Note: format.Int(int64(a.users)) + " users · " + a.category})
		users = append(users, chart.Item{Label: a.name, Value: float64(a.users)})
		cats[a.category] += a.traffic
	}
	var catItems []chart.Item
	for c, v := range cats {
		catItems = append(catItems, chart.Item{Label: c, Value: v})
	}
	s.TopApps = chart.Ranking{ID: "top-apps", Title: "Top apps by traffic", Unit: chart.Bytes, Items: top, Max: 6}.HTML()
	s.TopUsers = chart.Ranking{ID: "top-users", Title: "Top apps by users", Items: users, Max: 6, Color: chart.Sky}.HTML()
	s.TopCategories = chart.Ranking{ID: "top-categories", Title: "Top categories by traffic", Unit: chart.Bytes, Items: catItems, Max: 6, Color: chart.Green}.HTML()
	s.Apps = sampleAppsTable(req.URL, now)
	s.Machines = sampleMachinesTable(req.URL, now)
	s.Events = sampleEventsTable(now)
	if id := req.URL.Query().Get("drawer"); id != "" {
		for _, a := range sampleApps() {
			if a.id == id {
				s.Drawer = r.sampleDrawer(req, a, from, to, step, rng)
			}
		}
	}
	return s
}

func (r *Renderer) sampleDrawer(req *http.Request, a sampleApp, from, to time.Time, step time.Duration, rng *rand.Rand) *Drawer {
	q := req.URL.Query()
	q.Del("drawer")
	closeHref := "?" + q.Encode() + "#apps"
	if len(q) == 0 {
		closeHref = r.cfg.Base + "/styleguide#apps"
	}
	var pts []chart.Point
	for t := from; t.Before(to); t = t.Add(step) {
		pts = append(pts, chart.Point{T: t, V: a.traffic / float64(to.Sub(from)/step) * (0.4 + 1.2*rng.Float64())})
	}
	users := Table{ID: "drawer-users", Caption: a.name + ": users who bypassed the warning", ClientSort: true, Columns: []Column{
		{Key: "user", Label: "User", Sortable: true}, {Key: "machine", Label: "Machine", Sortable: true},
		{Key: "bypasses", Label: "Bypasses", Numeric: true, Sortable: true}, {Key: "last", Label: "Last", Sortable: true},
	}, Empty: Empty{Title: "Nobody bypassed a warning for " + a.name}}
	if a.bypasses > 0 {
		for i, m := range sampleMachines()[:4] {
			users.Rows = append(users.Rows, Row{Cells: []Cell{{Text: m.user, Mono: true}, {Text: m.name},
				CountCell(int64(a.bypasses / (i + 2))), TimeCell(sampleNow().Add(-time.Duration(i*5+1)*time.Hour), sampleNow())}})
		}
	}
	v := &View{CSRFField: r.cfg.CSRFField}
	if r.cfg.CSRFToken != nil {
		v.CSRFToken = r.cfg.CSRFToken(req)
	}
	body := appDrawer{
		App: a, Tag: a.tag, Domains: a.domains, Users: users,
		Form: v.TagForm(r.cfg.Base+"/styleguide", a.id, a.name, a.tag),
		Stats: []Stat{
			{Label: "Traffic", Value: format.Bytes(a.traffic)}, {Label: "Users", Value: format.Int(int64(a.users))},
			{Label: "Machines", Value: format.Int(int64(a.machines))}, {Label: "Blocks", Value: format.Int(int64(a.blocks))},
			{Label: "Warns", Value: format.Int(int64(a.warns))},
			{Label: "Bypasses", Value: format.Int(int64(a.bypasses)), Sub: format.Int(int64(a.bypassU)) + " distinct users"},
		},
		Traffic: chart.Line{ID: "drawer-traffic", Title: a.name + " traffic", Unit: chart.Bytes, Area: true, Height: 160,
			Series: []chart.Series{{Name: a.name, Points: pts}}}.HTML(),
	}
	return &Drawer{Title: a.name, Subtitle: a.category + " · catalog score " + strconv.Itoa(a.risk) + "/10", Close: closeHref, Body: body}
}

func sampleAppsTable(u *url.URL, now time.Time) Table {
	q := u.Query()
	t := Table{ID: "apps-table", Caption: "Discovered apps", URL: u, ClientSort: true, Filter: true, FilterLabel: "Filter apps",
		Query: q.Get("q"), CSV: "styleguide/apps.csv", Select: true, Form: "bulk-tag",
		Sort: q.Get("sort"), Desc: q.Get("dir") == "desc",
		Columns: []Column{
			{Key: "app", Label: "App", Sortable: true}, {Key: "category", Label: "Category", Sortable: true, Narrow: true},
			{Key: "tag", Label: "Tag", Sortable: true}, {Key: "traffic", Label: "Traffic", Numeric: true, Sortable: true},
			{Key: "users", Label: "Users", Numeric: true, Sortable: true}, {Key: "machines", Label: "Machines", Numeric: true, Sortable: true, Narrow: true},
			{Key: "seen", Label: "Last seen", Sortable: true, Narrow: true},
		},
		Empty: Empty{Title: "No app matches “" + q.Get("q") + "”", Text: "Try another name or clear the filter.", Action: "Clear the filter", Href: "?#apps"},
	}
	if u.Path != "" && !strings.HasSuffix(u.Path, "/styleguide") {
		t.CSV = ""
	}
	apps := sampleApps()
	key := map[string]func(a, b sampleApp) bool{
		"app":      func(a, b sampleApp) bool { return a.name < b.name },
		"category": func(a, b sampleApp) bool { return a.category < b.category },
		"tag":      func(a, b sampleApp) bool { return a.tag.Label() < b.tag.Label() },
		"traffic":  func(a, b sampleApp) bool { return a.traffic < b.traffic },
		"users":    func(a, b sampleApp) bool { return a.users < b.users },
		"machines": func(a, b sampleApp) bool { return a.machines < b.machines },
		"seen":     func(a, b sampleApp) bool { return a.risk < b.risk },
	}
	if less, ok := key[t.Sort]; ok {
		sort.SliceStable(apps, func(i, j int) bool {
			if t.Desc {
				return less(apps[j], apps[i])
			}
			return less(apps[i], apps[j])
		})
	}
	for i, a := range apps {
		if t.Query != "" && !strings.Contains(strings.ToLower(a.name+" "+a.category), strings.ToLower(t.Query)) {
			continue
		}
		seen := now.Add(-time.Duration(i*i*7+2) * time.Minute)
		drawer := url.Values{"drawer": {a.id}}
		for k, v := range q {
			if k != "drawer" {
				drawer[k] = v
			}
		}
		t.Rows = append(t.Rows, Row{Key: a.id, Label: a.name, Cells: []Cell{
			{Text: a.name, Href: "?" + drawer.Encode() + "#drawer", Drawer: true, Sub: a.domains[0]},
			TextCell(a.category), TagCell(a.tag), BytesCell(int64(a.traffic)), CountCell(int64(a.users)),
			CountCell(int64(a.machines)), TimeCell(seen, now),
		}})
	}
	return t
}

func sampleMachinesTable(u *url.URL, now time.Time) Table {
	t := Table{ID: "machines-table", Caption: "Machines", URL: u, Columns: []Column{
		{Key: "name", Label: "Machine"}, {Key: "risk", Label: "Risk"}, {Key: "user", Label: "Last user", Narrow: true},
		{Key: "ip", Label: "IP address", Narrow: true}, {Key: "os", Label: "OS", Narrow: true},
		{Key: "agent", Label: "Agent"}, {Key: "policy", Label: "Policy"}, {Key: "traffic", Label: "Traffic", Numeric: true},
		{Key: "seen", Label: "Last check-in"},
	}}
	for _, m := range sampleMachines() {
		policy := Cell{Text: "#" + strconv.Itoa(m.seq), Sort: strconv.Itoa(m.seq)}
		if m.seq < 1843 {
			policy.Flag, policy.Sub = "stale", strconv.Itoa(1843-m.seq)+" behind"
		}
		t.Rows = append(t.Rows, Row{Key: m.name, Label: m.name, Cells: []Cell{
			{Text: m.name, Href: "#tabs"}, RiskCell(m.risk), {Text: m.user, Mono: true}, {Text: m.ip, Mono: true},
			TextCell(m.os), TextCell(m.agent), policy, BytesCell(int64(m.traffic)), TimeCell(now.Add(-m.seen), now),
		}})
	}
	page, _ := strconv.Atoi(u.Query().Get("page"))
	t.Pager = NewPager(u, page, 6, 1024)
	return t
}

func sampleEventsTable(now time.Time) Table {
	t := Table{ID: "events-table", Caption: "Events of FIN-LT-0142", Columns: []Column{
		{Key: "time", Label: "Time"}, {Key: "action", Label: "Action"}, {Key: "url", Label: "Remote URL"},
		{Key: "process", Label: "Process", Narrow: true}, {Key: "user", Label: "User", Narrow: true},
	}}
	events := []struct{ ago, action, url, process string }{
		{"3m", "Blocked", "mega.nz", "chrome.exe"},
		{"9m", "Bypassed", "chatgpt.com", "msedge.exe"},
		{"9m", "Warned", "chatgpt.com", "msedge.exe"},
		{"41m", "Allowed", "slack-edge.com", "slack.exe"},
		{"2h", "Blocked", "telegram.org", "Telegram.exe"},
	}
	for _, e := range events {
		d, _ := time.ParseDuration(e.ago)
		t.Rows = append(t.Rows, Row{Cells: []Cell{
			{Text: now.Add(-d).Format("15:04"), Sub: format.Ago(now.Add(-d), now)}, TextCell(e.action),
			{Text: e.url, Mono: true}, {Text: e.process, Mono: true}, {Text: `CORP\amartin`, Mono: true},
		}})
	}
	return t
}

func sum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}

func sumPts(p []chart.Point) float64 {
	s := 0.0
	for _, x := range p {
		s += x.V
	}
	return s
}
