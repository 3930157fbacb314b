package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netward/netward/agent/bypass"
	"github.com/netward/netward/internal/guard"
	"github.com/netward/netward/telemetry"
)

// Config configures a Server.
type Config struct {
	Backend Backend
	// Events is the ring `netward events` reads; nil serves no events.
	Events *Ring
	Log    *slog.Logger
	Now    func() time.Time
	// MaxConns bounds concurrent connections (default 64): the socket is
	// open to every local user. AdminConns of them (default 16) only root /
	// Administrators may take, UserConns (default 8) is what one non-admin
	// account may hold, and UserFollows (default 4) how many of those may
	// be `events --follow` streams: one user cannot lock root or other
	// users out.
	MaxConns    int
	AdminConns  int
	UserConns   int
	UserFollows int
	// IdleTimeout closes a keep-alive connection idle this long (default
	// 5s): an idle connection holds one of its user's slots.
	IdleTimeout time.Duration
	// Panics records a panic recovered while serving one request (the
	// request gets a 500; the server goes on). Default: its own, logging
	// to Log.
	Panics *guard.Panics
}

// Limits on what a local client can make the agent hold.
const (
	maxBody        = 16 << 10
	maxHeaderBytes = 16 << 10
	defaultConns   = 64
	defaultAdmin   = 16
	defaultPerUser = 8
	defaultFollows = 4
	defaultIdle    = 5 * time.Second
	// readTimeout bounds reading one request (headers and a ≤ 16 KiB body);
	// writeTimeout one write of an answer or of an event line, so a client
	// that stops reading cannot hold its slot forever.
	readTimeout  = 10 * time.Second
	writeTimeout = 10 * time.Second
)

// allowedHosts are the Host values the API answers. The client sends Host;
// curl --unix-socket sends "localhost".
var allowedHosts = []string{Host, "localhost"}

// Server is the control API server. New starts nothing; Serve blocks.
type Server struct {
	cfg Config
	mux *http.ServeMux

	followMu sync.Mutex
	follows  map[string]int // open follow streams by non-admin account
	userFoll int            // their total
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("control: nil backend")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = defaultConns
	}
	if cfg.AdminConns <= 0 {
		cfg.AdminConns = min(defaultAdmin, cfg.MaxConns/4)
	}
	if cfg.UserConns <= 0 {
		cfg.UserConns = defaultPerUser
	}
	if cfg.UserFollows <= 0 {
		cfg.UserFollows = defaultFollows
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = defaultIdle
	}
	if cfg.Panics == nil {
		cfg.Panics = guard.New(cfg.Log)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), follows: map[string]int{}}
	s.route("GET /v1/whoami", roleUser, s.whoami)
	s.route("GET /v1/status", roleUser, s.status)
	s.route("GET /v1/check", roleUser, s.check)
	s.route("GET /v1/events", roleUser, s.events)
	s.route("GET /v1/bypasses", roleUser, s.listBypasses)
	s.route("POST /v1/bypasses", roleUser, s.createBypass)
	s.route("DELETE /v1/bypasses", roleAdmin, s.revokeBypass)
	s.route("PUT /v1/mode", roleAdmin, s.setMode)
	s.route("DELETE /v1/mode", roleAdmin, s.clearMode)
	s.route("POST /v1/reload", roleAdmin, s.reload)
	s.route("POST /v1/telemetry/requeue", roleAdmin, s.requeue)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s; this agent serves the %s API", r.Method, r.URL.Path, APIVersion))
	})
	return s, nil
}

// Handler is the API with its guards, for tests and for Serve.
func (s *Server) Handler() http.Handler {
	return s.cfg.Panics.HTTP("control", http.HandlerFunc(s.serveHTTP))
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// A browser adds Origin (and often Referer) to every cross-site request,
	// and cannot omit them from a fetch: refusing them keeps web pages from
	// driving the API through any path to the socket (DNS rebinding, a proxy).
	if r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" {
		writeError(w, http.StatusForbidden, "requests with an Origin or Referer header are refused: the control API is for local programs, not web pages")
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	ok := false
	for _, a := range allowedHosts {
		ok = ok || strings.EqualFold(host, a)
	}
	if !ok {
		writeError(w, http.StatusForbidden, fmt.Sprintf("unexpected Host %q: the control API answers only Host %q", r.Host, Host))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	s.mux.ServeHTTP(w, r)
}

type role int

const (
	roleUser role = iota
	roleAdmin
)

func (s *Server) route(pattern string, need role, h func(http.ResponseWriter, *http.Request, Peer) error) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p := PeerFrom(r.Context())
		if need == roleAdmin && !p.Admin {
			writeError(w, http.StatusForbidden, "this needs root (Linux) or an Administrator (Windows); run it with sudo or from an elevated prompt")
			return
		}
		if err := h(w, r, p); err != nil {
			var he *httpError
			if errors.As(err, &he) {
				writeError(w, he.code, he.msg)
				return
			}
			s.cfg.Log.Warn("control API call failed", "path", r.URL.Path, "peer", p.User, "err", err)
			writeError(w, http.StatusInternalServerError, err.Error())
		}
	})
}

type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, err = w.Write(append(b, '\n'))
	return err
}

// readBody decodes one JSON object strictly (unknown fields, trailing data
// and oversized bodies are errors).
func readBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", maxBody)}
		}
		return badRequest("read request body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body is not the expected JSON object: %v", err)
	}
	if dec.More() {
		return badRequest("trailing data after the JSON object")
	}
	return nil
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, p Peer) error {
	return writeJSON(w, http.StatusOK, p)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, p Peer) error {
	return writeJSON(w, http.StatusOK, s.cfg.Backend.Status())
}

func (s *Server) check(w http.ResponseWriter, r *http.Request, p Peer) error {
	q := r.URL.Query().Get("q")
	if q == "" {
		return badRequest("missing ?q=NAME|URL|IP")
	}
	res, err := s.cfg.Backend.Check(q, p.User)
	if errors.Is(err, ErrBadQuery) {
		return badRequest("%v", err)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) listBypasses(w http.ResponseWriter, r *http.Request, p Peer) error {
	list := []BypassInfo{}
	for _, b := range s.cfg.Backend.ListBypasses() {
		// A user sees their own bypasses; the others' (and the device's)
		// are the admin's to see.
		if p.Admin || (p.User != "" && b.User == p.User) {
			list = append(list, b)
		}
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) createBypass(w http.ResponseWriter, r *http.Request, p Peer) error {
	var req BypassRequest
	if err := readBody(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return badRequest("missing \"name\"")
	}
	// The bypass is for the caller only: the user comes from the socket's
	// credentials, never from the request.
	e, err := s.cfg.Backend.CreateBypass(req.Name, p.User)
	switch {
	case errors.Is(err, bypass.ErrBlock):
		return &httpError{http.StatusForbidden, err.Error()}
	case errors.Is(err, bypass.ErrNotWarned):
		return &httpError{http.StatusConflict, err.Error()}
	case errors.Is(err, bypass.ErrFull):
		return &httpError{http.StatusInsufficientStorage, err.Error()}
	case err != nil:
		return err
	}
	return writeJSON(w, http.StatusCreated, e)
}

func (s *Server) revokeBypass(w http.ResponseWriter, r *http.Request, p Peer) error {
	name := r.URL.Query().Get("name")
	if name == "" {
		return badRequest("missing ?name=NAME")
	}
	n, err := s.cfg.Backend.RevokeBypass(name)
	if err != nil {
		return err
	}
	s.cfg.Log.Info("bypasses revoked through the control API", "name", name, "removed", n, "by", p.User)
	return writeJSON(w, http.StatusOK, RevokeResult{Name: name, Removed: n})
}

func (s *Server) setMode(w http.ResponseWriter, r *http.Request, p Peer) error {
	var req ModeRequest
	if err := readBody(r, &req); err != nil {
		return err
	}
	switch req.Mode {
	case "off", "audit", "block":
	default:
		return badRequest("mode %q is not one of off, audit, block", req.Mode)
	}
	if err := s.cfg.Backend.SetMode(req.Mode); err != nil {
		return err
	}
	s.cfg.Log.Info("mode override set through the control API", "mode", req.Mode, "by", p.User)
	return writeJSON(w, http.StatusOK, s.modeState())
}

func (s *Server) clearMode(w http.ResponseWriter, r *http.Request, p Peer) error {
	if err := s.cfg.Backend.SetMode(""); err != nil {
		return err
	}
	s.cfg.Log.Info("mode override cleared through the control API", "by", p.User)
	return writeJSON(w, http.StatusOK, s.modeState())
}

func (s *Server) modeState() ModeState {
	st := s.cfg.Backend.Status()
	return ModeState{Mode: st.Mode, Override: st.ModeOverride, SourceMode: st.SourceMode}
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request, p Peer) error {
	err := s.cfg.Backend.Reload(r.Context())
	if errors.Is(err, ErrNotSupported) {
		return &httpError{http.StatusNotImplemented, "reload is not available in this agent yet: " + err.Error()}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Reloaded bool `json:"reloaded"`
	}{true})
}

func (s *Server) requeue(w http.ResponseWriter, r *http.Request, p Peer) error {
	rq, ok := s.cfg.Backend.(Requeuer)
	if !ok {
		return &httpError{http.StatusNotImplemented, "this agent cannot requeue telemetry chunks"}
	}
	n, err := rq.RequeueTelemetry()
	if errors.Is(err, ErrNotSupported) {
		return &httpError{http.StatusNotImplemented, err.Error()}
	}
	if err != nil {
		return err
	}
	s.cfg.Log.Info("quarantined telemetry chunks requeued through the control API", "chunks", n, "by", p.User)
	return writeJSON(w, http.StatusOK, RequeueResult{Requeued: n})
}

// ParseSince reads ?since=: a duration back from now ("10m") or an RFC 3339
// time. "" means everything stored.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("since %q: a duration back from now must not be negative", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since %q is neither a duration like 10m nor an RFC 3339 time", s)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, p Peer) error {
	if s.cfg.Events == nil {
		return &httpError{http.StatusNotImplemented, "this agent keeps no event buffer"}
	}
	q := r.URL.Query()
	since, err := ParseSince(q.Get("since"), s.cfg.Now())
	if err != nil {
		return badRequest("%v", err)
	}
	follow, _ := strconv.ParseBool(q.Get("follow"))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	enc := json.NewEncoder(w)
	if !follow {
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for _, rec := range s.cfg.Events.Since(since) {
			if !visible(p, rec) {
				continue
			}
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := enc.Encode(rec); err != nil {
				return nil // the reader went away
			}
		}
		return nil
	}
	release, err := s.takeFollow(p)
	if err != nil {
		return err
	}
	defer release()
	// The stream outlives readTimeout: lift the read deadline, or the
	// server's background read would end the request when it passes.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	backlog, sub, err := s.cfg.Events.Follow(since)
	if err != nil {
		return err
	}
	defer sub.Close()
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// Each write has its own deadline: a follower that stops reading is cut
	// off instead of holding a slot (and a goroutine) forever.
	send := func(rec telemetry.Record) error {
		if !visible(p, rec) {
			return nil
		}
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		return enc.Encode(rec)
	}
	for _, rec := range backlog {
		if send(rec) != nil {
			return nil
		}
	}
	if rc.Flush() != nil {
		return nil
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case rec := <-sub.C:
			if send(rec) != nil || rc.Flush() != nil {
				return nil
			}
		case <-sub.Done:
			// Cut off: send what was queued, then say how much was lost.
			for {
				select {
				case rec := <-sub.C:
					if send(rec) != nil {
						return nil
					}
					continue
				default:
				}
				break
			}
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if n := sub.Dropped(); n > 0 {
				_ = enc.Encode(EventError{Error: "event reader too slow; the agent stopped following", Dropped: n})
			}
			_ = rc.Flush()
			return nil
		}
	}
}

// visible reports whether peer p may read rec: an admin reads every record,
// a user only the records of their own account. Records without an account
// (a DNS query from the system resolver, a connection nobody owns) are the
// admin's: they tell what other users do.
func visible(p Peer, rec telemetry.Record) bool {
	return p.Admin || (p.User != "" && rec.InitiatingProcessAccountName == p.User)
}

// peerKey names a peer's account for the per-user limits.
func accountKey(p Peer) string {
	if !p.Known {
		return "unknown"
	}
	return strconv.Itoa(p.UID)
}

// takeFollow counts a follow stream of p against its account's limit and the
// users' share of the ring's followers (admins keep the rest).
func (s *Server) takeFollow(p Peer) (func(), error) {
	if p.Admin {
		return func() {}, nil
	}
	k := accountKey(p)
	s.followMu.Lock()
	defer s.followMu.Unlock()
	if s.follows[k] >= s.cfg.UserFollows {
		return nil, &httpError{http.StatusTooManyRequests, fmt.Sprintf("user %s already follows events %d times, the most one user may; stop one 'netward events --follow' and retry", p.User, s.cfg.UserFollows)}
	}
	if s.userFoll >= maxFollowers-adminFollowers {
		return nil, errTooManyFollowers
	}
	s.follows[k]++
	s.userFoll++
	return func() {
		s.followMu.Lock()
		defer s.followMu.Unlock()
		if s.follows[k]--; s.follows[k] <= 0 {
			delete(s.follows, k)
		}
		s.userFoll--
	}, nil
}

// Serve serves the API on ln until ctx ends, then shuts down: follow streams
// end with ctx, other requests get a few seconds to finish. ln's connections
// should carry the peer identity (see Listen).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ln = &limitListener{Listener: ln, lim: newConnLimits(s.cfg), log: s.cfg.Log, refusing: make(chan struct{}, 16)}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       readTimeout,
		WriteTimeout:      0, // per write (writeJSON, events): follow streams are long
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext: func(c context.Context, conn net.Conn) context.Context {
			return withPeer(c, peerOf(conn))
		},
		ErrorLog: slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("control API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-errc
	return nil
}

type peerKey struct{}

func withPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the peer of the request's connection (zero Peer: unknown,
// not admin).
func PeerFrom(ctx context.Context) Peer {
	p, _ := ctx.Value(peerKey{}).(Peer)
	return p
}

// peerConn is a connection with its peer identity, read once at accept.
type peerConn struct {
	net.Conn
	peer Peer
	once sync.Once
	rel  func()
}

func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.rel)
	return err
}

func peerOf(c net.Conn) Peer {
	if pc, ok := c.(*peerConn); ok {
		return pc.peer
	}
	return Peer{}
}

// connLimits admits connections by the peer's account: admins up to
// MaxConns in all, non-admins up to MaxConns-AdminConns together and
// UserConns each. Accept never waits for a slot (a full listener must not
// keep root waiting behind a user): a connection over its limit is answered
// 503 and closed.
type connLimits struct {
	mu                  sync.Mutex
	max, users, perUser int
	total, userTotal    int
	byAccount           map[string]int
}

func newConnLimits(cfg Config) *connLimits {
	return &connLimits{max: cfg.MaxConns, users: max(cfg.MaxConns-cfg.AdminConns, 1), perUser: cfg.UserConns, byAccount: map[string]int{}}
}

// admit takes a slot for p, or says why not.
func (l *connLimits) admit(p Peer) (release func(), refused string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max {
		return nil, fmt.Sprintf("the control API serves its maximum of %d connections; retry in a moment", l.max)
	}
	k := ""
	if !p.Admin {
		k = accountKey(p)
		if l.byAccount[k] >= l.perUser {
			return nil, fmt.Sprintf("user %s already has %d connections to the control API, the most one user may; close some and retry", p.User, l.perUser)
		}
		if l.userTotal >= l.users {
			return nil, fmt.Sprintf("the control API serves its maximum of %d connections from users (the rest are kept for root/Administrators); retry in a moment", l.users)
		}
		l.byAccount[k]++
		l.userTotal++
	}
	l.total++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total--
		if !p.Admin {
			l.userTotal--
			if l.byAccount[k]--; l.byAccount[k] <= 0 {
				delete(l.byAccount, k)
			}
		}
	}, ""
}

// limitListener admits connections by account (connLimits) and attaches each
// one's peer identity.
type limitListener struct {
	net.Listener
	lim *connLimits
	log *slog.Logger
	// refusing bounds the connections being answered 503 at once.
	refusing chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		p := peerIdentity(c)
		rel, why := l.lim.admit(p)
		if why == "" {
			return &peerConn{Conn: c, peer: p, rel: rel}, nil
		}
		l.log.Debug("control API connection refused", "peer", p.User, "why", why)
		go l.refuse(c, why)
	}
}

// refuse answers a connection over its limit with a 503 and closes it. It
// reads the request first (briefly), so the client sees the answer rather
// than a reset while it writes.
func (l *limitListener) refuse(c net.Conn, why string) {
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close() // a flood: no answer, no goroutine
		return
	}
	defer func() { <-l.refusing }()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	_, _ = c.Read(buf)
	body, _ := json.Marshal(apiError{Error: why})
	body = append(body, '\n')
	_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}
