package indicators

import (
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/e2e"
)

func testKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "netward test key seed, not secret")
	priv := ed25519.NewKeyFromSeed(seed)
	return priv.Public().(ed25519.PublicKey), priv
}

func doc(version string, values ...string) Document {
	d := Document{Version: version, Settings: Settings{Mode: "block", BypassDurationHours: 12}}
	for i, v := range values {
		d.Indicators = append(d.Indicators, DocIndicator{ID: string(rune('a' + i)), IndicatorValue: v, IndicatorType: "DomainName", Action: "Block"})
	}
	return d
}

func get(t *testing.T, url, token, inm string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestHandler(t *testing.T) {
	pub, priv := testKey(t)
	h := NewHandler(HandlerConfig{Token: "tok", Key: priv})
	srv := httptest.NewServer(h)
	defer srv.Close()

	if resp, _ := get(t, srv.URL, "tok", ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("before publish: %d, want 503", resp.StatusCode)
	}
	if err := h.SetDocument(doc("1", "blocked.example")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{{"no token", "", 401}, {"wrong token", "nope", 401}, {"token", "tok", 200}} {
		if resp, _ := get(t, srv.URL, tc.token, ""); resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	resp, body := get(t, srv.URL, "tok", "")
	if resp.Header.Get("ETag") != `"1"` {
		t.Errorf("ETag = %q", resp.Header.Get("ETag"))
	}
	if err := Verify(pub, body, resp.Header.Get(SignatureHeader)); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	tampered := []byte(strings.Replace(string(body), "blocked.example", "allowed.example", 1))
	if err := Verify(pub, tampered, resp.Header.Get(SignatureHeader)); err == nil {
		t.Error("tampered body verifies")
	}
	s, err := ParseFeed("served", body, Options{})
	if err != nil || s.Version != "1" || len(s.Indicators) != 1 || s.Settings.BypassDurationHours != 12 {
		t.Fatalf("served body: %v %+v", err, s)
	}
	if resp, b := get(t, srv.URL, "tok", `"1"`); resp.StatusCode != http.StatusNotModified || len(b) != 0 {
		t.Errorf("If-None-Match current: %d, want 304", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL, "tok", `W/"0", "1"`); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match list: %d, want 304", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL, "tok", `"0"`); resp.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match old: %d, want 200", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"?wait=x", "tok", ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad wait: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, nil)
	req.Header.Set("Authorization", "Bearer tok")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v", resp, err)
	}

	// Long poll: held while unchanged, answered as soon as a set is published.
	type result struct {
		status int
		body   []byte
	}
	done := make(chan result, 1)
	go func() {
		resp, b := get(t, srv.URL+"?wait=60", "tok", `"1"`)
		done <- result{resp.StatusCode, b}
	}()
	select {
	case r := <-done:
		t.Fatalf("long poll returned %d before any change", r.status)
	case <-time.After(100 * time.Millisecond):
	}
	if err := h.SetDocument(doc("2", "blocked.example", "new.example")); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.status != 200 || !strings.Contains(string(r.body), "new.example") {
		t.Errorf("long poll after change: %d %s", r.status, r.body)
	}
	// A long poll that times out unchanged answers 304.
	h2 := NewHandler(HandlerConfig{MaxWait: 50 * time.Millisecond})
	_ = h2.SetDocument(doc("7"))
	srv2 := httptest.NewServer(h2)
	defer srv2.Close()
	if resp, _ := get(t, srv2.URL+"?wait=60", "", `"7"`); resp.StatusCode != http.StatusNotModified {
		t.Errorf("long poll timeout: %d, want 304", resp.StatusCode)
	}
	if resp, _ := get(t, srv2.URL, "", ""); resp.Header.Get(SignatureHeader) != "" {
		t.Error("unsigned handler sent a signature")
	}
}

func TestDocumentVersionFromContent(t *testing.T) {
	a, _ := doc("", "a.example").Marshal()
	b, _ := doc("", "a.example").Marshal()
	c, _ := doc("", "b.example").Marshal()
	sa, _ := ParseFeed("a", a, Options{})
	sb, _ := ParseFeed("b", b, Options{})
	sc, _ := ParseFeed("c", c, Options{})
	if sa.Version == "" || sa.Version != sb.Version || sa.Version == sc.Version {
		t.Errorf("versions %q %q %q: want equal for equal content, different otherwise", sa.Version, sb.Version, sc.Version)
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"mde-import.csv", "catalog-excerpt.json", "tags.json", "stevenblack-excerpt.list"} {
		if err := os.WriteFile(filepath.Join(dir, n), readTestdata(t, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "settings.json"), []byte(`{"mode":"audit","warnRedirectUrl":"https://intranet.example/apps"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d, problems, err := LoadDir(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Settings.Mode != "audit" || d.Settings.WarnRedirectURL == "" {
		t.Errorf("settings = %+v", d.Settings)
	}
	if len(problems) != 2 {
		t.Errorf("problems = %v", problems)
	}
	body, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseFeed("dir", body, Options{})
	if err != nil || len(s.Problems) != 0 {
		t.Fatalf("round trip: %v %v", err, problemStrings(s))
	}
	p, _, err := s.Compile(testNow)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]filter.Action{"blocked.example": filter.Block, "www.dropbox.com": filter.Warn, "2no.co": filter.Block, "unlisted.example": 0} {
		if got := p.MatchName(name).Action; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if m := p.MatchName("dropbox.com"); m.Rule == nil || m.Rule.Application() != "dropbox" {
		t.Errorf("application lost in the round trip: %+v", m.Rule)
	}
}

// A long poll cut by the server's shutdown (the request context ends) is
// answered 503, never an empty 200.
func TestHandlerLongPollCutByShutdown(t *testing.T) {
	h := NewHandler(HandlerConfig{})
	if err := h.SetDocument(doc("1", "a.test")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/indicators?wait=30", nil)
	req.Header.Set("If-None-Match", `"1"`)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { h.ServeHTTP(rec, req); close(done) }()
	cancel()
	<-done
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
}

// TestHandlerSequenceAndFreshness: the handler refuses to publish a lower
// sequence (or the same one with other content), sends a Netward-Freshness
// proof with every 200 and 304, re-signs it once it is FreshnessEvery old,
// and hands each request's check-in to OnCheckIn.
func TestHandlerSequenceAndFreshness(t *testing.T) {
	pub, priv := testKey(t)
	clk := e2e.NewClock(freshStart)
	var checkIns []AgentInfo
	h := NewHandler(HandlerConfig{Key: priv, Now: clk.Now, OnCheckIn: func(_ *http.Request, a AgentInfo) { checkIns = append(checkIns, a) }})
	if err := h.SetDocument(seqDoc(5, freshStart, "a.test")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d    Document
		want string
	}{
		{seqDoc(4, freshStart, "b.test"), "lower than the 5 published"},
		{seqDoc(5, freshStart, "b.test"), "already published with version"},
		{doc("", "c.test"), "lower than the 5 published"}, // unsequenced after sequenced
	} {
		if err := h.SetDocument(tc.d); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetDocument(seq %d) = %v, want %q", tc.d.Sequence, err, tc.want)
		}
	}
	if err := h.SetDocument(seqDoc(5, freshStart, "a.test")); err != nil || h.Sequence() != 5 {
		t.Errorf("republishing the same set: %v", err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	proof := func(inm string) (int, Freshness) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set(AgentHeader, "version=1.0; os=linux/Debian 12; seq=4")
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		f, err := ParseFreshness(resp.Header.Get(FreshnessHeader))
		if err != nil {
			t.Fatalf("%d without a proof: %v", resp.StatusCode, err)
		}
		if err := f.Verify(pub, h.Version()); err != nil || f.Seq != 5 {
			t.Fatalf("proof %+v: %v", f, err)
		}
		return resp.StatusCode, f
	}
	code, f1 := proof("")
	if code != 200 || !f1.At.Equal(freshStart) {
		t.Errorf("200: %d %v", code, f1.At)
	}
	clk.Add(30 * time.Minute)
	if code, f := proof(`"` + h.Version() + `"`); code != 304 || !f.At.Equal(freshStart) {
		t.Errorf("304 within the hour: %d at %v, want the same proof", code, f.At)
	}
	clk.Add(31 * time.Minute)
	if _, f := proof(`"` + h.Version() + `"`); !f.At.Equal(freshStart.Add(61 * time.Minute)) {
		t.Errorf("after an hour the proof is at %v, want re-signed now", f.At)
	}
	if len(checkIns) != 3 || checkIns[0] != (AgentInfo{Version: "1.0", Platform: "linux", OSVersion: "Debian 12", Seq: 4}) {
		t.Errorf("check-ins = %+v", checkIns)
	}
	// Without a key there is nothing to prove with: no header.
	nh := NewHandler(HandlerConfig{})
	_ = nh.SetDocument(seqDoc(1, freshStart, "a.test"))
	rec := httptest.NewRecorder()
	nh.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Header().Get(FreshnessHeader) != "" {
		t.Error("an unsigned feed sent a freshness proof")
	}
}

// TestParseFeedSequence: the sequence is read as a non-negative integer; a
// document whose sequence cannot be read is not a usable feed document.
func TestParseFeedSequence(t *testing.T) {
	for _, tc := range []struct {
		body string
		seq  uint64
		bad  bool
	}{
		{`{"version":"1","sequence":42,"indicators":[]}`, 42, false},
		{`{"version":"1","sequence":null,"indicators":[]}`, 0, false},
		{`{"version":"1","indicators":[]}`, 0, false},
		{`{"version":"1","sequence":18446744073709551615,"indicators":[]}`, 1<<64 - 1, false},
		{`{"version":"1","sequence":-1,"indicators":[]}`, 0, true},
		{`{"version":"1","sequence":1.5,"indicators":[]}`, 0, true},
		{`{"version":"1","sequence":true,"indicators":[]}`, 0, true},
		{`{"version":"1","sequence":18446744073709551616,"indicators":[]}`, 0, true},
	} {
		s, err := ParseFeed("f", []byte(tc.body), Options{})
		if tc.bad {
			if err == nil {
				t.Errorf("ParseFeed(%s) accepted the sequence", tc.body)
			}
			continue
		}
		if err != nil || s.Sequence != tc.seq {
			t.Errorf("ParseFeed(%s) = %v, %v; want sequence %d", tc.body, s, err, tc.seq)
		}
	}
}
