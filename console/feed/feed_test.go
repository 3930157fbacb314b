package feed

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// One device token cannot hold more than MaxPollsPerDevice long polls (a
// newer one answers the oldest now), and past MaxHeldPolls a poll gets 503
// with Retry-After (review #7).
func TestFeedPollCaps(t *testing.T) {
	f := newFixture(t)
	f.pub.cfg.MaxPollsPerDevice, f.pub.cfg.MaxHeldPolls = 2, 3
	resp, _ := f.get(t, "", "", "", true)
	etag := resp.Header.Get("ETag")
	codes := make(chan int, 8)
	poll := func(token string) {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, f.srv.URL+Path+"?wait=30", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("If-None-Match", etag)
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			r.Body.Close()
			codes <- r.StatusCode
		}()
	}
	waitHeld := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for f.pub.Status().HeldPolls != n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := f.pub.Status().HeldPolls; got != n {
			t.Fatalf("held polls = %d, want %d", got, n)
		}
	}
	poll(f.token)
	waitHeld(1)
	poll(f.token)
	waitHeld(2)
	poll(f.token) // the third of one device: the first is answered now
	select {
	case c := <-codes:
		if c != http.StatusNotModified {
			t.Errorf("superseded poll = %d, want 304", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a device holds three polls; the oldest was not answered")
	}
	waitHeld(2)
	tok2 := consoletest.Enroll(t, f.auth, "dev2")
	poll(tok2)
	waitHeld(3)
	tok3 := consoletest.Enroll(t, f.auth, "dev3")
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+Path+"?wait=30", nil)
	req.Header.Set("Authorization", "Bearer "+tok3)
	req.Header.Set("If-None-Match", etag)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); r.StatusCode != http.StatusServiceUnavailable || ra < 30 {
		t.Errorf("poll past maxHeldPolls = %d Retry-After %q, want 503 with a delay", r.StatusCode, r.Header.Get("Retry-After"))
	}
	// A poll that does not wait is still answered.
	if resp, _ := f.get(t, "", etag, "", true); resp.StatusCode != http.StatusNotModified {
		t.Errorf("plain request while full = %d, want 304", resp.StatusCode)
	}
	if st := f.pub.Status(); st.PollsSuperseded != 1 || st.PollsRefused != 1 {
		t.Errorf("status = %+v", st)
	}
	for _, id := range []string{"dev1", "dev2"} { // end the held polls now
		_ = f.st.RevokeDevice(context.Background(), id, "admin")
		f.auth.ForgetDevice(id)
		f.pub.Kick(id)
	}
	waitHeld(0)
}

// A console restored from a backup (its sequence below what the devices
// hold) publishes above the held sequence on their next check-in, so the
// fleet takes new policy again (review #2, docs/feed.md).
func TestFeedContinuesAboveDevices(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if st := f.pub.Status(); st.Sequence != 1 {
		t.Fatalf("sequence = %d", st.Sequence)
	}
	// The device holds 5 (the console before the restore published 5).
	if resp, _ := f.get(t, "", "", "version=1.0; os=linux/test; seq=5", true); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	f.pub.FlushCheckins(ctx)
	if st := f.pub.Status(); st.Sequence != 6 {
		t.Fatalf("after a check-in holding 5: sequence %d, want 6", st.Sequence)
	}
	resp, body := f.get(t, "", "", "", true)
	set, err := indicators.ParseFeed("f", body, indicators.Options{})
	if err != nil || resp.StatusCode != 200 || set.Sequence != 6 {
		t.Errorf("served %d, sequence %d, %v", resp.StatusCode, set.Sequence, err)
	}
	// A new change goes above too.
	_ = f.st.SetTag(ctx, "slack", indicators.TagUnsanctioned, "admin")
	if st, _ := f.pub.Publish(ctx); st.Sequence != 7 {
		t.Errorf("next change = sequence %d, want 7", st.Sequence)
	}
}

// Rotating the signing key signs the current document with the new key at
// once, and another replica (LoadKey) takes it up (review #2).
func TestFeedRotateKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := SigningKey(ctx, f.st); err != nil {
		t.Fatal(err)
	}
	old := f.pub.PublicKey()
	other, err := New(Config{Store: f.st, Auth: f.auth, Catalog: f.pub.cfg.Catalog, Key: f.key, RefreshInterval: 10 * time.Millisecond,
		LoadKey: func(ctx context.Context) (ed25519.PrivateKey, error) { return SigningKey(ctx, f.st) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	pub, err := f.pub.RotateKey(ctx)
	if err != nil || pub.Equal(old) || !f.pub.PublicKey().Equal(pub) {
		t.Fatalf("RotateKey = %x, %v (old %x)", pub, err, old)
	}
	resp, body := f.get(t, "", "", "", false)
	sig, _ := strings.CutPrefix(resp.Header.Get(indicators.SignatureHeader), "ed25519=")
	raw, _ := base64.StdEncoding.DecodeString(sig)
	if !ed25519.Verify(pub, body, raw) {
		t.Error("the body is not signed with the new key")
	}
	fr, err := indicators.ParseFreshness(resp.Header.Get(indicators.FreshnessHeader))
	if err != nil || fr.Verify(pub, resp.Header.Get("ETag")[1:len(resp.Header.Get("ETag"))-1]) != nil {
		t.Errorf("freshness not signed with the new key: %v", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- other.Run(rctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for !other.PublicKey().Equal(pub) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !other.PublicKey().Equal(pub) {
		t.Error("the other replica did not take up the rotated key")
	}
}
