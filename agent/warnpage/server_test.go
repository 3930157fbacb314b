package warnpage

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/guard"
)

// policy is a small real decision source: a compiled filter.Policy plus a set
// of bypassed names, decided with the shared filter.Decide.
type policy struct {
	mu       sync.Mutex
	p        *filter.Policy
	bypassed map[string]bool
	calls    int
	user     string
}

func newPolicy(t testing.TB) *policy {
	p, err := filter.Compile([]filter.Rule{
		{Value: "warned.test", Type: filter.TypeDomain, Action: filter.Warn, ID: "7", Meta: &filter.RuleMeta{Title: "Monitored app: Demo", Application: "Demo"}},
		{Value: "other.test", Type: filter.TypeDomain, Action: filter.Warn, ID: "8", Meta: &filter.RuleMeta{Title: "Other"}},
		{Value: "blocked.test", Type: filter.TypeDomain, Action: filter.Block, ID: "9", Meta: &filter.RuleMeta{Title: "Unsanctioned"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &policy{p: p, bypassed: map[string]bool{}}
}

func (p *policy) decide(name string) filter.Decision {
	p.mu.Lock()
	defer p.mu.Unlock()
	return filter.Decide(p.p.MatchName(name), filter.Settings{}, func(m filter.Match) (time.Time, bool) {
		return time.Time{}, p.bypassed[m.Rule.Value]
	})
}

func (p *policy) cont(name, user string) (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.p.MatchName(name)
	if m.Action != filter.Warn {
		return time.Time{}, errors.New("not warned")
	}
	p.calls++
	p.user = user
	p.bypassed[m.Rule.Value] = true
	return time.Now().Add(time.Hour), nil
}

func (p *policy) continues() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

var testKey = bytes.Repeat([]byte{7}, 32)

func newServer(t testing.TB, p *policy, now func() time.Time) *Server {
	s, err := New(Config{Decide: p.decide, Continue: p.cont, Key: testKey, Now: now,
		Links: func() Links {
			return Links{Warn: "https://intranet.example/apps", Block: "javascript:alert(1)"}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var tokenRe = regexp.MustCompile(`name="token" value="([^"]+)"`)

// getWarn loads the warn page for host and returns the token and cookie.
func getWarn(t *testing.T, h http.Handler, host string) (string, *http.Cookie) {
	t.Helper()
	r := httptest.NewRequest("GET", "http://"+host+"/x?y=1", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("GET warn page: status %d", w.Code)
	}
	m := tokenRe.FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatalf("no token in page:\n%s", w.Body)
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 || cs[0].SameSite != http.SameSiteStrictMode || !cs[0].HttpOnly {
		t.Fatalf("cookie = %+v, want one HttpOnly SameSite=Strict cookie", cs)
	}
	return m[1], cs[0]
}

func TestPages(t *testing.T) {
	p := newPolicy(t)
	h := newServer(t, p, time.Now).Handler()
	tests := []struct {
		host     string
		code     int
		want     []string
		dontWant []string
	}{
		{"warned.test", 403, []string{"warned.test", "Demo", "Monitored app: Demo", "https://intranet.example/apps", "Continue to warned.test", "netward"}, []string{"<script"}},
		{"sub.warned.test:80", 403, []string{"sub.warned.test", "Continue"}, nil},
		{"blocked.test", 403, []string{"This site is blocked", "Unsanctioned"}, []string{"Continue", "javascript:", "<script"}},
		{"free.test", 200, []string{"Opening free.test", "not blocked now", `http-equiv="refresh"`, "<script nonce="}, []string{"You chose"}},
		{"bad_host!", 400, []string{"does not name a site"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://x/", nil)
			r.Host = tc.host
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			body := w.Body.String()
			if w.Code != tc.code {
				t.Errorf("status %d, want %d", w.Code, tc.code)
			}
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.dontWant {
				if strings.Contains(body, s) {
					t.Errorf("page contains %q", s)
				}
			}
			if strings.Contains(body, "http://") && strings.Contains(body, "src=") {
				t.Errorf("page loads an external resource")
			}
			if w.Header().Get("X-Frame-Options") != "DENY" || !strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Errorf("page can be framed: %v", w.Header())
			}
		})
	}
}

func TestContinueCSRF(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p := newPolicy(t)
	h := newServer(t, p, clock).Handler()
	tok, cookie := getWarn(t, h, "warned.test")
	otherTok, otherCookie := getWarn(t, h, "other.test")
	expiredTok := mintToken(testKey, "warned.test", cookie.Value, now.Add(-time.Second))
	forgedTok := mintToken(bytes.Repeat([]byte{8}, 32), "warned.test", cookie.Value, now.Add(time.Hour))

	post := func(token string, c *http.Cookie, hdr map[string]string) *httptest.ResponseRecorder {
		form := url.Values{"token": {token}, "path": {"/x?y=1"}}
		r := httptest.NewRequest("POST", "http://warned.test"+continuePath, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c != nil {
			r.AddCookie(c)
		}
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	same := map[string]string{"Origin": "http://warned.test"}
	refused := []struct {
		name   string
		token  string
		cookie *http.Cookie
		hdr    map[string]string
	}{
		{"missing token", "", cookie, same},
		{"malformed token", "!!!", cookie, same},
		{"token for another name", otherTok, otherCookie, same},
		{"token with another browser's cookie", tok, otherCookie, same},
		{"expired token", expiredTok, cookie, same},
		{"token under another key", forgedTok, cookie, same},
		{"no cookie", tok, nil, same},
		{"foreign Origin", tok, cookie, map[string]string{"Origin": "http://evil.example"}},
		{"null Origin", tok, cookie, map[string]string{"Origin": "null"}},
		{"https Origin for an http page", tok, cookie, map[string]string{"Origin": "https://warned.test"}},
		{"cross-site fetch metadata", tok, cookie, map[string]string{"Origin": "http://warned.test", "Sec-Fetch-Site": "cross-site"}},
		{"foreign Referer without Origin", tok, cookie, map[string]string{"Referer": "http://evil.example/x"}},
		{"neither Origin nor Referer", tok, cookie, nil},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			w := post(tc.token, tc.cookie, tc.hdr)
			if w.Code != http.StatusForbidden {
				t.Errorf("status %d, want 403", w.Code)
			}
			if n := p.continues(); n != 0 {
				t.Fatalf("a refused request created %d bypass(es)", n)
			}
		})
	}
	t.Run("GET has no side effect", func(t *testing.T) {
		for _, path := range []string{continuePath + "?token=" + tok + "&path=/", statusPath, "/x"} {
			r := httptest.NewRequest("GET", "http://warned.test"+path, nil)
			r.AddCookie(cookie)
			r.Header.Set("Origin", "http://warned.test")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if path == continuePath && w.Code != http.StatusMethodNotAllowed {
				t.Errorf("GET %s: status %d, want 405", path, w.Code)
			}
		}
		if n := p.continues(); n != 0 {
			t.Fatalf("GET created %d bypass(es)", n)
		}
	})
	t.Run("valid", func(t *testing.T) {
		w := post(tok, cookie, same)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/x?y=1" {
			t.Fatalf("status %d Location %q, want 303 /x?y=1\n%s", w.Code, w.Header().Get("Location"), w.Body)
		}
		if p.continues() != 1 {
			t.Fatalf("continues = %d, want 1", p.continues())
		}
		if d := p.decide("warned.test"); d.Verdict != filter.VerdictBypassed {
			t.Errorf("after Continue verdict %v, want bypassed", d.Verdict)
		}
	})
	t.Run("open redirect refused", func(t *testing.T) {
		tok2, c2 := getWarn(t, h, "other.test")
		form := url.Values{"token": {tok2}, "path": {"//evil.example/"}}
		r := httptest.NewRequest("POST", "http://other.test"+continuePath, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "http://other.test")
		r.AddCookie(c2)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
			t.Errorf("status %d Location %q, want 303 /", w.Code, w.Header().Get("Location"))
		}
	})
}

func TestContinueRefusesBlock(t *testing.T) {
	p := newPolicy(t)
	h := newServer(t, p, time.Now).Handler()
	// A token minted for a blocked name (as if the indicator turned from Warn
	// to Block after the page was shown) still creates nothing.
	nonce := "0123456789abcdef0123"
	tok := mintToken(testKey, "blocked.test", nonce, time.Now().Add(time.Hour))
	form := url.Values{"token": {tok}, "path": {"/"}}
	r := httptest.NewRequest("POST", "http://blocked.test"+continuePath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", "http://blocked.test")
	r.AddCookie(&http.Cookie{Name: cookieName, Value: nonce})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "blocked") || p.continues() != 0 {
		t.Errorf("status %d, continues %d; want the block page and no bypass", w.Code, p.continues())
	}
}

func TestStatus(t *testing.T) {
	p := newPolicy(t)
	srv := httptest.NewServer(newServer(t, p, time.Now).Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+statusPath, nil)
	req.Host = "warned.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Netward-Sink") != "1" || !strings.Contains(string(b), `"verdict":"warn"`) {
		t.Errorf("status = %s %v", b, resp.Header)
	}
}

func TestKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil || !bytes.Equal(k1, k2) || len(k1) != 32 {
		t.Fatalf("key not stable across loads: %v", err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "warn.key"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
}

// serveTLS starts the page server's HTTPS side on loopback.
func serveTLS(t *testing.T, s *Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, nil, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestHTTPSWithoutCAFailsFast(t *testing.T) {
	addr := serveTLS(t, newServer(t, newPolicy(t), time.Now))
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: "warned.test", InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Fatal("TLS handshake succeeded without a CA")
	}
	var alert tls.AlertError
	if !errors.As(err, &alert) && !strings.Contains(err.Error(), "remote error: tls") {
		t.Errorf("handshake error %v, want a TLS alert", err)
	}
}

func TestHTTPSWithCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := newPolicy(t)
	s, err := New(Config{Decide: p.decide, Continue: p.cont, Key: testKey, CA: ca})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, s)
	pem, err := ReadCACert(dir)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("exported CA is not PEM")
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}}}
	resp, err := client.Get("https://warned.test/path")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "Continue to warned.test") {
		t.Errorf("HTTPS warn page: %d\n%s", resp.StatusCode, b)
	}
	if cs := resp.Cookies(); len(cs) != 1 || !cs[0].Secure {
		t.Errorf("HTTPS cookie not Secure: %+v", cs)
	}
	// A name no indicator matches gets no certificate.
	if _, err := client.Get("https://unrelated.test/"); err == nil {
		t.Error("CA minted a certificate for a name outside the policy")
	}
	// Key file is private; a reload yields the same CA and cached leaves.
	_, keyPath := CAFiles(dir)
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key mode %v, want 0600", fi.Mode().Perm())
	}
	ca2, err := LoadOrCreateCA(dir, nil)
	if err != nil || !ca2.Certificate().Equal(ca.Certificate()) {
		t.Fatalf("reloaded CA differs: %v", err)
	}
	l1, _ := ca.Leaf("warned.test")
	l2, _ := ca.Leaf("warned.test")
	if l1 != l2 || l1.Leaf.NotAfter.Sub(l1.Leaf.NotBefore) > 25*time.Hour {
		t.Errorf("leaf not cached or not short-lived")
	}
	if ca.Certificate().PublicKeyAlgorithm != x509.ECDSA || !ca.Certificate().IsCA {
		t.Errorf("CA is not an ECDSA CA")
	}
}

func FuzzToken(f *testing.F) {
	f.Add("warned.test", "abc", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, name, nonce, tok string) {
		now := time.Unix(1e9, 0)
		if checkToken(testKey, tok, name, nonce, now) == nil && tok != mintToken(testKey, name, nonce, time.Unix(int64(decodeExp(tok)), 0)) {
			t.Fatalf("accepted a token it did not mint: %q", tok)
		}
	})
}

func decodeExp(tok string) uint64 {
	b, err := base64RawURL(tok)
	if err != nil || len(b) < 8 {
		return 0
	}
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

func base64RawURL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// TestPagePanicRecovered: a panic while serving one page (here in the
// decision) answers that request 500, is counted, and the pages go on.
func TestPagePanicRecovered(t *testing.T) {
	p := newPolicy(t)
	panics := guard.New(nil)
	s, err := New(Config{Key: testKey, Panics: panics, Continue: p.cont,
		Decide: func(name string) filter.Decision {
			if name == "crash.test" {
				panic("decision bug")
			}
			return p.decide(name)
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func(host string) int {
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("crash.test"); code != http.StatusInternalServerError {
		t.Errorf("crash.test: %d, want 500", code)
	}
	if code := get("blocked.test"); code != http.StatusForbidden {
		t.Errorf("after the panic, blocked.test: %d, want the block page (403)", code)
	}
	if n := panics.Count("warnpage"); n != 1 {
		t.Errorf("counted %d panics, want 1", n)
	}
}
