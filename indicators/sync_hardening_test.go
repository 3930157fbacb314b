package indicators

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
)

// TestSyncUnsignedRefusedBeforeBody: with a public key, a 200 without a
// signature header is refused on the header, without reading the body
// (issue 20 #5: a 256 MiB unsigned body was read whole, 94 → 594 MB RSS,
// before the signature check refused it).
func TestSyncUnsignedRefusedBeforeBody(t *testing.T) {
	pub, _ := testKey(t)
	var written atomic.Int64
	const offered = 100 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		block := bytes.Repeat([]byte(" "), 64<<10)
		for written.Load() < offered {
			n, err := w.Write(block)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	s, err := NewSync(SyncConfig{Source: srv.URL + "/v1/indicators", PublicKey: pub,
		Apply: func(Update) { t.Error("an unsigned body was applied") }, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	e2e.WaitFor(t, "the refusal", waitLimit, func() bool { return strings.Contains(s.Status().LastError, "no Netward-Signature header") })
	if !strings.Contains(s.Status().LastError, ErrSignature.Error()) {
		t.Errorf("lastError = %q, want the signature error", s.Status().LastError)
	}
	// What the server could push into socket buffers before the agent hung
	// up, not the 100 MiB it offered.
	if n := written.Load(); n > 16<<20 {
		t.Errorf("the server wrote %d MiB of an unsigned body before the refusal; want it refused on the header", n>>20)
	}
}

// TestSyncHonoursProxyEnv: the feed client goes through HTTP_PROXY like the
// telemetry uploader (issue 20 #7; before, the feed ignored the proxy
// variables and dialed the feed's host itself).
func TestSyncHonoursProxyEnv(t *testing.T) {
	f := newFeed(t, nil)
	f.publish(t, "1", "proxied.test")
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy gets the absolute URI of a name only it resolves.
		if r.URL.Host != "feed.example" {
			http.Error(w, "unexpected host "+r.URL.Host, http.StatusBadGateway)
			return
		}
		proxied.Add(1)
		f.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	ups := make(updates, 4)
	s, err := NewSync(SyncConfig{Source: "http://feed.example/v1/indicators", Token: "device-token", Apply: ups.apply,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	up := ups.next(t)
	if up.Version != "1" || proxied.Load() == 0 {
		t.Errorf("update %q through %d proxied requests, want version 1 through the proxy", up.Version, proxied.Load())
	}
}
