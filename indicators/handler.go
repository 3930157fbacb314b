package indicators

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SignatureHeader carries "ed25519=<base64 signature of the exact body>".
const SignatureHeader = "Netward-Signature"

// HandlerConfig configures the feed server.
type HandlerConfig struct {
	// Token, when set, is the bearer token every request must carry.
	Token string
	// Key, when set, signs every body (CONTRACT §5 Netward-Signature).
	Key ed25519.PrivateKey
	// MaxWait caps a long poll's ?wait (default 5 minutes).
	MaxWait time.Duration
	// FreshnessEvery is how often the Netward-Freshness proof sent with
	// every 200 and 304 is signed anew (default DefaultFreshnessEvery): an
	// agent reads the proof's time as how current its set is, so it must
	// never be older than this.
	FreshnessEvery time.Duration
	// OnCheckIn, when set, receives every request's parsed Netward-Agent
	// header (CONTRACT §5 check-in). It must not block.
	OnCheckIn func(r *http.Request, a AgentInfo)
	Log       *slog.Logger
	Now       func() time.Time
}

// DefaultFreshnessEvery is HandlerConfig.FreshnessEvery's default: CONTRACT
// §5 asks for a proof re-signed at least hourly.
const DefaultFreshnessEvery = time.Hour

// Handler serves an indicator feed (CONTRACT §5): the current body with its
// version as ETag, 304 for a matching If-None-Match, and long polls
// (?wait=SECONDS) that return as soon as a new set is published.
type Handler struct {
	cfg HandlerConfig
	log *slog.Logger

	mu      sync.Mutex
	cur     *published
	changed chan struct{} // closed and replaced on every publish
}

type published struct {
	body    []byte
	version string
	seq     uint64
	sig     string
	// fresh is the Netward-Freshness value for (seq, version), signed at
	// freshAt; guarded by Handler.mu.
	fresh   string
	freshAt time.Time
}

// NewHandler returns a handler with no set published: requests get 503
// until SetDocument or SetBody is called (long polls wait for it).
func NewHandler(cfg HandlerConfig) *Handler {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 5 * time.Minute
	}
	if cfg.FreshnessEvery <= 0 {
		cfg.FreshnessEvery = DefaultFreshnessEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, log: log, changed: make(chan struct{})}
}

// SetDocument publishes d (its version is derived from its content when
// empty). Waiting long polls return at once.
func (h *Handler) SetDocument(d Document) error {
	b, err := d.Marshal()
	if err != nil {
		return err
	}
	return h.SetBody(b)
}

// SetBody publishes a feed body as is. It must be a feed document with a
// version; a body with the version and sequence already published is a
// no-op. Its sequence must not go back (CONTRACT §5): lower than the one
// published, or equal with another version, is an error — agents would
// refuse it as a rollback.
func (h *Handler) SetBody(body []byte) error {
	s, err := ParseFeed("body", body, Options{AllowDefaultRoute: true})
	if err != nil {
		return err
	}
	if s.Version == "" {
		return errors.New("feed document has no version; clients need one for If-None-Match")
	}
	p := &published{body: body, version: s.Version, seq: s.Sequence}
	if h.cfg.Key != nil {
		p.sig = "ed25519=" + base64.StdEncoding.EncodeToString(ed25519.Sign(h.cfg.Key, body))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.cur; c != nil {
		switch {
		case p.seq < c.seq:
			return fmt.Errorf("feed document sequence %d is lower than the %d published; agents would refuse it as a rollback", p.seq, c.seq)
		case p.seq == c.seq && p.seq > 0 && p.version != c.version:
			return fmt.Errorf("feed document sequence %d is already published with version %s; a new version needs a higher sequence", p.seq, c.version)
		case p.seq == c.seq && p.version == c.version:
			return nil
		}
	}
	h.cur = p
	close(h.changed)
	h.changed = make(chan struct{})
	h.log.Info("indicator set published", "version", p.version, "sequence", p.seq, "bytes", len(body), "indicators", len(s.Indicators))
	return nil
}

// Sequence is the published sequence (0 before the first, or unsequenced).
func (h *Handler) Sequence() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cur == nil {
		return 0
	}
	return h.cur.seq
}

// freshness returns the Netward-Freshness value for p, signing it anew when
// the one held is FreshnessEvery old; "" without a key.
func (h *Handler) freshness(p *published) string {
	if h.cfg.Key == nil {
		return ""
	}
	now := h.cfg.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.fresh == "" || now.Sub(p.freshAt) >= h.cfg.FreshnessEvery || now.Before(p.freshAt) {
		f := SignFreshness(h.cfg.Key, p.seq, p.version, now)
		p.fresh, p.freshAt = f.String(), f.At
	}
	return p.fresh
}

// Version is the published version ("" before the first).
func (h *Handler) Version() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cur == nil {
		return ""
	}
	return h.cur.version
}

func (h *Handler) current() (*published, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur, h.changed
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	if h.cfg.Token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="netward"`)
			http.Error(w, "missing or wrong device token", http.StatusUnauthorized)
			return
		}
	}
	timer, stop, err := LongPollTimer(r, h.cfg.MaxWait)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer stop()
	if h.cfg.OnCheckIn != nil {
		if v := r.Header.Get(AgentHeader); v != "" {
			if a, err := ParseAgentInfo(v); err == nil {
				h.cfg.OnCheckIn(r, a)
			}
		}
	}
	inm := r.Header.Get("If-None-Match")
	for {
		cur, changed := h.current()
		if cur != nil && !etagMatches(inm, cur.version) {
			hd := w.Header()
			hd.Set("ETag", strconv.Quote(cur.version))
			hd.Set("Content-Type", "application/json")
			hd.Set("Cache-Control", "no-cache")
			if cur.sig != "" {
				hd.Set(SignatureHeader, cur.sig)
			}
			if f := h.freshness(cur); f != "" {
				hd.Set(FreshnessHeader, f)
			}
			hd.Set("Content-Length", strconv.Itoa(len(cur.body)))
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				_, _ = w.Write(cur.body)
			}
			return
		}
		if timer == nil {
			if cur == nil {
				http.Error(w, "no indicator set is published yet; retry later", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("ETag", strconv.Quote(cur.version))
			if f := h.freshness(cur); f != "" {
				w.Header().Set(FreshnessHeader, f)
			}
			w.WriteHeader(http.StatusNotModified)
			return
		}
		select {
		case <-changed:
		case <-timer:
			timer = nil
		case <-r.Context().Done():
			// The client left (nothing reaches it), or the server is shutting
			// down: say so, rather than an empty 200 the client would have to
			// tell from a bad body.
			http.Error(w, "the feed server is shutting down; retry later", http.StatusServiceUnavailable)
			return
		}
	}
}

// etagMatches reports whether an If-None-Match header names version
// (RFC 9110 §13.1.2: a list of entity tags, weak comparison, or "*").
func etagMatches(header, version string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		t = strings.TrimPrefix(t, "W/")
		if uq, err := strconv.Unquote(t); err == nil {
			t = uq
		}
		if t == version {
			return true
		}
	}
	return false
}

// ParseSignature reads a Netward-Signature header value.
func ParseSignature(h string) ([]byte, error) {
	v, ok := strings.CutPrefix(strings.TrimSpace(h), "ed25519=")
	if !ok {
		return nil, fmt.Errorf("signature header %q is not \"ed25519=<base64>\"", h)
	}
	sig, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("signature header is not a base64 Ed25519 signature")
	}
	return sig, nil
}

// Verify checks a body against its signature header with pub.
func Verify(pub ed25519.PublicKey, body []byte, header string) error {
	if header == "" {
		return errors.New("body is unsigned but a public key is configured; refusing it")
	}
	sig, err := ParseSignature(header)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, body, sig) {
		return errors.New("signature does not match the body (tampered, or signed with another key)")
	}
	return nil
}
