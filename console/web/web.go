// Package web is the console's page kit: a Renderer that executes
// html/template pages inside one base layout, the embedded stylesheet and
// progressive-enhancement script served under content-hashed names, the
// security headers every page carries, reusable components (data tables,
// stat cards, badges, tabs, pagination, drawer, empty states), CSV export,
// and a style-guide page that shows them all.
//
// Pages are templates in an fs.FS (Config.Pages). Each defines "main" (the
// page body) and may define "title" and "drawer-body":
//
//	{{define "title"}}Discovered apps{{end}}
//	{{define "main"}}{{template "page-header" ($.Header "Discovered apps" "")}}
//	  {{template "table" .Data.Apps}}{{end}}
//
// and a handler renders one with
//
//	ui.Render(w, r, "apps", appsPage{Apps: table})
//
// Templates see a *View ($): the page data is $.Data. The package has no
// state of its own: everything lives in the Renderer that New returns.
package web

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/netward/netward/console/web/format"
)

// User is the signed-in account the layout shows.
type User struct {
	Name string
	Role string // "admin" or "viewer"
}

// NavItem is one section of the top navigation. Key is matched against the
// first segment of a page name ("apps" for the pages "apps" and
// "apps/detail") to mark the current section.
type NavItem struct {
	Key, Label, Href string
}

// DefaultNav is the console's six sections under base.
func DefaultNav(base string) []NavItem {
	return []NavItem{
		{Key: "dashboard", Label: "Dashboard", Href: base + "/"},
		{Key: "apps", Label: "Discovered apps", Href: base + "/apps"},
		{Key: "machines", Label: "Machines", Href: base + "/machines"},
		{Key: "catalog", Label: "Catalog & indicators", Href: base + "/catalog"},
		{Key: "alerts", Label: "Alerts", Href: base + "/alerts"},
		{Key: "settings", Label: "Settings", Href: base + "/settings"},
	}
}

// Config builds a Renderer. Only Pages is needed to render pages of one's
// own; the zero Config renders the built-in pages (style guide, errors).
type Config struct {
	// Pages holds the page templates, one file per page: "apps.html" is the
	// page "apps", "machines/detail.html" the page "machines/detail".
	Pages fs.FS
	// Base is the URL prefix of the UI; default "/ui". Assets are served
	// under Base + "/assets/".
	Base string
	// Nav is the top navigation; default DefaultNav(Base).
	Nav []NavItem
	// Product is the name in titles; default "netward console".
	Product string
	// User returns the signed-in account, if any.
	User func(*http.Request) (User, bool)
	// CSRFToken returns the token every state-changing form must carry for
	// the request's session; CSRFField names its form field (default
	// "csrf_token"). The template "csrf" writes the hidden input.
	CSRFToken func(*http.Request) string
	CSRFField string
	// SignOut is the URL the sign-out form posts to; default Base + "/signout".
	SignOut string
	// Badges returns short counts shown next to navigation items, by key
	// (for example {"alerts": "3"}). Optional.
	Badges func(*http.Request) map[string]string
	// DefaultPeriod is the period when the URL names none; default 30d.
	DefaultPeriod Period
	// FlashKey signs flash-message cookies. Default: a random key, which
	// is fine for one process.
	FlashKey []byte
	// Now is the clock for "5 min ago"; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Renderer renders pages and serves their assets. It is safe for
// concurrent use.
type Renderer struct {
	cfg    Config
	assets *assetSet
	pages  map[string]*template.Template
	bufs   sync.Pool
}

// ErrNoPage is returned (wrapped) by Render for an unknown page name.
var ErrNoPage = errors.New("no such page")

// New parses every page with the layout and partials, so a template error
// shows at start-up, not on a user's click. It starts nothing.
func New(cfg Config) (*Renderer, error) {
	if cfg.Base == "" {
		cfg.Base = "/ui"
	}
	cfg.Base = strings.TrimRight(cfg.Base, "/")
	if cfg.Nav == nil {
		cfg.Nav = DefaultNav(cfg.Base)
	}
	if cfg.Product == "" {
		cfg.Product = "netward console"
	}
	if cfg.CSRFField == "" {
		cfg.CSRFField = "csrf_token"
	}
	if cfg.SignOut == "" {
		cfg.SignOut = cfg.Base + "/signout"
	}
	if _, ok := ParsePeriod(string(cfg.DefaultPeriod)); !ok {
		cfg.DefaultPeriod = Period30d
	}
	if len(cfg.FlashKey) == 0 {
		cfg.FlashKey = make([]byte, 32)
		if _, err := rand.Read(cfg.FlashKey); err != nil {
			return nil, fmt.Errorf("web: flash key: %w", err)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	as, err := newAssetSet(cfg.Base + "/assets/")
	if err != nil {
		return nil, err
	}
	r := &Renderer{cfg: cfg, assets: as, pages: map[string]*template.Template{}}
	r.bufs.New = func() any { return new(bytes.Buffer) }
	base, err := template.New("base").Funcs(r.funcs()).ParseFS(embedded, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse layout: %w", err)
	}
	if err := r.addPages(base, embedded, "pages"); err != nil {
		return nil, err
	}
	if cfg.Pages != nil {
		if err := r.addPages(base, cfg.Pages, "."); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// addPages parses every *.html under dir of fsys as a page on a copy of base.
func (r *Renderer) addPages(base *template.Template, fsys fs.FS, dir string) error {
	return fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("web: read pages: %w", err)
		}
		if d.IsDir() || path.Ext(p) != ".html" {
			return nil
		}
		name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(p, dir), "/"), ".html")
		if _, dup := r.pages[name]; dup {
			return fmt.Errorf("web: page %q defined twice (%s); rename one", name, p)
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("web: read page %s: %w", p, err)
		}
		t, err := base.Clone()
		if err == nil {
			_, err = t.New(name).Parse(string(src))
		}
		if err != nil {
			return fmt.Errorf("web: parse page %s: %w", p, err)
		}
		if t.Lookup("main") == nil || !strings.Contains(string(src), `{{define "main"}}`) {
			return fmt.Errorf("web: page %s defines no \"main\" template", p)
		}
		r.pages[name] = t
		return nil
	})
}

// Pages lists the page names the Renderer knows, sorted.
func (r *Renderer) Pages() []string {
	var out []string
	for n := range r.pages {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Render writes the page with the layout and the security headers, status
// 200. The page is executed into a buffer first, so a template error gives a
// clean 500 page (logged) instead of half a page.
func (r *Renderer) Render(w http.ResponseWriter, req *http.Request, page string, data any) {
	r.RenderStatus(w, req, http.StatusOK, page, data)
}

// RenderStatus is Render with another status code (404 and 403 pages).
func (r *Renderer) RenderStatus(w http.ResponseWriter, req *http.Request, status int, page string, data any) {
	buf := r.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer r.bufs.Put(buf)
	v := r.view(w, req, page, data)
	if err := r.execute(buf, page, v); err != nil {
		r.cfg.Logger.Error("render page", "page", page, "path", req.URL.Path, "err", err)
		r.Error(w, req, http.StatusInternalServerError, "This page could not be shown. The error is in the console's log.")
		return
	}
	r.SetHeaders(w, req)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if v.Drawer != nil && !DrawerOnly(req) {
		// The same address answers the script with the drawer alone.
		w.Header().Add("Vary", DrawerHeader)
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (r *Renderer) execute(buf *bytes.Buffer, page string, v *View) error {
	t, ok := r.pages[page]
	if !ok {
		return fmt.Errorf("web: render %q: %w", page, ErrNoPage)
	}
	layout := "layout"
	if v.Drawer != nil && v.drawerOnly {
		layout = "drawer-document"
	}
	if err := t.ExecuteTemplate(buf, layout, v); err != nil {
		return fmt.Errorf("web: render %q: %w", page, err)
	}
	return nil
}

// Error renders the built-in error page with a message for the user.
func (r *Renderer) Error(w http.ResponseWriter, req *http.Request, status int, message string) {
	buf := r.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer r.bufs.Put(buf)
	v := r.view(w, req, "error", errorPage{Status: status, StatusText: http.StatusText(status), Message: message})
	r.SetHeaders(w, req)
	if err := r.execute(buf, "error", v); err != nil {
		r.cfg.Logger.Error("render error page", "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintln(w, message)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorPage struct {
	Status     int
	StatusText string
	Message    string
}

// AssetPath returns the URL of an embedded asset under its content-hashed
// name ("console.css" → "/ui/assets/console.3f2a9c1d.css"), or "" if there
// is no such asset.
func (r *Renderer) AssetPath(name string) string { return r.assets.url(name) }

// Assets serves the embedded assets under their hashed names; mount it at
// Base + "/assets/".
func (r *Renderer) Assets() http.Handler { return r.assets }

// Handler serves the assets and the style guide under Base, the routes this
// package owns; the console mounts it next to its own pages.
func (r *Renderer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(r.cfg.Base+"/assets/", r.assets)
	mux.Handle(r.cfg.Base+"/styleguide", r.StyleGuide())
	mux.Handle(r.cfg.Base+"/styleguide/apps.csv", r.StyleGuide())
	return mux
}

func (r *Renderer) funcs() template.FuncMap {
	return template.FuncMap{
		"asset":   r.AssetPath,
		"bytes":   func(n any) string { return format.Bytes(toFloat(n)) },
		"count":   func(n any) string { return format.Count(toFloat(n)) },
		"percent": func(n any) string { return format.Percent(toFloat(n)) },
		"ago":     func(t time.Time) string { return format.Ago(t, r.cfg.Now()) },
		"stamp":   func(t time.Time) string { return format.Stamp(t, time.Minute) },
		"date":    func(t time.Time) string { return format.Stamp(t, 24*time.Hour) },
		"iso":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"initial": initial,
	}
}

// initial is the first letter of a name, for the avatar.
func initial(name string) string {
	for _, r := range name {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return strings.ToUpper(string(r))
		}
	}
	return "?"
}

func toFloat(n any) float64 {
	switch v := n.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	case int32:
		return float64(v)
	case float64:
		return v
	case float32:
		return float64(v)
	}
	return 0
}

// DrawerHeader marks the console script's request for a drawer it opens in
// place (console.js openDrawer): it keeps only #drawer of the answer, so the
// page behind the drawer need not be built for it.
const DrawerHeader = "X-Netward-Drawer"

// DrawerOnly says whether req is the script's request for a drawer alone.
// Render answers such a request for a page with a drawer with the drawer
// alone (its scrim and panel in a minimal document), so a page whose data is
// costly may build only the drawer then; a navigation (a link followed, a
// reload, no script) gets the whole page.
func DrawerOnly(req *http.Request) bool { return req.Header.Get(DrawerHeader) == "1" }
