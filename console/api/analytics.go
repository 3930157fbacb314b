package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/discovery"
	"github.com/netward/netward/console/rawchunk"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/telemetry"
)

// analyticsRoutes are the discovery, machine, hunting and alert views
// (docs/console.md "Analytics"). Every list answers CSV too (?format=csv),
// with the columns of its JSON objects.
func (a *API) analyticsRoutes() {
	a.handle("GET /api/discovery/summary", reader, a.csv("series", a.fleetSummary))
	a.handle("GET /api/discovery/apps", reader, a.csv("apps", a.discoveredApps))
	a.handle("GET /api/discovery/candidates", reader, a.csv("domains", a.candidates))
	a.handle("GET /api/discovery/apps/{id}", reader, a.csv("", a.discoveredApp))
	a.handle("GET /api/discovery/domains/{domain}", reader, a.csv("", a.discoveredDomain))
	a.handle("GET /api/machines", reader, a.csv("machines", a.machines))
	a.handle("GET /api/machines/{id}", reader, a.csv("", a.machine))
	a.handle("GET /api/machines/{id}/events", reader, a.csv("events", a.machineEvents))
	a.handle("GET /api/hunt", reader, a.csv("events", a.hunt))
	a.handle("GET /api/alerts", reader, a.csv("alerts", a.listAlerts))
	a.handle("GET /api/alerts/{id}", reader, a.getAlert)
	a.handle("POST /api/alerts/{id}/acknowledge", admin, a.ackAlert)
	a.handle("POST /api/alerts/{id}/reopen", admin, a.ackAlert)
	a.handle("GET /api/alert-destinations", reader, a.csv("destinations", a.destinations))
	a.handle("POST /api/alert-destinations", admin, a.createDestination)
	a.handle("DELETE /api/alert-destinations/{id}", admin, a.deleteDestination)
	a.handle("POST /api/alert-destinations/{id}/test", admin, a.testDestination)
	a.handle("GET /api/discovery/policies", reader, a.csv("policies", a.policies))
	a.handle("POST /api/discovery/policies", admin, a.createPolicy)
	a.handle("DELETE /api/discovery/policies/{id}", admin, a.deletePolicy)
	a.handle("POST /api/discovery/policies/run", admin, a.runPolicies)
	a.handle("GET /api/discovery/auto-tags", reader, a.csv("autoTags", a.autoTags))
	a.handle("POST /api/discovery/auto-tags/{id}/revert", admin, a.revertAutoTag)
}

// periodParam reads ?period=24h|7d|30d|90d (default 24h) or ?from=&to=
// (RFC 3339) and resolves it to the rollup buckets that answer it.
func (a *API) periodParam(r *http.Request) (store.Period, error) {
	now := a.now().UTC()
	q := r.URL.Query()
	if q.Get("from") != "" || q.Get("to") != "" {
		from, err := timeParam(r, "from", now.Add(-24*time.Hour))
		if err != nil {
			return store.Period{}, err
		}
		to, err := timeParam(r, "to", now)
		if err != nil {
			return store.Period{}, err
		}
		if !to.After(from) {
			return store.Period{}, invalid("to (%s) must be after from (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
		}
		if to.Sub(from) > 400*24*time.Hour {
			return store.Period{}, invalid("a period is at most 400 days")
		}
		return store.PeriodFor(from, to, now), nil
	}
	switch p := q.Get("period"); p {
	case "", "24h":
		return store.PeriodFor(now.Add(-24*time.Hour), now, now), nil
	case "7d", "30d", "90d":
		days, _ := strconv.Atoi(strings.TrimSuffix(p, "d"))
		to := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
		return store.PeriodFor(to.Add(-time.Duration(days)*24*time.Hour), to, now), nil
	default:
		return store.Period{}, invalid("period %q: want 24h, 7d, 30d or 90d, or from= and to= (RFC 3339)", p)
	}
}

// discoveredView is a discovered app in the list.
type discoveredView struct {
	AppID    string    `json:"appId"`
	Name     string    `json:"name"`
	Category string    `json:"category"`
	Tag      string    `json:"tag"`
	Custom   bool      `json:"custom"`
	Domain   string    `json:"domain,omitempty"`
	Traffic  trafficMB `json:"traffic"`
	store.Counters
	Users       int64     `json:"users"`
	Machines    int64     `json:"machines"`
	BypassUsers int64     `json:"bypassUsers"`
	LastSeen    time.Time `json:"lastSeen"`
}

// trafficMB is bytes in MB (10^6), rounded to 0.001.
type trafficMB struct {
	TotalMB    float64 `json:"totalMB"`
	UploadMB   float64 `json:"uploadMB"`
	DownloadMB float64 `json:"downloadMB"`
}

func mb(n int64) float64 { return float64(n/1000) / 1000 }

func traffic(c store.Counters) trafficMB {
	return trafficMB{TotalMB: mb(c.BytesSent + c.BytesReceived), UploadMB: mb(c.BytesSent), DownloadMB: mb(c.BytesReceived)}
}

func (a *API) describe(cat *catalog.Catalog, tags map[string]store.Tag, s store.AppStat) discoveredView {
	v := discoveredView{AppID: s.AppID, Name: s.AppID, Domain: s.Domain, Counters: s.Counters, Traffic: traffic(s.Counters), Users: s.Users, Machines: s.Machines,
		BypassUsers: s.BypassUsers, LastSeen: s.LastSeen, Tag: tags[s.AppID].Tag}
	if s.AppID == "" {
		v.Name = s.Domain
	} else if app, err := cat.Lookup(s.AppID); err == nil {
		v.Name, v.Custom = app.Name, app.Custom
		if len(app.Categories) > 0 {
			v.Category = app.Categories[0]
		}
	}
	return v
}

func (a *API) discoveredApps(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	p, err := a.periodParam(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	minUsers, err := intParam(r, "minUsers", 0, 0, 1<<30)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit", 1000, 1, 100000)
	if err != nil {
		return nil, err
	}
	category, tag := lower(q.Get("category")), q.Get("tag")
	ctx := r.Context()
	stats, err := a.cfg.Store.DiscoveredApps(ctx, p, false)
	if err != nil {
		return nil, err
	}
	cat, tags, err := a.catalogAndTags(ctx)
	if err != nil {
		return nil, err
	}
	out := []discoveredView{}
	for _, s := range stats {
		v := a.describe(cat, tags, s)
		if s.Users < int64(minUsers) || (tag != "" && !strings.EqualFold(tag, v.Tag) && !(tag == "untagged" && v.Tag == "")) {
			continue
		}
		if category != "" {
			app, _ := cat.Lookup(s.AppID)
			if !slices.ContainsFunc(app.Categories, func(c string) bool { return strings.EqualFold(c, category) }) {
				continue
			}
		}
		out = append(out, v)
	}
	sortViews(out, q.Get("sort"))
	if len(out) > limit {
		out = out[:limit]
	}
	return map[string]any{"period": p, "apps": out}, nil
}

// fleetSummary is the whole fleet over the period: traffic per bucket
// and in total, machines with traffic, distinct users and bypassers.
func (a *API) fleetSummary(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	p, err := a.periodParam(r)
	if err != nil {
		return nil, err
	}
	f, err := a.cfg.Store.Fleet(r.Context(), p)
	if err != nil {
		return nil, err
	}
	return struct {
		Period store.Period `json:"period"`
		store.FleetSummary
		Traffic trafficMB `json:"traffic"`
	}{p, f, traffic(f.Total)}, nil
}

// sortViews orders by traffic (default), transactions, users, machines,
// lastSeen or name.
func sortViews(v []discoveredView, by string) {
	key := func(x discoveredView) float64 {
		switch by {
		case "transactions":
			return float64(x.Transactions)
		case "users":
			return float64(x.Users)
		case "machines":
			return float64(x.Machines)
		case "lastSeen":
			return float64(x.LastSeen.Unix())
		}
		return float64(x.BytesSent + x.BytesReceived)
	}
	sort.SliceStable(v, func(i, j int) bool {
		if by == "name" {
			return v[i].Name < v[j].Name
		}
		if ki, kj := key(v[i]), key(v[j]); ki != kj {
			return ki > kj
		}
		return v[i].Name < v[j].Name
	})
}

func (a *API) catalogAndTags(ctx context.Context) (*catalog.Catalog, map[string]store.Tag, error) {
	cat, err := a.catalogNow(ctx)
	if err != nil {
		return nil, nil, err
	}
	tags, err := a.cfg.Store.Tags(ctx)
	return cat, tags, err
}

// candidates ranks the domains no app claims by machines, then traffic:
// candidates for custom apps.
func (a *API) candidates(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	p, err := a.periodParam(r)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit", 100, 1, 100000)
	if err != nil {
		return nil, err
	}
	stats, err := a.cfg.Store.DiscoveredApps(r.Context(), p, true)
	if err != nil {
		return nil, err
	}
	out := make([]discoveredView, 0, len(stats))
	for _, s := range stats {
		out = append(out, a.describe(nil, nil, s))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Machines != out[j].Machines {
			return out[i].Machines > out[j].Machines
		}
		if ti, tj := out[i].BytesSent+out[i].BytesReceived, out[j].BytesSent+out[j].BytesReceived; ti != tj {
			return ti > tj
		}
		return out[i].Domain < out[j].Domain
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return map[string]any{"period": p, "domains": out}, nil
}

// appDetailView is one app over a period.
type appDetailView struct {
	Period      store.Period      `json:"period"`
	App         discoveredView    `json:"app"`
	Total       store.Counters    `json:"total"`
	Traffic     trafficMB         `json:"traffic"`
	BypassUsers int64             `json:"bypassUsers"`
	Domains     []store.Breakdown `json:"domains"`
	Machines    []store.Breakdown `json:"machines"`
	Users       []store.Named     `json:"users"`
	Series      []store.Bucket    `json:"series"`
}

func (a *API) appDetail(r *http.Request, appID, domain string) (any, error) {
	p, err := a.periodParam(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	cat, tags, err := a.catalogAndTags(ctx)
	if err != nil {
		return nil, err
	}
	if appID != "" {
		if _, err := cat.Lookup(appID); err != nil {
			return nil, err
		}
	}
	d, err := a.cfg.Store.App(ctx, p, appID, domain)
	if err != nil {
		return nil, err
	}
	v := appDetailView{Period: p, Total: d.Total, Traffic: traffic(d.Total), Domains: nonNil(d.Domains), Machines: nonNil(d.Machines), Users: nonNil(d.Users), Series: nonNil(d.Series)}
	for _, u := range d.Users {
		if u.Bypassed {
			v.BypassUsers++
		}
	}
	v.App = a.describe(cat, tags, store.AppStat{AppID: appID, Domain: domain, Counters: d.Total, Machines: int64(len(d.Machines)), Users: int64(len(d.Users)), BypassUsers: v.BypassUsers})
	for _, m := range d.Machines {
		v.App.LastSeen = maxTime(v.App.LastSeen, m.LastSeen)
	}
	return v, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (a *API) discoveredApp(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	return a.appDetail(r, r.PathValue("id"), "")
}

func (a *API) discoveredDomain(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	d := lower(r.PathValue("domain"))
	if d == "" {
		return nil, invalid("name a domain")
	}
	return a.appDetail(r, "", d)
}

// machineView is a device in the machines list.
type machineView struct {
	deviceView
	Risk        string           `json:"risk"`
	RiskReasons []string         `json:"riskReasons"`
	Traffic     trafficMB        `json:"traffic"`
	Total       store.Counters   `json:"total"`
	Alerts      map[string]int64 `json:"alerts"`
}

// Risk levels.
const (
	RiskHigh          = "high"
	RiskMedium        = "medium"
	RiskLow           = "low"
	RiskInformational = "informational"
)

// Risk rates a machine over a period from its alerts, Warn bypasses,
// blocks and feed state:
//   - high: an Unsanctioned app was not blocked, or 10+ Unsanctioned
//     access alerts (device-hours with a blocked Unsanctioned app) or 10+
//     bypasses;
//   - medium: any Unsanctioned access alert or any bypass;
//   - low: other blocks or warns, or a stale feed sequence;
//   - informational: nothing of the above.
func Risk(alerts map[string]int64, c store.Counters, stale bool) (string, []string) {
	var reasons []string
	level := RiskInformational
	raise := func(l string) {
		rank := map[string]int{RiskInformational: 0, RiskLow: 1, RiskMedium: 2, RiskHigh: 3}
		if rank[l] > rank[level] {
			level = l
		}
	}
	if n := alerts[store.AlertUnsanctionedNotBlocked]; n > 0 {
		raise(RiskHigh)
		reasons = append(reasons, fmt.Sprintf("%d alert(s): an Unsanctioned app was not blocked", n))
	}
	if n := alerts[store.AlertUnsanctionedAccess]; n > 0 {
		if n >= 10 {
			raise(RiskHigh)
		} else {
			raise(RiskMedium)
		}
		reasons = append(reasons, fmt.Sprintf("%d alert(s): an Unsanctioned app was accessed (blocked)", n))
	}
	if c.Bypasses > 0 {
		if c.Bypasses >= 10 {
			raise(RiskHigh)
		} else {
			raise(RiskMedium)
		}
		reasons = append(reasons, fmt.Sprintf("%d Warn bypass(es)", c.Bypasses))
	}
	if c.Blocks > 0 || c.Warns > 0 {
		raise(RiskLow)
		reasons = append(reasons, fmt.Sprintf("%d block(s), %d warn(s)", c.Blocks, c.Warns))
	}
	if stale {
		raise(RiskLow)
		reasons = append(reasons, "holds an old feed sequence (stale)")
	}
	if len(reasons) == 0 {
		reasons = []string{"nothing notable in the period"}
	}
	return level, reasons
}

func (a *API) machines(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	p, err := a.periodParam(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	a.cfg.Feed.FlushCheckins(ctx)
	list, err := a.cfg.Store.Devices(ctx)
	if err != nil {
		return nil, err
	}
	totals, err := a.cfg.Store.DeviceTotals(ctx, p)
	if err != nil {
		return nil, err
	}
	alerts, err := a.cfg.Store.DeviceAlertCounts(ctx, p.From, p.To)
	if err != nil {
		return nil, err
	}
	riskFilter := r.URL.Query().Get("risk")
	st := a.cfg.Feed.Status()
	out := make([]machineView, 0, len(list))
	for _, d := range list {
		m := machineView{deviceView: a.view(d, st), Total: totals[d.ID], Alerts: alerts[d.ID]}
		if m.Alerts == nil {
			m.Alerts = map[string]int64{}
		}
		m.Traffic = traffic(m.Total)
		m.Risk, m.RiskReasons = Risk(m.Alerts, m.Total, m.Stale)
		if riskFilter != "" && riskFilter != m.Risk {
			continue
		}
		out = append(out, m)
	}
	return map[string]any{"period": p, "sequence": st.Sequence, "machines": out}, nil
}

func (a *API) machine(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	p, err := a.periodParam(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	a.cfg.Feed.FlushCheckins(ctx)
	d, err := a.cfg.Store.Device(ctx, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	md, err := a.cfg.Store.Machine(ctx, p, d.ID)
	if err != nil {
		return nil, err
	}
	users, err := a.cfg.Store.DeviceSeen(ctx, d.ID, "users")
	if err != nil {
		return nil, err
	}
	addrs, err := a.cfg.Store.DeviceSeen(ctx, d.ID, "addresses")
	if err != nil {
		return nil, err
	}
	alerts, err := a.cfg.Store.DeviceAlertCounts(ctx, p.From, p.To)
	if err != nil {
		return nil, err
	}
	cat, tags, err := a.catalogAndTags(ctx)
	if err != nil {
		return nil, err
	}
	apps := make([]discoveredView, 0, len(md.Apps))
	for _, s := range md.Apps {
		apps = append(apps, a.describe(cat, tags, s))
	}
	view := a.view(d, a.cfg.Feed.Status())
	al := alerts[d.ID]
	if al == nil {
		al = map[string]int64{}
	}
	risk, reasons := Risk(al, md.Total, view.Stale)
	return map[string]any{"period": p, "machine": view, "risk": risk, "riskReasons": reasons, "alerts": al,
		"total": md.Total, "traffic": traffic(md.Total), "series": nonNil(md.Series), "apps": apps,
		"users": nonNil(users), "addresses": nonNil(addrs)}, nil
}

// eventsPage reads matching records from raw chunks in order: windows
// are read one after the other, chunks(w, off, n) lists window w's next
// chunks and match(w, record) picks its records (a chunk listed in two
// windows gives each only the records of its own window). The cursor
// "W.C.S" is the window, the chunk offset in it and the matches to skip
// in that chunk.
func (a *API) eventsPage(ctx context.Context, r *http.Request, windows int, chunks func(w, off, n int) ([]store.ChunkMeta, error), pre func([]byte) bool, match func(w int, rec *telemetry.Record) bool) ([]telemetry.Record, string, error) {
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		return nil, "", err
	}
	w, off, skip := 0, 0, 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		parts := strings.Split(c, ".")
		bad := len(parts) != 3
		for i, v := range []*int{&w, &off, &skip} {
			if bad {
				break
			}
			n, err := strconv.Atoi(parts[i])
			bad = err != nil || n < 0
			*v = n
		}
		if bad {
			return nil, "", invalid("cursor %q is not one this API gave", c)
		}
	}
	events := []telemetry.Record{}
	for ; w < windows; w, off, skip = w+1, 0, 0 {
		for {
			if err := ctx.Err(); err != nil {
				return nil, "", err
			}
			list, err := chunks(w, off, 50)
			if err != nil {
				return nil, "", err
			}
			if len(list) == 0 {
				break
			}
			for i, c := range list {
				idx, next := 0, ""
				err := rawchunk.Scan(ctx, a.cfg.Raw, a.cfg.ChunkDir, c.Path, pre, func(rec *telemetry.Record) bool {
					if !match(w, rec) {
						return true
					}
					if idx >= skip {
						if len(events) == limit {
							next = fmt.Sprintf("%d.%d.%d", w, off+i, idx)
							return false
						}
						events = append(events, *rec)
					}
					idx++
					return true
				})
				if err != nil {
					a.log.Warn("api: raw chunk not read", "device", c.DeviceID, "chunk", c.ChunkID, "err", err)
				}
				if next != "" {
					return events, next, nil
				}
				skip = 0
			}
			off += len(list)
		}
	}
	return events, "", nil
}

func inPeriod(p store.Period, t time.Time) bool { return !t.Before(p.From) && t.Before(p.To) }

// domainList reads a comma- or space-separated list of domains.
func domainList(v string, max int) ([]string, error) {
	var out []string
	for _, d := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		d = strings.TrimSuffix(strings.TrimPrefix(lower(d), "*."), ".")
		if d == "" {
			continue
		}
		if len(d) > 253 || strings.ContainsAny(d, "/:?#@") {
			return nil, invalid("%q is not a domain name", d)
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	if len(out) > max {
		return nil, invalid("at most %d domains at once", max)
	}
	return out, nil
}

func (a *API) machineEvents(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	p, err := a.periodParam(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	ctx := r.Context()
	if _, err := a.cfg.Store.Device(ctx, id); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var actions []string
	for _, s := range strings.Split(q.Get("action"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			actions = append(actions, s)
		}
	}
	domains, err := domainList(q.Get("domain"), 100)
	if err != nil {
		return nil, err
	}
	events, next, err := a.eventsPage(ctx, r, 1, func(_, off, n int) ([]store.ChunkMeta, error) {
		return a.cfg.Store.DeviceChunks(ctx, id, p.From, p.To, off, n)
	}, prefilter(domains, actions), func(_ int, rec *telemetry.Record) bool {
		return inPeriod(p, rec.Timestamp) && (len(actions) == 0 || slices.Contains(actions, rec.ActionType)) && (len(domains) == 0 || rawchunk.MatchDomain(rec, domains))
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"period": p, "deviceId": id, "events": events, "nextCursor": next}, nil
}

// prefilter passes over lines that name none of the domains, then none
// of the actions.
func prefilter(domains, actions []string) func([]byte) bool {
	d, a := rawchunk.Contains(domains), rawchunk.Contains(actions)
	return func(line []byte) bool { return (d == nil || d(line)) && (a == nil || a(line)) }
}

// hunt answers "RemoteUrl in (…)": the hunting index names the devices,
// hours and raw chunks; the page's events are read from those chunks only.
func (a *API) hunt(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	p, err := a.periodParam(r)
	if err != nil {
		return nil, err
	}
	domains, err := domainList(r.URL.Query().Get("domains"), 100)
	if err != nil {
		return nil, err
	}
	if len(domains) == 0 {
		return nil, invalid("name the domains to hunt for: ?domains=example.com,example.org (subdomains included)")
	}
	ctx := r.Context()
	h := a.cfg.Store.NewHunt(domains)
	devices, err := h.Devices(ctx, p)
	if err != nil {
		return nil, err
	}
	// The index is read from where kept chunks may hold records (reading
	// it six hours at a time measured slower: 2.7 s against 1.1 s).
	start, err := a.cfg.Store.HuntStart(ctx, p.From)
	if err != nil {
		return nil, err
	}
	events, next, err := a.eventsPage(ctx, r, 1, func(_, off, n int) ([]store.ChunkMeta, error) {
		list, err := h.Chunks(ctx, start, p.To, off, n)
		out := make([]store.ChunkMeta, len(list))
		for i, c := range list {
			out[i] = store.ChunkMeta{DeviceID: c.DeviceID, ChunkID: c.ChunkID, Path: c.Path}
		}
		return out, err
	}, rawchunk.Contains(domains), func(_ int, rec *telemetry.Record) bool {
		return inPeriod(p, rec.Timestamp) && rawchunk.MatchDomain(rec, domains)
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"period": p, "domains": domains, "devices": nonNil(devices), "events": events, "nextCursor": next}, nil
}

func (a *API) listAlerts(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	p, err := a.periodParam(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	limit, err := intParam(r, "limit", 1000, 1, 10000)
	if err != nil {
		return nil, err
	}
	offset, err := intParam(r, "offset", 0, 0, 1<<30)
	if err != nil {
		return nil, err
	}
	list, err := a.cfg.Store.Alerts(r.Context(), store.AlertFilter{From: p.From, To: p.To, Kind: q.Get("kind"), State: q.Get("state"), DeviceID: q.Get("device"), Limit: limit, Offset: offset})
	if err != nil {
		return nil, err
	}
	return map[string]any{"period": p, "alerts": nonNil(list)}, nil
}

func (a *API) getAlert(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	id, err := pathInt(r, "id")
	if err != nil {
		return nil, err
	}
	return a.cfg.Store.Alert(r.Context(), id)
}

func (a *API) ackAlert(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id, err := pathInt(r, "id")
	if err != nil {
		return nil, err
	}
	state := store.AlertAcknowledged
	if strings.HasSuffix(r.URL.Path, "/reopen") {
		state = store.AlertNew
	}
	if err := a.cfg.Store.SetAlertState(r.Context(), id, state, p.Actor()); err != nil {
		return nil, err
	}
	a.audit(r, p, "alert."+state, strconv.FormatInt(id, 10), "")
	return a.cfg.Store.Alert(r.Context(), id)
}

type destinationView struct {
	store.Destination
	HasSecret bool             `json:"hasSecret"`
	Delivery  map[string]int64 `json:"deliveries"`
}

func (a *API) destinations(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	list, err := a.cfg.Store.Destinations(r.Context())
	if err != nil {
		return nil, err
	}
	counts, err := a.cfg.Store.DeliveryCounts(r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]destinationView, 0, len(list))
	for _, d := range list {
		c := counts[d.ID]
		if c == nil {
			c = map[string]int64{}
		}
		out = append(out, destinationView{Destination: d, HasSecret: d.Secret != "", Delivery: c})
	}
	return map[string]any{"destinations": out}, nil
}

func (a *API) createDestination(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	var in struct {
		Name    string `json:"name"`
		Kind    string `json:"kind"`
		URL     string `json:"url"`
		Secret  string `json:"secret"`
		Network string `json:"network"`
		Address string `json:"address"`
		Enabled *bool  `json:"enabled"`
	}
	if err := decode(r, smallBody, &in); err != nil {
		return nil, err
	}
	d := store.Destination{Name: strings.TrimSpace(in.Name), Kind: in.Kind, URL: in.URL, Secret: in.Secret, Network: in.Network, Address: in.Address, Enabled: in.Enabled == nil || *in.Enabled, CreatedBy: p.Actor()}
	if d.Name == "" || len(d.Name) > 100 {
		return nil, invalid("name: 1 to 100 characters")
	}
	switch d.Kind {
	case store.DestWebhook:
		if !strings.HasPrefix(d.URL, "https://") && !strings.HasPrefix(d.URL, "http://") {
			return nil, invalid("url: a webhook needs an http:// or https:// URL")
		}
		if len(d.Secret) < 16 {
			return nil, invalid("secret: a webhook needs an HMAC secret of at least 16 characters (receivers check Netward-Signature with it)")
		}
		d.Network, d.Address = "", ""
	case store.DestSyslog:
		if d.Network != "tcp" && d.Network != "udp" {
			return nil, invalid("network: syslog goes over \"tcp\" or \"udp\"")
		}
		if _, _, err := splitHostPort(d.Address); err != nil {
			return nil, invalid("address %q: want host:port (%v)", d.Address, err)
		}
		d.URL, d.Secret = "", ""
	default:
		return nil, invalid("kind: %q or %q", store.DestWebhook, store.DestSyslog)
	}
	saved, err := a.cfg.Store.CreateDestination(r.Context(), d)
	if err != nil {
		return nil, err
	}
	a.audit(r, p, "alertDestination.create", saved.Name, saved.Kind)
	return destinationView{Destination: saved, HasSecret: saved.Secret != "", Delivery: map[string]int64{}}, nil
}

func (a *API) deleteDestination(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id, err := pathInt(r, "id")
	if err != nil {
		return nil, err
	}
	if err := a.cfg.Store.DeleteDestination(r.Context(), id); err != nil {
		return nil, err
	}
	a.audit(r, p, "alertDestination.delete", strconv.FormatInt(id, 10), "")
	return nil, nil
}

func (a *API) testDestination(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id, err := pathInt(r, "id")
	if err != nil {
		return nil, err
	}
	d, err := a.cfg.Store.Destination(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if a.cfg.Alerts == nil {
		return nil, errors.New("alerts are not running")
	}
	if err := a.cfg.Alerts.Send(r.Context(), d, a.cfg.Alerts.TestAlert()); err != nil {
		return nil, &withStatus{http.StatusBadGateway, fmt.Errorf("test alert not delivered: %w", err)}
	}
	a.audit(r, p, "alertDestination.test", d.Name, "")
	return map[string]string{"result": "test alert delivered to " + d.Name}, nil
}

func (a *API) policies(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	list, err := a.cfg.Store.DiscoveryPolicies(r.Context())
	return map[string]any{"policies": nonNil(list)}, err
}

func (a *API) createPolicy(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	var in struct {
		Name            string `json:"name"`
		Category        string `json:"category"`
		NamePattern     string `json:"namePattern"`
		MinUsers        int64  `json:"minUsers"`
		MinBytes        int64  `json:"minBytes"`
		MinTransactions int64  `json:"minTransactions"`
		PeriodDays      int64  `json:"periodDays"`
		Tag             string `json:"tag"`
		Enabled         *bool  `json:"enabled"`
	}
	if err := decode(r, smallBody, &in); err != nil {
		return nil, err
	}
	if in.PeriodDays == 0 {
		in.PeriodDays = 30
	}
	tag, err := normTag(in.Tag)
	if err != nil {
		return nil, err
	}
	pol := store.DiscoveryPolicy{Name: strings.TrimSpace(in.Name), Category: in.Category, NamePattern: in.NamePattern, MinUsers: in.MinUsers, MinBytes: in.MinBytes,
		MinTransactions: in.MinTransactions, PeriodDays: in.PeriodDays, Tag: tag, Enabled: in.Enabled == nil || *in.Enabled, CreatedBy: p.Actor()}
	if err := discovery.Check(pol); err != nil {
		return nil, invalid("%v", err)
	}
	saved, err := a.cfg.Store.CreateDiscoveryPolicy(r.Context(), pol)
	if err != nil {
		return nil, err
	}
	a.audit(r, p, "discoveryPolicy.create", saved.Name, saved.Tag)
	return saved, nil
}

func (a *API) deletePolicy(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id, err := pathInt(r, "id")
	if err != nil {
		return nil, err
	}
	if err := a.cfg.Store.DeleteDiscoveryPolicy(r.Context(), id); err != nil {
		return nil, err
	}
	a.audit(r, p, "discoveryPolicy.delete", strconv.FormatInt(id, 10), "")
	return nil, nil
}

func (a *API) runPolicies(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	if a.cfg.Discovery == nil {
		return nil, errors.New("discovery policies are not running")
	}
	res, err := a.cfg.Discovery.Evaluate(r.Context())
	if err != nil {
		return nil, err
	}
	if a.cfg.Alerts != nil && len(res.Tagged) > 0 {
		a.cfg.Alerts.Invalidate()
	}
	a.audit(r, p, "discoveryPolicy.run", "", fmt.Sprintf("%d apps tagged", len(res.Tagged)))
	return res, nil
}

func (a *API) autoTags(_ http.ResponseWriter, r *http.Request, _ auth.Principal) (any, error) {
	list, err := a.cfg.Store.AutoTags(r.Context())
	return map[string]any{"autoTags": nonNil(list)}, err
}

func (a *API) revertAutoTag(_ http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
	id, err := pathInt(r, "id")
	if err != nil {
		return nil, err
	}
	t, err := a.cfg.Store.RevertAutoTag(r.Context(), id, p.Actor())
	if errors.Is(err, store.ErrTagChanged) {
		return nil, &withStatus{http.StatusConflict, err}
	}
	if err != nil {
		return nil, err
	}
	a.audit(r, p, "discoveryPolicy.revert", t.AppID, t.Tag)
	if a.cfg.Alerts != nil {
		a.cfg.Alerts.Invalidate()
	}
	st, err := a.publish(r.Context())
	return map[string]any{"autoTag": t, "feed": st}, err
}
