package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/netward/netward/console/store"
	"github.com/netward/netward/console/web"
	"github.com/netward/netward/console/web/format"
)

func (u *UI) alertRoutes() {
	u.page(Base+"/alerts", u.alertsPage)
	u.page(Base+"/alerts.csv", u.alertsPage)
	u.action(Base+"/alerts/acknowledge", u.ackAlerts)
	u.action(Base+"/alerts/reopen", u.ackAlerts)
	u.page(Base+"/settings/alerts", u.destinationsPage)
	u.page(Base+"/settings/alerts.csv", u.destinationsPage)
	u.action(Base+"/settings/alerts", u.createDestination)
	u.action(Base+"/settings/alerts/delete", u.deleteDestinations)
	u.action(Base+"/settings/alerts/test", u.testDestinations)
	u.page(Base+"/catalog/policies", u.policiesPage)
	u.page(Base+"/catalog/policies.csv", u.policiesPage)
	u.action(Base+"/catalog/policies", u.createPolicy)
	u.action(Base+"/catalog/policies/delete", u.deletePolicies)
	u.action(Base+"/catalog/policies/run", u.runPolicies)
	u.action(Base+"/catalog/policies/revert", u.revertAutoTags)
}

// alertKinds names the alert kinds of part 2.
var alertKinds = map[string]string{
	store.AlertUnsanctionedAccess:     "Unsanctioned app accessed (blocked)",
	store.AlertUnsanctionedNotBlocked: "Unsanctioned app NOT blocked",
}

type alertsPage struct {
	Alerts      web.Table
	State, Kind string
	Kinds       []web.KV
}

func (u *UI) alertsPage(w http.ResponseWriter, r *http.Request) {
	p := apiPeriod(r)
	q := r.URL.Query()
	pg := alertsPage{State: q.Get("state"), Kind: q.Get("kind"),
		Kinds: []web.KV{{Key: store.AlertUnsanctionedAccess, Value: alertKinds[store.AlertUnsanctionedAccess]}, {Key: store.AlertUnsanctionedNotBlocked, Value: alertKinds[store.AlertUnsanctionedNotBlocked]}}}
	aq := url.Values{"period": {string(p)}, "limit": {"10000"}}
	if pg.State != "" {
		aq.Set("state", pg.State)
	}
	if pg.Kind != "" {
		aq.Set("kind", pg.Kind)
	}
	var out struct {
		Alerts []store.Alert `json:"alerts"`
	}
	if !u.get(w, r, "/api/alerts?"+aq.Encode(), &out) {
		return
	}
	view := viewOf(r)
	now := u.now()
	t := web.Table{ID: "alerts", Caption: "Alerts, " + strings.ToLower(p.Label()), URL: r.URL, ClientSort: true, Filter: true, FilterLabel: "Filter alerts",
		CSV: Base + "/alerts.csv?" + r.URL.RawQuery,
		Columns: []web.Column{{Key: "last", Label: "Last seen", Sortable: true}, {Key: "kind", Label: "Alert", Sortable: true}, {Key: "state", Label: "State", Sortable: true},
			{Key: "machine", Label: "Machine", Sortable: true}, {Key: "app", Label: "App", Sortable: true}, {Key: "domain", Label: "Domain", Narrow: true},
			{Key: "user", Label: "User", Sortable: true, Narrow: true}, {Key: "process", Label: "Process", Narrow: true}, {Key: "n", Label: "Occurrences", Numeric: true, Sortable: true, Narrow: true}},
		Empty:  web.Empty{Title: "No alerts in this period", Text: "Alerts are raised when an Unsanctioned app is accessed, or is not blocked by a machine."},
		Select: view.admin, Form: "alerts-bulk"}
	for _, a := range out.Alerts {
		kind := web.Cell{Text: alertKinds[a.Kind], Sub: a.Detail}
		if kind.Text == "" {
			kind.Text = a.Kind
		}
		if a.Kind == store.AlertUnsanctionedNotBlocked {
			kind.Flag = "check the machine"
		}
		state := web.Cell{Text: a.State}
		if a.AcknowledgedBy != "" {
			state.Sub = "by " + a.AcknowledgedBy
		}
		t.Rows = append(t.Rows, web.Row{Key: strconv.FormatInt(a.ID, 10), Label: fmt.Sprintf("alert %d", a.ID), Cells: []web.Cell{
			web.TimeCell(a.LastAt, now), kind, state,
			web.LinkCell(a.DeviceID, Base+"/machines/"+url.PathEscape(a.DeviceID)+"/events?period="+string(p)+"&domain="+url.QueryEscape(a.Domain)),
			{Text: a.AppID, Href: Base + "/apps?period=" + string(p) + "&app=" + url.QueryEscape(a.AppID) + "#drawer", Drawer: false},
			{Text: a.Domain, Mono: true}, web.TextCell(a.User), web.TextCell(a.Process), web.CountCell(a.Occurrences)}})
	}
	pageTable(r, &t)
	pg.Alerts = t
	u.listOut(w, r, "alerts-"+string(p), t, "alerts", pg)
}

func (u *UI) ackAlerts(w http.ResponseWriter, r *http.Request) {
	verb, done := "acknowledge", "Acknowledged %d alerts."
	if strings.HasSuffix(r.URL.Path, "/reopen") {
		verb, done = "reopen", "Reopened %d alerts."
	}
	u.eachAPI(w, r, Base+"/alerts", done, http.MethodPost, func(id string) string { return "/api/alerts/" + url.PathEscape(id) + "/" + verb })
}

// --- alert destinations ---

type destinationsPage struct {
	Tabs         web.Tabs
	Destinations web.Table
}

type destinationJSON struct {
	store.Destination
	HasSecret  bool             `json:"hasSecret"`
	Deliveries map[string]int64 `json:"deliveries"`
}

func (u *UI) destinationsPage(w http.ResponseWriter, r *http.Request) {
	var out struct {
		Destinations []destinationJSON `json:"destinations"`
	}
	if !u.get(w, r, "/api/alert-destinations", &out) {
		return
	}
	view := viewOf(r)
	t := web.Table{ID: "destinations", Caption: "Alert destinations", URL: r.URL, ClientSort: true, CSV: Base + "/settings/alerts.csv",
		Columns: []web.Column{{Key: "name", Label: "Name", Sortable: true}, {Key: "kind", Label: "Kind", Sortable: true}, {Key: "target", Label: "Target"},
			{Key: "enabled", Label: "Enabled"}, {Key: "deliveries", Label: "Deliveries", Narrow: true}},
		Empty:  web.Empty{Title: "No alert destinations", Text: "Add a webhook (JSON, HMAC-signed) or a syslog receiver (RFC 5424) below."},
		Select: view.admin, Form: "destinations-bulk"}
	for _, d := range out.Destinations {
		target := d.URL
		if d.Kind == store.DestSyslog {
			target = d.Network + "://" + d.Address
		}
		var del []string
		for k, v := range d.Deliveries {
			del = append(del, fmt.Sprintf("%s %d", k, v))
		}
		slicesSort(del)
		t.Rows = append(t.Rows, web.Row{Key: strconv.FormatInt(d.ID, 10), Label: d.Name, Cells: []web.Cell{web.TextCell(d.Name), web.TextCell(d.Kind),
			{Text: target, Mono: true}, web.TextCell(map[bool]string{true: "yes", false: "no"}[d.Enabled]), web.TextCell(strings.Join(del, ", "))}})
	}
	u.listOut(w, r, "alert-destinations", t, "settings/alerts", destinationsPage{Tabs: settingsTabs("alerts"), Destinations: t})
}

func (u *UI) createDestination(w http.ResponseWriter, r *http.Request) {
	in := map[string]any{"name": strings.TrimSpace(r.PostFormValue("name")), "kind": r.PostFormValue("kind")}
	if r.PostFormValue("kind") == store.DestSyslog {
		in["network"], in["address"] = r.PostFormValue("network"), strings.TrimSpace(r.PostFormValue("address"))
	} else {
		in["url"], in["secret"] = strings.TrimSpace(r.PostFormValue("url")), r.PostFormValue("secret")
	}
	_, err := u.call(r, http.MethodPost, "/api/alert-destinations", in, nil)
	u.done(w, r, err, fmt.Sprintf("Alert destination %v added. Send it a test alert to check it.", in["name"]), Base+"/settings/alerts")
}

func (u *UI) deleteDestinations(w http.ResponseWriter, r *http.Request) {
	u.eachAPI(w, r, Base+"/settings/alerts", "Deleted %d alert destinations.", http.MethodDelete, func(id string) string { return "/api/alert-destinations/" + url.PathEscape(id) })
}

func (u *UI) testDestinations(w http.ResponseWriter, r *http.Request) {
	u.eachAPI(w, r, Base+"/settings/alerts", "Test alert delivered to %d destinations.", http.MethodPost, func(id string) string { return "/api/alert-destinations/" + url.PathEscape(id) + "/test" })
}

// --- discovery policies ---

type policiesPage struct {
	Tabs       web.Tabs
	Policies   web.Table
	AutoTags   web.Table
	Categories []string
}

func (u *UI) policiesPage(w http.ResponseWriter, r *http.Request) {
	var pol struct {
		Policies []store.DiscoveryPolicy `json:"policies"`
	}
	if !u.get(w, r, "/api/discovery/policies", &pol) {
		return
	}
	var at struct {
		AutoTags []store.AutoTag `json:"autoTags"`
	}
	if !u.get(w, r, "/api/discovery/auto-tags", &at) {
		return
	}
	view := viewOf(r)
	now := u.now()
	pg := policiesPage{Tabs: catalogTabs("policies")}
	t := web.Table{ID: "policies", Caption: "Discovery policies", URL: r.URL, ClientSort: true, CSV: Base + "/catalog/policies.csv",
		Columns: []web.Column{{Key: "name", Label: "Policy", Sortable: true}, {Key: "rule", Label: "Matches"}, {Key: "tag", Label: "Tags as", Sortable: true},
			{Key: "enabled", Label: "Enabled", Narrow: true}, {Key: "run", Label: "Last run", Sortable: true}},
		Empty:  web.Empty{Title: "No discovery policies", Text: "A policy tags the discovered apps that match it, hourly and on demand."},
		Select: view.admin, Form: "policies-bulk"}
	for _, p := range pol.Policies {
		var rule []string
		if p.Category != "" {
			rule = append(rule, "category "+p.Category)
		}
		if p.NamePattern != "" {
			rule = append(rule, "name ~ "+p.NamePattern)
		}
		if p.MinUsers > 0 {
			rule = append(rule, fmt.Sprintf("≥ %d users", p.MinUsers))
		}
		if p.MinBytes > 0 {
			rule = append(rule, "≥ "+formatBytes(p.MinBytes))
		}
		if p.MinTransactions > 0 {
			rule = append(rule, fmt.Sprintf("≥ %d transactions", p.MinTransactions))
		}
		rule = append(rule, fmt.Sprintf("in %d days", p.PeriodDays))
		t.Rows = append(t.Rows, web.Row{Key: strconv.FormatInt(p.ID, 10), Label: p.Name, Cells: []web.Cell{web.TextCell(p.Name), web.TextCell(strings.Join(rule, ", ")),
			web.TagCell(web.Tag(p.Tag)), web.TextCell(map[bool]string{true: "yes", false: "no"}[p.Enabled]), web.TimeCell(p.LastRunAt, now)}})
	}
	pg.Policies = t
	a := web.Table{ID: "autotags", Caption: "Tags set by policies", URL: r.URL, ClientSort: true,
		Columns: []web.Column{{Key: "app", Label: "App", Sortable: true}, {Key: "tag", Label: "Tag"}, {Key: "prev", Label: "Before"}, {Key: "policy", Label: "Policy", Sortable: true},
			{Key: "reason", Label: "Reason", Narrow: true}, {Key: "at", Label: "Applied", Sortable: true}, {Key: "rev", Label: "Reverted"}},
		Empty:  web.Empty{Title: "No tags set by policies yet"},
		Select: view.admin, Form: "autotags-revert"}
	for _, x := range at.AutoTags {
		rev := ""
		if !x.RevertedAt.IsZero() {
			rev = "by " + x.RevertedBy + " " + x.RevertedAt.UTC().Format("2006-01-02 15:04")
		}
		a.Rows = append(a.Rows, web.Row{Key: strconv.FormatInt(x.ID, 10), Label: x.AppID, Cells: []web.Cell{web.TextCell(x.AppID), web.TagCell(web.Tag(x.Tag)),
			web.TagCell(web.Tag(x.PreviousTag)), web.TextCell(x.PolicyName), web.TextCell(x.Reason), web.TimeCell(x.AppliedAt, now), web.TextCell(rev)}})
	}
	pg.AutoTags = a
	var cats struct {
		Categories []struct {
			Category string `json:"category"`
		} `json:"categories"`
	}
	if !u.get(w, r, "/api/categories", &cats) {
		return
	}
	for _, c := range cats.Categories {
		pg.Categories = append(pg.Categories, c.Category)
	}
	u.listOut(w, r, "discovery-policies", t, "catalog/policies", pg)
}

func (u *UI) createPolicy(w http.ResponseWriter, r *http.Request) {
	num := func(k string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSpace(r.PostFormValue(k)), 10, 64)
		return n
	}
	in := map[string]any{"name": strings.TrimSpace(r.PostFormValue("name")), "category": r.PostFormValue("category"), "namePattern": r.PostFormValue("namePattern"),
		"minUsers": num("minUsers"), "minBytes": num("minMB") * 1000 * 1000, "minTransactions": num("minTransactions"), "periodDays": num("periodDays"), "tag": r.PostFormValue("tag")}
	_, err := u.call(r, http.MethodPost, "/api/discovery/policies", in, nil)
	u.done(w, r, err, fmt.Sprintf("Policy %v added; it runs hourly, or now with Run policies.", in["name"]), Base+"/catalog/policies")
}

func (u *UI) deletePolicies(w http.ResponseWriter, r *http.Request) {
	u.eachAPI(w, r, Base+"/catalog/policies", "Deleted %d policies (the tags they set stay; revert them below).", http.MethodDelete, func(id string) string { return "/api/discovery/policies/" + url.PathEscape(id) })
}

func (u *UI) runPolicies(w http.ResponseWriter, r *http.Request) {
	var out struct {
		Tagged []any `json:"tagged"`
	}
	_, err := u.call(r, http.MethodPost, "/api/discovery/policies/run", nil, &out)
	u.done(w, r, err, fmt.Sprintf("Policies evaluated: %d apps tagged.", len(out.Tagged)), Base+"/catalog/policies")
}

func (u *UI) revertAutoTags(w http.ResponseWriter, r *http.Request) {
	u.eachAPI(w, r, Base+"/catalog/policies", "Reverted %d automatic tags.", http.MethodPost, func(id string) string { return "/api/discovery/auto-tags/" + url.PathEscape(id) + "/revert" })
}

func formatBytes(n int64) string { return format.Bytes(float64(n)) }

func slicesSort(s []string) { slices.Sort(s) }
