package feed

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/indicators"
)

// Path is where the console serves the feed (CONTRACT §5 example URL).
const Path = "/v1/indicators"

// ServeHTTP answers GET /v1/indicators for enrolled devices: 200 with the
// signed body (gzip when accepted), 304 when If-None-Match names the
// current version, and long polls (?wait=SECONDS) held until a new
// sequence is loaded. Every answer carries Netward-Freshness; every request
// is the device's check-in.
func (p *Publisher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	dev, err := p.cfg.Auth.Device(r.Context(), auth.BearerToken(r))
	if !deviceOK(w, err) {
		return
	}
	p.checkin(dev.ID, r)
	timer, stop, err := indicators.LongPollTimer(r, p.cfg.MaxWait)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer stop()
	inm := r.Header.Get("If-None-Match")
	var held *waiter
	var kicked chan struct{}
	for {
		cur, changed := p.current()
		if cur != nil && !indicators.ETagMatches(inm, cur.version) {
			p.send(w, r, cur)
			return
		}
		if timer == nil {
			if cur == nil {
				w.Header().Set("Retry-After", "5")
				http.Error(w, "no indicator set is published yet; retry later", http.StatusServiceUnavailable)
				return
			}
			h := w.Header()
			h.Set("ETag", cur.etag)
			h.Set(indicators.FreshnessHeader, cur.fresh)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if held == nil {
			if held, err = p.addWaiter(dev.ID); err != nil {
				w.Header().Set("Retry-After", strconv.Itoa(30+rand.IntN(30)))
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			kicked = held.ch
			defer p.removeWaiter(dev.ID, held)
		}
		select {
		case <-changed:
		case <-timer:
			timer = nil
		case <-kicked:
			if p.isSuperseded(held) {
				// The device opened a newer poll: answer this one now (304
				// or the new document) rather than hold both.
				timer = nil
				kicked = nil
				continue
			}
			_, err := p.cfg.Auth.Device(r.Context(), auth.BearerToken(r))
			if !deviceOK(w, err) {
				return
			}
			held, kicked = nil, nil
		case <-r.Context().Done():
			w.Header().Set("Retry-After", "5")
			http.Error(w, "the console is shutting down; retry later", http.StatusServiceUnavailable)
			return
		}
	}
}

// deviceOK answers a failed device authentication and reports whether the
// request may go on.
func deviceOK(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, auth.ErrRevoked):
		http.Error(w, err.Error(), http.StatusForbidden)
	case errors.Is(err, auth.ErrBadDeviceToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="netward"`)
		http.Error(w, err.Error(), http.StatusUnauthorized)
	default:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "device check failed; retry later", http.StatusServiceUnavailable)
	}
	return false
}

func (p *Publisher) send(w http.ResponseWriter, r *http.Request, cur *published) {
	h := w.Header()
	h.Set("ETag", cur.etag)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept-Encoding")
	h.Set(indicators.SignatureHeader, cur.sig)
	h.Set(indicators.FreshnessHeader, cur.fresh)
	body := cur.body
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = cur.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	p.served.Add(1)
}

// checkin records the Netward-Agent header (CONTRACT §5); without one (an
// older agent) only last-seen is known.
func (p *Publisher) checkin(id string, r *http.Request) {
	c := store.Checkin{DeviceID: id, At: p.now()}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		c.Address = host
	}
	if h := r.Header.Get(indicators.AgentHeader); h != "" {
		if a, err := indicators.ParseAgentInfo(h); err == nil {
			c.Known, c.AgentVersion, c.OSPlatform, c.OSVer = true, a.Version, a.Platform, a.OSVersion
			c.Sequence = int64(min(a.Seq, 1<<62))
		}
	}
	p.checkins.add(c)
}

// acceptsGzip reads Accept-Encoding (RFC 9110 §12.5.3): gzip listed
// without q=0.
func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
