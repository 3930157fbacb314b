// Package api is the console's admin JSON API under /api/ (the web UI of a
// later issue and automation use the same handlers) and the agents'
// enrollment endpoint POST /v1/enroll. Readers (viewer role) may call every
// GET; everything that changes state needs the admin role, and, on a
// browser session, the session's CSRF token.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/netward/netward/console/alerts"
	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/discovery"
	"github.com/netward/netward/console/feed"
	"github.com/netward/netward/console/ingest"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/indicators"
)

// Config configures the API.
type Config struct {
	Store   *store.Store
	Auth    *auth.Service
	Feed    *feed.Publisher
	Ingest  *ingest.Ingest
	Catalog *catalog.Catalog // shipped catalog
	// CatalogChanged is called after custom apps change (the ingest
	// matcher is rebuilt).
	CatalogChanged func(context.Context)
	// Alerts raises and delivers alerts (send test); Discovery evaluates
	// discovery policies on demand; ChunkDir holds the raw chunks that
	// hunting and device timelines read, or Raw when ingest keeps them in
	// object storage (ingest.Config.Raw: the same store).
	Alerts    *alerts.Alerts
	Discovery *discovery.Evaluator
	ChunkDir  string
	Raw       ingest.RawStore
	// Fingerprint is the SHA-256 of the console's certificate, for the
	// enroll command shown with a new key ("" when a CA-issued one is used).
	Fingerprint string
	Log         *slog.Logger
	Now         func() time.Time
}

// API serves the JSON endpoints.
type API struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	mux *http.ServeMux
}

// New builds the API; it starts nothing.
func New(cfg Config) *API {
	a := &API{cfg: cfg, log: cfg.Log, now: cfg.Now, mux: http.NewServeMux()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.cfg.CatalogChanged == nil {
		a.cfg.CatalogChanged = func(context.Context) {}
	}
	a.routes()
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// access levels of a route.
type access int

const (
	public access = iota // no account (sign-in, enrollment)
	reader               // any account
	admin                // admin role
)

// handlerFunc returns the JSON answer (nil: 204) or an error.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p auth.Principal) (any, error)

func (a *API) handle(pattern string, level access, f handlerFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var p auth.Principal
		if level != public {
			var err error
			if p, err = a.cfg.Auth.Authenticate(r); err != nil {
				a.fail(w, r, err)
				return
			}
			if level == admin && !p.Admin() {
				a.fail(w, r, auth.ErrForbidden)
				return
			}
		}
		v, err := f(w, r, p)
		if errors.Is(err, errHandled) {
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if v == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Error is the JSON error body.
type Error struct {
	Error    string               `json:"error"`
	Problems []indicators.Problem `json:"problems,omitempty"`
}

// badRequest is a 400 with problems.
type badRequest struct {
	msg      string
	problems []indicators.Problem
}

func (e *badRequest) Error() string { return e.msg }

func invalid(format string, args ...any) error { return &badRequest{msg: fmt.Sprintf(format, args...)} }

// withStatus is an error with its own status.
type withStatus struct {
	code int
	err  error
}

func (e *withStatus) Error() string { return e.err.Error() }
func (e *withStatus) Unwrap() error { return e.err }

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	body := Error{Error: err.Error()}
	var br *badRequest
	var rl *auth.RateLimitedError
	var ws *withStatus
	switch {
	case errors.As(err, &br):
		code, body.Problems = http.StatusBadRequest, br.problems
	case errors.As(err, &ws):
		code = ws.code
	case errors.Is(err, auth.ErrBusy):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "2")
	case errors.As(err, &rl):
		code = http.StatusTooManyRequests
		w.Header().Set("Retry-After", strconv.Itoa(int(rl.RetryAfter.Seconds())+1))
	case errors.Is(err, auth.ErrUnauthenticated), errors.Is(err, auth.ErrBadCredentials):
		code = http.StatusUnauthorized
	case errors.Is(err, auth.ErrForbidden), errors.Is(err, auth.ErrCSRF):
		code = http.StatusForbidden
	case errors.Is(err, store.ErrNotFound), errors.Is(err, catalog.ErrUnknown):
		code = http.StatusNotFound
	case errors.Is(err, store.ErrExists):
		code = http.StatusConflict
	case errors.Is(err, catalog.ErrGroup):
		code = http.StatusBadRequest
	default:
		a.log.Error("api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		body.Error = "internal error; the console log has the details"
	}
	writeJSON(w, code, body)
}

// decode reads one JSON value of at most limit bytes into v; unknown
// fields are errors that name the field.
func decode(r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.Is(err, io.EOF):
			return invalid("the request body is empty; send a JSON object")
		case errors.As(err, &te):
			return invalid("field %q is a JSON %s; want %s", te.Field, te.Value, te.Type)
		case errors.As(err, &se):
			return invalid("the request body is not JSON (offset %d: %v)", se.Offset, se)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return invalid("the request body is cut short or longer than %d bytes", limit)
		}
		return invalid("the request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("trailing data after the JSON object")
	}
	return nil
}

// audit records an admin action; failures are logged, not fatal.
func (a *API) audit(r *http.Request, p auth.Principal, action, target, detail string) {
	if err := a.cfg.Store.Audit(r.Context(), store.AuditEntry{Actor: p.Actor(), Action: action, Target: target, Detail: detail}); err != nil {
		a.log.Error("api: audit log not written", "action", action, "err", err)
	}
	a.log.Info("admin action", "actor", p.Actor(), "action", action, "target", target)
}

// publish rebuilds the feed after a policy change; the answer says which
// sequence the change is in.
func (a *API) publish(ctx context.Context) (feed.Status, error) {
	st, err := a.cfg.Feed.Publish(ctx)
	if err != nil {
		return st, fmt.Errorf("the change is saved but the feed was not rebuilt (it will be on the next change or restart): %w", err)
	}
	return st, nil
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func pathInt(r *http.Request, name string) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil {
		return 0, invalid("%s %q is not a number", name, r.PathValue(name))
	}
	return n, nil
}

// Recover turns a panic in h into a 500 for that request alone (the
// process and other requests go on) and logs it with its stack.
func Recover(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic serving a request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// timeParam reads an RFC 3339 query parameter (def when absent).
func timeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, invalid("%s %q is not an RFC 3339 time like 2026-12-01T00:00:00Z", name, v)
	}
	return t, nil
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, invalid("%s %q: want a whole number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

func lower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
