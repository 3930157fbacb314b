// Package warnpage serves the block and warn pages at the sink address that
// the DNS proxy answers for warned (and, with blockAnswer "sink", blocked)
// names. It finds the site from the Host header (or the TLS server name),
// shows the agent's current decision for it, and for a warning offers a
// Continue button that creates a bypass. Continue is protected against
// cross-site request forgery; see docs/warn.md.
package warnpage

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/guard"
)

const (
	continuePath = "/.netward/continue"
	statusPath   = "/.netward/status"
	cookieName   = "netward_continue"
	maxBody      = 4 << 10
)

// Links are the organisation's links (feed settings warnRedirectUrl and
// blockRedirectUrl).
type Links struct{ Warn, Block string }

// Config configures a Server. Decide and Continue are required.
type Config struct {
	// Decide is the agent's current decision for a host name (a.DecideName).
	Decide func(name string) filter.Decision
	// Continue creates the bypass for name by user ("" = the device) and
	// returns when it is durable.
	Continue func(name, user string) (expires time.Time, err error)
	// PeerUser names the local account that owns the client's socket
	// (LocalPeerUser); nil or "" makes the bypass device-wide.
	PeerUser func(client, server netip.AddrPort) string
	// Links returns the organisation's links in force; may be nil.
	Links func() Links
	// Key is the per-install HMAC secret (LoadOrCreateKey).
	Key []byte
	// CA mints certificates for HTTPS; nil means HTTPS handshakes fail at once
	// with an alert.
	CA *CA
	// TokenTTL is how long a warn page's Continue button works (default 30 min).
	TokenTTL time.Duration
	// Wait is how long the page after Continue waits before retrying the site:
	// the synthetic DNS TTL plus a second (default 11 s).
	Wait time.Duration
	// Target maps the site and the request URI the user asked for to the URL
	// the page retries; default: the same URL on the same origin. Tests point
	// it at another server.
	Target func(site, requestURI string) string
	// NoPage is called with the server name of an HTTPS request that gets no
	// page (no local CA), so the agent can notify the user instead. May be nil.
	NoPage func(name string)
	// OrgText is an optional sentence from the organisation shown on every page.
	OrgText string
	// Panics records a panic recovered while serving one request (the
	// request gets a 500; the pages go on). Default: its own, logging to Log.
	Panics *guard.Panics
	Now    func() time.Time
	Log    *slog.Logger
}

// Server is the warn/block page server. New starts nothing; Serve and Run do.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Decide == nil || cfg.Continue == nil {
		return nil, errors.New("warnpage: Decide and Continue are required")
	}
	if len(cfg.Key) < 32 {
		return nil, errors.New("warnpage: key must be at least 32 bytes")
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 30 * time.Minute
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 11 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Links == nil {
		cfg.Links = func() Links { return Links{} }
	}
	if cfg.Panics == nil {
		cfg.Panics = guard.New(cfg.Log)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc(continuePath, s.handleContinue)
	s.mux.HandleFunc(statusPath, s.handleStatus)
	s.mux.HandleFunc("/", s.handlePage)
	return s, nil
}

// Handler returns the HTTP handler of the pages.
func (s *Server) Handler() http.Handler {
	return s.cfg.Panics.HTTP("warnpage", http.HandlerFunc(s.serveHTTP))
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Every response closes its connection: after Continue the browser must
	// open a new one, resolved anew, to reach the real site.
	h.Set("Connection", "close")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY") // no clickjacking of the Continue button
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Netward-Sink", "1")
	s.mux.ServeHTTP(w, r)
}

// TLSConfig is the TLS configuration of the HTTPS listener: with a CA it
// mints a leaf per server name; without, every handshake fails at once with
// an alert, so a browser shows an error instead of hanging.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name, err := filter.CanonicalName(hello.ServerName)
			if err != nil || hello.ServerName == "" {
				return nil, fmt.Errorf("no usable server name in the TLS handshake")
			}
			if s.cfg.CA == nil {
				if s.cfg.NoPage != nil {
					s.cfg.NoPage(name)
				}
				return nil, errors.New("no local CA configured (warn.localCA is false); HTTPS pages are not available")
			}
			// Only names the policy knows get a certificate: the CA signs
			// nothing else.
			if s.cfg.Decide(name).Match.Rule == nil {
				return nil, fmt.Errorf("%s matches no indicator; no certificate minted", name)
			}
			return s.cfg.CA.Leaf(name)
		},
	}
}

// Serve serves plain HTTP on httpLn and HTTPS on httpsLn (either may be nil)
// until ctx ends, then shuts down. It takes ownership of the listeners.
func (s *Server) Serve(ctx context.Context, httpLn, httpsLn net.Listener) error {
	errc := make(chan error, 2)
	var srvs []*http.Server
	start := func(ln net.Listener, tlsOn bool) {
		srv := &http.Server{
			Handler:           s.Handler(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       5 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelDebug),
		}
		if tlsOn {
			srv.TLSConfig = s.TLSConfig()
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
		srvs = append(srvs, srv)
		go func() { errc <- srv.Serve(ln) }()
	}
	if httpLn != nil {
		start(httpLn, false)
	}
	if httpsLn != nil {
		start(httpsLn, true)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range srvs {
		_ = srv.Shutdown(sctx)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// site returns the canonical host name the request was for.
func site(r *http.Request) (string, error) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return "", errors.New("the request names no host")
	}
	return filter.CanonicalName(host)
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func (s *Server) render(w http.ResponseWriter, code int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	csp := "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	if d.Kind == "wait" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		d.Nonce = base64.RawStdEncoding.EncodeToString(b[:])
		csp += "; script-src 'nonce-" + d.Nonce + "'"
	}
	w.Header().Set("Content-Security-Policy", csp)
	d.OrgText = s.cfg.OrgText
	w.WriteHeader(code)
	if err := pageTmpl.Execute(w, d); err != nil {
		s.cfg.Log.Debug("warn page: write", "err", err)
	}
}

func (s *Server) errorPage(w http.ResponseWriter, code int, msg string) {
	s.render(w, code, pageData{Kind: "error", Message: msg})
}

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	name, err := site(r)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "This address does not name a site: "+err.Error())
		return
	}
	d := s.cfg.Decide(name)
	s.pageFor(w, r, name, d, r.URL.RequestURI())
}

// pageFor renders the page the decision d calls for.
func (s *Server) pageFor(w http.ResponseWriter, r *http.Request, name string, d filter.Decision, uri string) {
	pd := pageData{Site: name, Path: uri, Continue: continuePath}
	if rule := d.Match.Rule; rule != nil {
		pd.App, pd.Title, pd.ID = rule.Application(), rule.Title(), rule.IndicatorID()
	}
	links := s.cfg.Links()
	switch d.Verdict {
	case filter.VerdictWarn:
		nonce := s.nonce(w, r)
		pd.Kind, pd.OrgURL = "warn", safeLink(links.Warn)
		pd.Token = mintToken(s.cfg.Key, name, nonce, s.cfg.Now().Add(s.cfg.TokenTTL))
		s.render(w, http.StatusForbidden, pd)
	case filter.VerdictBlock:
		pd.Kind, pd.OrgURL = "block", safeLink(links.Block)
		s.render(w, http.StatusForbidden, pd)
	default:
		// Allowed now (bypassed, unblocked, audit or off): the name still
		// resolves here only because of a cached DNS answer. Wait it out.
		pd.Kind = "wait"
		pd.Target = uri
		if s.cfg.Target != nil {
			pd.Target = s.cfg.Target(name, uri)
		}
		pd.Bypassed = d.Verdict == filter.VerdictBypassed
		if !d.BypassExpires.IsZero() {
			pd.Expires = d.BypassExpires.Local().Format("15:04 on 2 Jan 2006")
		}
		pd.Wait = int((s.cfg.Wait + time.Second - 1) / time.Second)
		pd.PollMs = 1000
		s.render(w, http.StatusOK, pd)
	}
}

// nonce returns the browser's Continue nonce, setting a fresh cookie when the
// request carries none.
func (s *Server) nonce(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(cookieName); err == nil && len(c.Value) >= 16 && len(c.Value) <= 64 {
		return c.Value
	}
	var b [18]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: v, Path: "/.netward/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(s.cfg.TokenTTL / time.Second)})
	return v
}

// sameOrigin reports whether the POST came from a page of this very site:
// Sec-Fetch-Site when the browser sends it, and Origin (or, for old
// browsers, Referer) equal to the request's own origin. A request with none
// of them is refused: every browser since 2020 sends Origin on POST.
func sameOrigin(r *http.Request) error {
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" && sfs != "same-origin" {
		return fmt.Errorf("cross-site request (Sec-Fetch-Site: %s)", sfs)
	}
	want := scheme(r) + "://" + strings.ToLower(r.Host)
	if o := r.Header.Get("Origin"); o != "" {
		if !strings.EqualFold(o, want) {
			return fmt.Errorf("request from another origin (%s)", o)
		}
		return nil
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		if err == nil && strings.EqualFold(u.Scheme+"://"+u.Host, want) {
			return nil
		}
		return errors.New("request from another page (Referer)")
	}
	return errors.New("request without Origin or Referer")
}

func (s *Server) handleContinue(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.errorPage(w, http.StatusMethodNotAllowed, "Continue works only from the button on the warning page.")
		return
	}
	name, err := site(r)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "This address does not name a site.")
		return
	}
	if err := sameOrigin(r); err != nil {
		s.cfg.Log.Warn("warn page: refused a Continue", "site", name, "reason", err)
		s.errorPage(w, http.StatusForbidden, "Refused: the request did not come from the warning page of this site.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	c, err := r.Cookie(cookieName)
	if err != nil {
		s.errorPage(w, http.StatusForbidden, "Refused: this browser did not load the warning page. Reload the page and try again.")
		return
	}
	if err := checkToken(s.cfg.Key, r.PostForm.Get("token"), name, c.Value, s.cfg.Now()); err != nil {
		s.cfg.Log.Warn("warn page: refused a Continue", "site", name, "reason", err)
		msg := "Refused: the warning page was not for this site. Reload the page and try again."
		if errors.Is(err, errTokenExpired) {
			msg = "The warning page has expired. Reload the page and try again."
		}
		s.errorPage(w, http.StatusForbidden, msg)
		return
	}
	path := r.PostForm.Get("path")
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") || strings.HasPrefix(path, "/\\") {
		path = "/" // only a path on this very site: no open redirect
	}
	d := s.cfg.Decide(name)
	if d.Verdict != filter.VerdictWarn {
		// Blocked since, already bypassed, or unblocked: show what applies now.
		s.pageFor(w, r, name, d, path)
		return
	}
	if _, err := s.cfg.Continue(name, s.peerUser(r)); err != nil {
		s.cfg.Log.Error("warn page: could not create the bypass", "site", name, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "netward could not record your choice: "+err.Error())
		return
	}
	// POST-redirect-GET: the GET shows the waiting page, which retries the site.
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// peerUser is the local account that sent r, or "".
func (s *Server) peerUser(r *http.Request) string {
	if s.cfg.PeerUser == nil {
		return ""
	}
	client, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return ""
	}
	server, err := netip.ParseAddrPort(la.String())
	if err != nil {
		return ""
	}
	return s.cfg.PeerUser(client, server)
}

type status struct {
	Name          string     `json:"name"`
	Verdict       string     `json:"verdict"`
	BypassExpires *time.Time `json:"bypassExpires,omitempty"`
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, err := site(r)
	if err != nil {
		http.Error(w, "bad host", http.StatusBadRequest)
		return
	}
	d := s.cfg.Decide(name)
	st := status{Name: name, Verdict: d.Verdict.String()}
	if !d.BypassExpires.IsZero() {
		st.BypassExpires = &d.BypassExpires
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}
