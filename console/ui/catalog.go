package ui

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/console/web"
	"github.com/netward/netward/indicators"
)

func (u *UI) catalogRoutes() {
	u.page(Base+"/catalog", u.catalogPage)
	u.page(Base+"/catalog.csv", u.catalogPage)
	u.action(Base+"/apps/tag", u.tagApps)
	u.page(Base+"/catalog/custom", u.customApps)
	u.page(Base+"/catalog/custom.csv", u.customApps)
	u.action(Base+"/catalog/custom", u.createApp)
	u.action(Base+"/catalog/custom/delete", u.deleteApps)
	u.page(Base+"/catalog/indicators", u.indicatorsPage)
	u.page(Base+"/catalog/indicators.csv", u.indicatorsPage)
	u.action(Base+"/catalog/indicators", u.saveIndicator)
	u.action(Base+"/catalog/indicators/expire", u.expireIndicators)
	u.action(Base+"/catalog/indicators/delete", u.deleteIndicators)
	u.action(Base+"/catalog/indicators/import", u.importIndicators)
}

func catalogTabs(current string) web.Tabs {
	t := web.Tabs{Label: "Catalog and indicators"}
	for _, it := range []struct{ key, label string }{
		{"", "App catalog"}, {"custom", "Custom apps"}, {"indicators", "Custom indicators"}, {"policies", "Discovery policies"},
	} {
		href := Base + "/catalog"
		if it.key != "" {
			href += "/" + it.key
		}
		t.Items = append(t.Items, web.Tab{Label: it.label, Href: href, Current: it.key == current})
	}
	return t
}

// appJSON is an app as GET /api/apps answers it.
type appJSON struct {
	catalog.App
	Tag string `json:"tag"`
}

type catalogPage struct {
	Tabs              web.Tabs
	Apps              web.Table
	Categories        []string
	Category, Tag, Q  string
	Tags              []string
	BulkForm, BulkFor string
}

const perPage = 50

func pageParam(r *http.Request) int {
	n, _ := strconv.Atoi(r.URL.Query().Get("page"))
	return max(n, 1)
}

func (u *UI) catalogPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pg := catalogPage{Tabs: catalogTabs(""), Category: q.Get("category"), Tag: q.Get("tag"), Q: q.Get("q"),
		Tags: []string{"Sanctioned", "Unsanctioned", "Monitored", "Untagged"}}
	var cats struct {
		Categories []catalog.CategoryCount `json:"categories"`
	}
	if !u.get(w, r, "/api/categories", &cats) {
		return
	}
	for _, c := range cats.Categories {
		pg.Categories = append(pg.Categories, c.Category)
	}
	api := url.Values{"q": {pg.Q}, "category": {pg.Category}, "tag": {pg.Tag}}
	page := pageParam(r)
	if csvWanted(r) {
		api.Set("limit", "5000")
	} else {
		api.Set("limit", strconv.Itoa(perPage))
		api.Set("offset", strconv.Itoa((page-1)*perPage))
	}
	var out struct {
		Total int       `json:"total"`
		Apps  []appJSON `json:"apps"`
	}
	if !u.get(w, r, "/api/apps?"+api.Encode(), &out) {
		return
	}
	view := viewOf(r)
	csvq := url.Values{"q": {pg.Q}, "category": {pg.Category}, "tag": {pg.Tag}}
	t := web.Table{ID: "catalog", Caption: "App catalog", URL: r.URL, CSV: Base + "/catalog.csv?" + csvq.Encode(), Filter: true, FilterLabel: "Search apps and domains", Query: pg.Q,
		Columns: []web.Column{{Key: "name", Label: "App"}, {Key: "category", Label: "Category"}, {Key: "domains", Label: "Domains", Narrow: true}, {Key: "tag", Label: "Tag"}},
		Empty:   web.Empty{Title: "No app matches", Text: "Change the search or the filters."},
		Select:  view.admin, Form: "bulk-tag", Pager: web.NewPager(r.URL, page, perPage, out.Total)}
	for _, a := range out.Apps {
		doms := strings.Join(a.Domains, " ")
		if !csvWanted(r) && len(a.Domains) > 3 {
			doms = strings.Join(a.Domains[:3], " ") + fmt.Sprintf(" +%d", len(a.Domains)-3)
		}
		name := web.Cell{Text: a.Name, Href: Base + "/apps?" + url.Values{"app": {a.ID}}.Encode() + "#drawer"}
		if a.Name != a.ID {
			name.Sub = a.ID
		}
		if a.Custom {
			name.Flag = "custom"
		}
		t.Rows = append(t.Rows, web.Row{Key: a.ID, Label: a.Name, Cells: []web.Cell{name, web.TextCell(strings.Join(a.Categories, ", ")),
			{Text: doms, Mono: true}, web.TagCell(web.Tag(a.Tag))}})
	}
	pg.Apps = t
	u.listOut(w, r, "catalog", t, "catalog/index", pg)
}

// tagApps tags one app (field "app") or the selected ones ("ids").
func (u *UI) tagApps(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	ids := r.PostForm["ids"]
	if a := r.PostFormValue("app"); a != "" {
		ids = []string{a}
	}
	tag := r.PostFormValue("tag")
	if len(ids) == 0 {
		u.done(w, r, errors.New("select at least one app first"), "", Base+"/apps")
		return
	}
	var out struct {
		Feed struct {
			Sequence int64 `json:"sequence"`
		} `json:"feed"`
		Warnings []string `json:"warnings"`
	}
	_, err := u.call(r, http.MethodPost, "/api/apps/tags", map[string]any{"apps": ids, "tag": tag}, &out)
	label := web.Tag(strings.ToUpper(tag[:min(1, len(tag))]) + strings.ToLower(tag[min(1, len(tag)):])).Label()
	what := ids[0]
	if len(ids) > 1 {
		what = fmt.Sprintf("%d apps", len(ids))
	}
	msg := fmt.Sprintf("%s: %s (policy sequence %d; agents take it within seconds).", what, label, out.Feed.Sequence)
	for _, wmsg := range out.Warnings {
		u.web.Flash(w, r, web.Flash{Kind: web.FlashWarning, Text: wmsg})
	}
	u.done(w, r, err, msg, Base+"/apps")
}

// --- custom apps ---

type customPage struct {
	Tabs web.Tabs
	Apps web.Table
}

func (u *UI) customApps(w http.ResponseWriter, r *http.Request) {
	var out struct {
		Apps []appJSON `json:"apps"`
	}
	if !u.get(w, r, "/api/apps?limit=5000", &out) {
		return
	}
	view := viewOf(r)
	t := web.Table{ID: "custom", Caption: "Custom apps", URL: r.URL, CSV: Base + "/catalog/custom.csv", ClientSort: true,
		Columns: []web.Column{{Key: "name", Label: "App", Sortable: true}, {Key: "category", Label: "Category", Sortable: true}, {Key: "domains", Label: "Domains"}, {Key: "tag", Label: "Tag", Sortable: true}},
		Empty:   web.Empty{Title: "No custom apps", Text: "Add your organisation's own apps below; they are discovered and tagged like catalog apps."},
		Select:  view.admin, Form: "custom-delete"}
	for _, a := range out.Apps {
		if !a.Custom {
			continue
		}
		t.Rows = append(t.Rows, web.Row{Key: a.ID, Label: a.Name, Cells: []web.Cell{{Text: a.Name, Href: Base + "/apps?app=" + url.QueryEscape(a.ID) + "#drawer", Sub: a.ID},
			web.TextCell(strings.Join(a.Categories, ", ")), {Text: strings.Join(a.Domains, " "), Mono: true}, web.TagCell(web.Tag(a.Tag))}})
	}
	u.listOut(w, r, "custom-apps", t, "catalog/custom", customPage{Tabs: catalogTabs("custom"), Apps: t})
}

func (u *UI) createApp(w http.ResponseWriter, r *http.Request) {
	doms := strings.FieldsFunc(r.PostFormValue("domains"), func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t' })
	name := strings.TrimSpace(r.PostFormValue("name"))
	var out struct {
		Warnings []string `json:"warnings"`
	}
	_, err := u.call(r, http.MethodPost, "/api/apps", map[string]any{"name": name, "category": r.PostFormValue("category"), "domains": doms}, &out)
	for _, wmsg := range out.Warnings {
		u.web.Flash(w, r, web.Flash{Kind: web.FlashWarning, Text: wmsg})
	}
	u.done(w, r, err, "App "+name+" added: tag it to block or warn.", Base+"/catalog/custom")
}

func (u *UI) deleteApps(w http.ResponseWriter, r *http.Request) {
	u.eachAPI(w, r, Base+"/catalog/custom", "Deleted %d custom apps.", http.MethodDelete, func(id string) string { return "/api/apps/" + url.PathEscape(id) })
}

// --- custom indicators ---

type indicatorsPage struct {
	Tabs       web.Tabs
	Indicators web.Table
	Edit       store.Indicator
	Editing    bool
	Expires    string
	Types      []string
	Actions    []string
	Import     *importResult
}

type importResult struct {
	Created, Updated, Valid, Errors, Warnings int
	Problems                                  web.Table
}

func (u *UI) indicatorsPage(w http.ResponseWriter, r *http.Request) { u.indicatorsPageWith(w, r, nil) }

func (u *UI) indicatorsPageWith(w http.ResponseWriter, r *http.Request, res *importResult) {
	var out struct {
		Value []store.Indicator `json:"value"`
	}
	if !u.get(w, r, "/api/indicators", &out) {
		return
	}
	now := u.now()
	view := viewOf(r)
	t := web.Table{ID: "indicators", Caption: "Custom indicators", URL: r.URL, CSV: Base + "/catalog/indicators.csv", ClientSort: true, Filter: true, FilterLabel: "Filter indicators",
		Columns: []web.Column{{Key: "value", Label: "Indicator", Sortable: true}, {Key: "type", Label: "Type", Sortable: true}, {Key: "action", Label: "Action", Sortable: true},
			{Key: "title", Label: "Title", Sortable: true, Narrow: true}, {Key: "expires", Label: "Expires", Sortable: true}, {Key: "updated", Label: "Updated", Sortable: true, Narrow: true}},
		Empty:  web.Empty{Title: "No custom indicators", Text: "Add one below or import an MDE CSV or JSON export."},
		Select: view.admin, Form: "indicators-bulk"}
	pg := indicatorsPage{Tabs: catalogTabs("indicators"), Import: res, Types: []string{"DomainName", "Url", "IpAddress"}, Actions: []string{"Block", "Warn", "Audit", "Allowed"}}
	edit, _ := strconv.ParseInt(r.URL.Query().Get("edit"), 10, 64)
	for _, in := range out.Value {
		exp := web.Cell{Text: "never", Sort: "9999999999"}
		if !in.ExpirationTime.IsZero() {
			exp = web.Cell{Text: in.ExpirationTime.UTC().Format("2006-01-02 15:04"), Sort: strconv.FormatInt(in.ExpirationTime.Unix(), 10)}
			if !in.ExpirationTime.After(now) {
				exp.Flag = "expired"
			}
		}
		val := web.Cell{Text: in.Value, Mono: true}
		if view.admin && !csvWanted(r) {
			val.Href = Base + "/catalog/indicators?edit=" + strconv.FormatInt(in.ID, 10) + "#edit"
		}
		t.Rows = append(t.Rows, web.Row{Key: strconv.FormatInt(in.ID, 10), Label: in.Value, Cells: []web.Cell{val, web.TextCell(in.Type), web.TextCell(in.Action),
			web.TextCell(in.Title), exp, web.TimeCell(in.UpdatedAt, now)}})
		if in.ID == edit {
			pg.Edit, pg.Editing = in, true
			if !in.ExpirationTime.IsZero() {
				pg.Expires = in.ExpirationTime.UTC().Format("2006-01-02T15:04")
			}
		}
	}
	if !pg.Editing {
		pg.Edit = store.Indicator{Type: "DomainName", Action: "Block"}
	}
	pageTable(r, &t)
	pg.Indicators = t
	u.listOut(w, r, "indicators", t, "catalog/indicators", pg)
}

// formTime reads a datetime-local field (UTC, the console's time zone).
func formTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339, "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("expiry %q: give a date and time like 2026-12-31T18:00 (UTC)", s)
}

func (u *UI) saveIndicator(w http.ResponseWriter, r *http.Request) {
	back := Base + "/catalog/indicators"
	exp, err := formTime(r.PostFormValue("expirationTime"))
	if err != nil {
		u.done(w, r, err, "", back)
		return
	}
	in := map[string]any{"indicatorValue": strings.TrimSpace(r.PostFormValue("indicatorValue")), "indicatorType": r.PostFormValue("indicatorType"),
		"action": r.PostFormValue("action"), "title": r.PostFormValue("title"), "description": r.PostFormValue("description")}
	if !exp.IsZero() {
		in["expirationTime"] = exp.Format(time.RFC3339)
	}
	if h := strings.TrimSpace(r.PostFormValue("bypassDurationHours")); h != "" {
		n, err := strconv.ParseFloat(h, 64)
		if err != nil {
			u.done(w, r, errors.New("bypass duration: give a number of hours"), "", back)
			return
		}
		in["bypassDurationHours"] = n
	}
	_, err = u.call(r, http.MethodPost, "/api/indicators", in, nil)
	u.done(w, r, err, fmt.Sprintf("Indicator %v saved and published.", in["indicatorValue"]), back)
}

// expireIndicators sets the selected indicators' expiry to now: they leave
// the feed and stay listed (and can be renewed by editing them).
func (u *UI) expireIndicators(w http.ResponseWriter, r *http.Request) {
	now := u.now().UTC().Format(time.RFC3339)
	u.each(w, r, Base+"/catalog/indicators", "Expired %d indicators: agents drop them within seconds.", func(id string) error {
		var cur store.Indicator
		if _, err := u.call(r, http.MethodGet, "/api/indicators/"+url.PathEscape(id), nil, &cur); err != nil {
			return err
		}
		in := map[string]any{"indicatorValue": cur.Value, "indicatorType": cur.Type, "action": cur.Action, "title": cur.Title,
			"description": cur.Description, "expirationTime": now}
		if cur.BypassHours > 0 {
			in["bypassDurationHours"] = cur.BypassHours
		}
		_, err := u.call(r, http.MethodPost, "/api/indicators", in, nil)
		return err
	})
}

func (u *UI) deleteIndicators(w http.ResponseWriter, r *http.Request) {
	u.eachAPI(w, r, Base+"/catalog/indicators", "Deleted %d indicators.", http.MethodDelete, func(id string) string { return "/api/indicators/" + url.PathEscape(id) })
}

// importIndicators takes an uploaded MDE CSV or JSON file (or pasted text)
// and shows the API's verdict line by line on the page itself.
func (u *UI) importIndicators(w http.ResponseWriter, r *http.Request) {
	back := Base + "/catalog/indicators"
	if err := r.ParseMultipartForm(8 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		u.done(w, r, fmt.Errorf("the upload: %w", err), "", back)
		return
	}
	var body []byte
	name := ""
	if f, h, err := r.FormFile("file"); err == nil {
		body, err = io.ReadAll(io.LimitReader(f, 32<<20+1))
		f.Close()
		if err != nil {
			u.done(w, r, err, "", back)
			return
		}
		name = h.Filename
	} else {
		body = []byte(r.PostFormValue("text"))
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		u.done(w, r, errors.New("choose a file or paste indicators first"), "", back)
		return
	}
	ct := "application/json"
	trim := strings.TrimSpace(string(body))
	if r.PostFormValue("format") == "csv" || r.PostFormValue("format") == "" && !strings.HasPrefix(trim, "[") && !strings.HasPrefix(trim, "{") {
		ct = "text/csv"
	}
	path := "/api/indicators/import"
	if r.PostFormValue("dryRun") == "on" {
		path += "?dryRun=true"
	}
	var out struct {
		Created  int                  `json:"created"`
		Updated  int                  `json:"updated"`
		Valid    int                  `json:"valid"`
		Errors   int                  `json:"errors"`
		Warnings int                  `json:"warnings"`
		Problems []indicators.Problem `json:"problems"`
	}
	_, err := u.callType(r, http.MethodPost, path, ct, body, &out)
	if err != nil {
		u.done(w, r, err, "", back)
		return
	}
	res := &importResult{Created: out.Created, Updated: out.Updated, Valid: out.Valid, Errors: out.Errors, Warnings: out.Warnings,
		Problems: web.Table{ID: "problems", Caption: "Problems in " + name, Columns: []web.Column{{Key: "where", Label: "Where"}, {Key: "sev", Label: "Severity"}, {Key: "msg", Label: "Problem"}},
			Empty: web.Empty{Title: "No problems", Text: "Every line is valid."}}}
	for _, p := range out.Problems {
		where := p.Position.String()
		if name != "" {
			where = strings.Replace(where, "import.csv", name, 1)
			where = strings.Replace(where, "import.json", name, 1)
		}
		res.Problems.Rows = append(res.Problems.Rows, web.Row{Cells: []web.Cell{{Text: where, Mono: true}, web.TextCell(string(p.Severity)), web.TextCell(p.Message)}})
	}
	// The verdict is shown on this response (not after a redirect): the
	// per-line problems can be long.
	u.renderIndicatorsWith(w, r, res)
}

func (u *UI) renderIndicatorsWith(w http.ResponseWriter, r *http.Request, res *importResult) {
	r2 := r.Clone(r.Context())
	r2.URL = &url.URL{Path: Base + "/catalog/indicators"}
	u.indicatorsPageWith(w, r2, res)
}
