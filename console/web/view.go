package web

import (
	"net/http"
	"net/url"
	"strings"
)

// View is what every page template receives as its root ($). Data is the
// value the handler passed to Render.
type View struct {
	Product string
	Page    string // page name, e.g. "apps"
	Section string // key of the current navigation item
	Nav     []NavLink
	Period  Period
	Periods []PeriodLink
	User    *User
	Flashes []Flash
	// CSRFField and CSRFToken fill the hidden input of state-changing
	// forms: write {{template "csrf" $}} inside every <form method="post">.
	CSRFField, CSRFToken string
	SignOut              string
	Base                 string
	// URL is the request URL, for links that keep the current query.
	URL    *url.URL
	Drawer *Drawer
	Data   any
	// drawerOnly: the script asked for the drawer alone (DrawerOnly).
	drawerOnly bool
}

// NavLink is a navigation item as rendered, with the period kept.
type NavLink struct {
	Label, Href, Badge string
	Current            bool
}

// PeriodLink is one choice of the period selector.
type PeriodLink struct {
	Label, Long, Href string
	Current           bool
}

// SectionLabel is the label of the current section, the default title.
func (v *View) SectionLabel() string {
	for _, n := range v.Nav {
		if n.Current {
			return n.Label
		}
	}
	return ""
}

// CanEdit reports whether the signed-in user may change things; pages hide
// edit controls for viewers (the server refuses their POSTs regardless).
func (v *View) CanEdit() bool { return v.User != nil && v.User.Role == "admin" }

// PageHeader is the data of the "page-header" partial.
type PageHeader struct {
	Title, Subtitle string
	Periods         []PeriodLink // empty: no period selector
	Period          Period
}

// Header makes a page header with the period selector.
func (v *View) Header(title, subtitle string) PageHeader {
	return PageHeader{Title: title, Subtitle: subtitle, Periods: v.Periods, Period: v.Period}
}

// HeaderPlain makes a page header without the period selector (settings).
func (v *View) HeaderPlain(title, subtitle string) PageHeader {
	return PageHeader{Title: title, Subtitle: subtitle}
}

// drawerPage is implemented by page data that opens the drawer.
type drawerPage interface {
	PageDrawer() *Drawer
}

func (r *Renderer) view(w http.ResponseWriter, req *http.Request, page string, data any) *View {
	v := r.viewNoFlashes(req, page, data)
	if !DrawerOnly(req) {
		// An answer to the script's drawer request (the drawer, or an
		// error page it throws away before loading the whole page) is
		// not a page the user reads: the messages wait for the next.
		v.Flashes = r.takeFlashes(w, req)
	}
	return v
}

func (r *Renderer) viewNoFlashes(req *http.Request, page string, data any) *View {
	v := &View{
		Product: r.cfg.Product, Page: page, Data: data, Base: r.cfg.Base,
		CSRFField: r.cfg.CSRFField, SignOut: r.cfg.SignOut, URL: req.URL,
	}
	v.Section, _, _ = strings.Cut(page, "/")
	if p, ok := ParsePeriod(req.URL.Query().Get("period")); ok {
		v.Period = p
	} else {
		v.Period = r.cfg.DefaultPeriod
	}
	var badges map[string]string
	if r.cfg.Badges != nil {
		badges = r.cfg.Badges(req)
	}
	for _, n := range r.cfg.Nav {
		href := n.Href
		if v.Period != r.cfg.DefaultPeriod {
			href = withQuery(href, "period", string(v.Period))
		}
		v.Nav = append(v.Nav, NavLink{Label: n.Label, Href: href, Badge: badges[n.Key], Current: n.Key == v.Section})
	}
	for _, p := range Periods() {
		q := req.URL.Query()
		q.Set("period", string(p))
		q.Del("page") // a new period starts at the first page
		v.Periods = append(v.Periods, PeriodLink{Label: p.Short(), Long: p.Label(), Href: "?" + q.Encode(), Current: p == v.Period})
	}
	if r.cfg.User != nil {
		if u, ok := r.cfg.User(req); ok {
			v.User = &u
		}
	}
	if r.cfg.CSRFToken != nil {
		v.CSRFToken = r.cfg.CSRFToken(req)
	}
	if d, ok := data.(drawerPage); ok {
		v.Drawer = d.PageDrawer()
	}
	v.drawerOnly = DrawerOnly(req)
	return v
}

// withQuery sets one query parameter on href.
func withQuery(href, key, value string) string {
	u, err := url.Parse(href)
	if err != nil {
		return href
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
