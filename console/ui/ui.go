// Package ui is the console's web UI (issue 19): server-rendered pages on
// the console/web kit, served under /ui/ by `netward-console serve`. Every
// page reads and every form writes through the admin JSON API — called in
// process with the browser's own session cookie and CSRF token — so the UI
// can do nothing automation cannot, and a viewer's POST is refused by the
// same check that refuses it on /api/.
package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/web"
)

//go:embed pages
var pagesFS embed.FS

// Config builds the UI.
type Config struct {
	// API is the admin JSON API (console/api); every page goes through it.
	API http.Handler
	// Auth finds the signed-in account of a request.
	Auth *auth.Service
	// FlashKey signs flash messages; default a random key per process.
	FlashKey []byte
	Log      *slog.Logger
	Now      func() time.Time
}

// UI serves the pages.
type UI struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	web *web.Renderer
	mux *http.ServeMux
}

// Base is the URL prefix of the pages.
const Base = "/ui"

type ctxKey struct{}

// New parses every page (a template error stops the start) and starts
// nothing.
func New(cfg Config) (*UI, error) {
	u := &UI{cfg: cfg, log: cfg.Log, now: cfg.Now, mux: http.NewServeMux()}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.now == nil {
		u.now = time.Now
	}
	sub, err := fs.Sub(pagesFS, "pages")
	if err != nil {
		return nil, err
	}
	u.web, err = web.New(web.Config{
		Pages: sub, Base: Base, FlashKey: cfg.FlashKey, Logger: u.log, Now: u.now,
		User: func(r *http.Request) (web.User, bool) {
			p, ok := principal(r)
			return web.User{Name: p.Account.Name, Role: p.Account.Role}, ok
		},
		CSRFToken: func(r *http.Request) string { p, _ := principal(r); return p.CSRF },
	})
	if err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	u.routes()
	return u, nil
}

func principal(r *http.Request) (auth.Principal, bool) {
	p, ok := r.Context().Value(ctxKey{}).(auth.Principal)
	return p, ok
}

// ServeHTTP serves everything under Base.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.mux.ServeHTTP(w, r) }

// page registers a GET page that needs a signed-in account.
func (u *UI) page(pattern string, h http.HandlerFunc) {
	u.mux.Handle("GET "+pattern, u.signedIn(h))
}

// action registers a form POST; the API it calls checks the role and the
// CSRF token, so nothing is checked twice here.
func (u *UI) action(pattern string, h http.HandlerFunc) {
	u.mux.Handle("POST "+pattern, u.web.Secure(u.withPrincipal(h)))
}

// signedIn authenticates the session (a GET needs no CSRF token) and sends
// anyone else to the sign-in page, coming back afterwards.
func (u *UI) signedIn(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := u.cfg.Auth.Authenticate(r)
		if err != nil {
			if errors.Is(err, auth.ErrUnauthenticated) {
				u.web.SetHeaders(w, r)
				http.Redirect(w, r, Base+"/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			u.log.Error("ui: authenticate", "err", err)
			u.web.Error(w, r, http.StatusServiceUnavailable, "The console cannot check your session right now; try again in a moment.")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	})
}

// withPrincipal attaches the account (if any) for the flash and redirect
// of a form, without refusing: the API call decides.
func (u *UI) withPrincipal(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.Method = http.MethodGet // the CSRF check belongs to the API call
		if p, err := u.cfg.Auth.Authenticate(r2); err == nil {
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, p))
		}
		h(w, r)
	}
}

// back redirects to the page the form came from (a path under Base only).
func (u *UI) back(w http.ResponseWriter, r *http.Request, def string) {
	to := r.PostFormValue("back")
	if to == "" {
		// The tag buttons of the drawer come back to the page they were
		// on: the Referer (same-origin policy, so the browser sends it).
		if ref, err := url.Parse(r.Referer()); err == nil && ref.Host == r.Host {
			to = ref.RequestURI()
		}
	}
	if !strings.HasPrefix(to, Base+"/") && to != Base {
		to = def
	}
	if strings.HasPrefix(to, "//") || strings.Contains(to, "\\") {
		to = def
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// done flashes the API's verdict on a form and redirects back.
func (u *UI) done(w http.ResponseWriter, r *http.Request, err error, ok, def string) {
	if err != nil {
		u.web.Flash(w, r, web.Flash{Kind: web.FlashError, Text: err.Error()})
	} else if ok != "" {
		u.web.Flash(w, r, web.Flash{Kind: web.FlashSuccess, Text: ok})
	}
	u.back(w, r, def)
}

func (u *UI) routes() {
	u.mux.Handle(Base+"/assets/", u.web.Handler())
	// The kit's style guide (sample data only), for page authors.
	u.mux.Handle(Base+"/styleguide", u.signedIn(u.web.Handler().ServeHTTP))
	u.mux.Handle(Base+"/styleguide/", u.signedIn(u.web.Handler().ServeHTTP))
	u.mux.HandleFunc("GET "+Base, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Base+"/", http.StatusSeeOther)
	})
	u.sessionRoutes()
	u.settingsRoutes()
	u.catalogRoutes()
	u.machineRoutes()
	u.discoveryRoutes()
	u.alertRoutes()
	u.huntRoutes()
	u.mux.Handle(Base+"/", u.signedIn(func(w http.ResponseWriter, r *http.Request) {
		u.web.Error(w, r, http.StatusNotFound, "There is no such page. Use the navigation above.")
	}))
}
