package feed

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/consoletest"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/indicators"
)

type fixture struct {
	st    *store.Store
	auth  *auth.Service
	pub   *Publisher
	srv   *httptest.Server
	token string
	key   ed25519.PrivateKey
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	st := consoletest.Store(t)
	cat, err := catalog.Parse("app\tdropbox\tCloud storage\tdropbox.com dropboxapi.com\napp\tslack\t\tslack.com\n")
	if err != nil {
		t.Fatal(err)
	}
	a := consoletest.Auth(st, auth.Config{})
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	p, err := New(Config{Store: st, Auth: a, Catalog: cat, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	tok := consoletest.Enroll(t, a, "dev1")
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return &fixture{st: st, auth: a, pub: p, srv: srv, token: tok, key: key}
}

func (f *fixture) get(t *testing.T, query, inm, agent string, gz bool) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+Path+query, nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	if agent != "" {
		req.Header.Set(indicators.AgentHeader, agent)
	}
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	} else {
		req.Header.Set("Accept-Encoding", "identity")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(zr)
	}
	return resp, b
}

func TestFeedServesSignedSequence(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.st.SetTag(ctx, "dropbox", indicators.TagUnsanctioned, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.st.UpsertIndicators(ctx, []store.Indicator{{Type: "DomainName", Value: "evil.example", Action: "Warn", Title: "custom"}}, "admin"); err != nil {
		t.Fatal(err)
	}
	st, err := f.pub.Publish(ctx)
	if err != nil || st.Sequence != 2 || st.Indicators != 3 {
		t.Fatalf("Publish = %+v, %v; want sequence 2 with 3 indicators", st, err)
	}
	resp, body := f.get(t, "", "", "version=1.2.3; os=linux/Debian 12; seq=1", true)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("GET = %d %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	pub := f.key.Public().(ed25519.PublicKey)
	if err := indicators.Verify(pub, body, resp.Header.Get(indicators.SignatureHeader)); err != nil {
		t.Fatalf("signature: %v", err)
	}
	set, err := indicators.ParseFeed("feed", body, indicators.Options{})
	if err != nil || len(set.Problems) != 0 || len(set.Indicators) != 3 {
		t.Fatalf("the agent's parser reads %d indicators, problems %v, err %v", len(set.Indicators), set.Problems, err)
	}
	if !strings.Contains(string(body), `"sequence":2`) || set.Settings.BypassDurationHours != 24 {
		t.Errorf("body lacks sequence or default settings: %s", body)
	}
	fr, err := indicators.ParseFreshness(resp.Header.Get(indicators.FreshnessHeader))
	if err != nil || fr.Seq != 2 || fr.Verify(pub, set.Version) != nil {
		t.Errorf("freshness %q: %+v %v", resp.Header.Get(indicators.FreshnessHeader), fr, err)
	}
	// Uncompressed answers carry the same signed bytes.
	_, plain := f.get(t, "", "", "", false)
	if !bytes.Equal(plain, body) {
		t.Error("identity and gzip bodies differ")
	}
	// 304 with freshness for the held version.
	resp, _ = f.get(t, "", resp.Header.Get("ETag"), "", true)
	if resp.StatusCode != http.StatusNotModified || resp.Header.Get(indicators.FreshnessHeader) == "" {
		t.Errorf("If-None-Match = %d, freshness %q", resp.StatusCode, resp.Header.Get(indicators.FreshnessHeader))
	}
	// The check-in is recorded.
	f.pub.FlushCheckins(ctx)
	d, _ := f.st.Device(ctx, "dev1")
	if !d.CheckinKnown || d.AgentVersion != "1.2.3" || d.OSVersion != "Debian 12" || d.SequenceHeld != 1 || d.LastSeenAt.IsZero() {
		t.Errorf("device after check-in: %+v", d)
	}
	// The same content republished makes no new sequence.
	if st2, _ := f.pub.Publish(ctx); st2.Sequence != 2 {
		t.Errorf("unchanged content moved the sequence to %d", st2.Sequence)
	}
}

func TestFeedLongPollAndRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	resp, body := f.get(t, "", "", "", true)
	set, _ := indicators.ParseFeed("f", body, indicators.Options{})
	etag := resp.Header.Get("ETag")
	type result struct {
		code int
		body []byte
		took time.Duration
	}
	poll := func() chan result {
		ch := make(chan result, 1)
		go func() {
			start := time.Now()
			r, b := f.get(t, "?wait=30", etag, "", true)
			ch <- result{r.StatusCode, b, time.Since(start)}
		}()
		return ch
	}
	ch := poll()
	time.Sleep(100 * time.Millisecond) // let the poll be held
	if err := f.st.SetTag(ctx, "slack", indicators.TagMonitored, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pub.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.code != 200 || !strings.Contains(string(r.body), `"Warn"`) || r.took > 5*time.Second {
		t.Fatalf("held poll = %d after %v: %s", r.code, r.took, r.body)
	}
	if strings.Contains(string(r.body), set.Version) {
		t.Error("new body carries the old version")
	}
	resp, _ = f.get(t, "", "", "", true)
	etag = resp.Header.Get("ETag")
	ch = poll()
	time.Sleep(100 * time.Millisecond)
	if err := f.st.RevokeDevice(ctx, "dev1", "admin"); err != nil {
		t.Fatal(err)
	}
	f.auth.ForgetDevice("dev1")
	f.pub.Kick("dev1")
	if r := <-ch; r.code != http.StatusForbidden {
		t.Errorf("held poll of a revoked device = %d, want 403", r.code)
	}
	if resp, _ := f.get(t, "", "", "", true); resp.StatusCode != http.StatusForbidden {
		t.Errorf("new poll of a revoked device = %d, want 403", resp.StatusCode)
	}
	f.token = "nwd_unknown"
	if resp, _ := f.get(t, "", "", "", true); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown token = %d, want 401", resp.StatusCode)
	}
}

// Two publishers on one store (replicas) serve identical bytes and
// signatures for one sequence, and one learns the other's sequence.
func TestFeedReplicasAgree(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cat, _ := catalog.Parse("app\tdropbox\tCloud storage\tdropbox.com dropboxapi.com\napp\tslack\t\tslack.com\n")
	other, err := New(Config{Store: f.st, Auth: f.auth, Catalog: cat, Key: f.key, RefreshInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- other.Run(rctx) }()
	defer func() { cancel(); <-done }()
	_ = f.st.SetTag(ctx, "dropbox", indicators.TagMonitored, "admin")
	st, _ := f.pub.Publish(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for other.Status().Sequence != st.Sequence && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	a, b := f.pub.cur.Load(), other.cur.Load()
	if a.seq != b.seq || !bytes.Equal(a.body, b.body) || a.sig != b.sig {
		t.Errorf("replicas disagree: seq %d/%d, same body %v, same signature %v", a.seq, b.seq, bytes.Equal(a.body, b.body), a.sig == b.sig)
	}
}

func TestCheckSettings(t *testing.T) {
	if p := CheckSettings(DefaultSettings()); len(p) != 0 {
		t.Errorf("default settings have problems: %v", p)
	}
	if p := CheckSettings(indicators.Settings{Mode: "loud", WarnRedirectURL: "javascript:alert(1)"}); len(p) < 2 {
		t.Errorf("bad settings gave %v, want a problem for mode and for the URL", p)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{"gzip": true, "br, gzip;q=0.5": true, "gzip;q=0": false, "identity": false, "": false, "GZIP": true} {
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", h, got, want)
		}
	}
}

// An expiring custom indicator leaves the feed at its expiry (CONTRACT §1):
// Run rebuilds without it, as a new sequence.
func TestFeedDropsExpiredIndicator(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Second)
	if _, _, err := f.st.UpsertIndicators(ctx, []store.Indicator{{Type: "DomainName", Value: "soon.example", Action: "Block", ExpirationTime: exp}}, "admin"); err != nil {
		t.Fatal(err)
	}
	st, _ := f.pub.Publish(ctx)
	if st.Indicators != 1 {
		t.Fatalf("before expiry: %+v", st)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- f.pub.Run(rctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for f.pub.Status().Indicators != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := f.pub.Status(); got.Indicators != 0 || got.Sequence != st.Sequence+1 {
		t.Errorf("after expiry: %+v, want sequence %d without the indicator", got, st.Sequence+1)
	}
}
