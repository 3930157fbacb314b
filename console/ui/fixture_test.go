package ui

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/alerts"
	"github.com/netward/netward/console/api"
	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/consoletest"
	"github.com/netward/netward/console/discovery"
	"github.com/netward/netward/console/feed"
	"github.com/netward/netward/console/ingest"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/console/web"
	"net/http/httptest"
)

const adminPW, viewerPW = "admin password 123", "viewer password 123"

// fixture is the console's real stack (store, auth, feed, ingest, API and
// these pages) on an HTTPS test server.
type fixture struct {
	st  *store.Store
	au  *auth.Service
	pub *feed.Publisher
	srv *httptest.Server
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	st := consoletest.Store(t)
	au := consoletest.Auth(st, auth.Config{LoginBurst: 1000})
	cat, err := catalog.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := feed.New(feed.Config{Store: st, Auth: au, Catalog: cat, Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := cat.NewMatcher()
	if err != nil {
		t.Fatal(err)
	}
	chunks := t.TempDir()
	al, err := alerts.New(alerts.Config{Store: st, Grace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ing, err := ingest.New(ingest.Config{Store: st, Auth: au, Dir: chunks, Hook: al, Matcher: func() ingest.Matcher { return m }})
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.New(discovery.Config{Store: st,
		Catalog: func(ctx context.Context) (*catalog.Catalog, error) { return feed.Catalog(ctx, st, cat) },
		Publish: func(ctx context.Context) error { _, err := pub.Publish(ctx); al.Invalidate(); return err }})
	if err != nil {
		t.Fatal(err)
	}
	a := api.New(api.Config{Store: st, Auth: au, Feed: pub, Ingest: ing, Catalog: cat, Fingerprint: "AA:BB", ChunkDir: chunks, Alerts: al, Discovery: disc})
	pages, err := New(Config{API: a, Auth: au, FlashKey: []byte("test")})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", a)
	mux.Handle(ingest.Path, ing)
	mux.Handle(Base+"/", pages)
	srv := httptest.NewTLSServer(api.Recover(slog.New(slog.DiscardHandler), mux))
	t.Cleanup(srv.Close)
	for _, acc := range []struct{ name, role, pw string }{{"root", "admin", adminPW}, {"val", "viewer", viewerPW}} {
		if _, err := au.AddAccount(ctx, acc.name, acc.role, acc.pw); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{st: st, au: au, pub: pub, srv: srv}
}

// client is a browser without JavaScript: a cookie jar and form posts.
type client struct {
	t    testing.TB
	f    *fixture
	c    *http.Client
	csrf string
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (f *fixture) client(t testing.TB) *client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	return &client{t: t, f: f, c: c}
}

// signin signs in through the sign-in form.
func (f *fixture) signin(t testing.TB, name, pw string) *client {
	t.Helper()
	c := f.client(t)
	code, body := c.get(Base + "/signin")
	if code != 200 {
		t.Fatalf("sign-in page = %d", code)
	}
	c.csrf = csrfRE.FindStringSubmatch(body)[1]
	code, body = c.post(Base+"/signin", url.Values{"name": {name}, "password": {pw}, "next": {Base + "/settings"}})
	if code != 200 || !strings.Contains(body, "<h1>Settings</h1>") {
		t.Fatalf("sign in as %s: %d\n%s", name, code, body)
	}
	c.csrf = csrfRE.FindStringSubmatch(body)[1]
	return c
}

func (c *client) get(path string) (int, string) {
	c.t.Helper()
	resp, err := c.c.Get(c.f.srv.URL + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post sends a form with the session's CSRF token (unless v sets one).
func (c *client) post(path string, v url.Values) (int, string) {
	c.t.Helper()
	if v == nil {
		v = url.Values{}
	}
	if _, ok := v["csrf_token"]; !ok && c.csrf != "" {
		v.Set("csrf_token", c.csrf)
	}
	resp, err := c.c.PostForm(c.f.srv.URL+path, v)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// page gets a page, wants 200 and a page that passes the kit's lint.
func (c *client) page(path string) string {
	c.t.Helper()
	code, body := c.get(path)
	if code != 200 {
		c.t.Fatalf("GET %s = %d\n%s", path, code, body)
	}
	if err := web.CheckPage([]byte(body), "csrf_token"); err != nil {
		c.t.Errorf("GET %s: %v", path, err)
	}
	return body
}

func consoletestEnroll(t testing.TB, f *fixture, id string) string {
	return consoletest.Enroll(t, f.au, id)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// upload sends records (JSON objects without Timestamp and DeviceId, which
// are filled in) as one telemetry chunk of device, through the real ingest.
func (f *fixture) upload(t testing.TB, token, device, chunk string, at time.Time, records ...map[string]any) {
	t.Helper()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	for _, r := range records {
		r["Timestamp"], r["DeviceId"] = at.UTC().Format(time.RFC3339), device
		b, _ := json.Marshal(r)
		zw.Write(append(b, '\n'))
	}
	zw.Close()
	req, _ := http.NewRequest("PUT", f.srv.URL+"/v1/telemetry/"+device+"/"+chunk, &zb)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload %s/%s = %d", device, chunk, resp.StatusCode)
	}
}

// fleet enrolls two devices and uploads an hour of traffic: Dropbox used
// by alice on dev-a (with a warn and a bypass) and bob on dev-b, Slack on
// dev-a, and a domain no app claims.
func (f *fixture) fleet(t testing.TB, at time.Time) {
	ta, tb := consoletest.Enroll(t, f.au, "dev-a"), consoletest.Enroll(t, f.au, "dev-b")
	rec := func(action, url, user string, sent, recv int64) map[string]any {
		return map[string]any{"ActionType": action, "RemoteUrl": url, "InitiatingProcessAccountName": user, "BytesSent": sent, "BytesReceived": recv,
			"LocalIP": "192.0.2.10", "RemotePort": 443}
	}
	f.upload(t, ta, "dev-a", "c1", at,
		rec("ConnectionSuccess", "www.dropbox.com", "alice", 1000, 50000),
		rec("NetworkProtectionWarned", "www.dropbox.com", "alice", 0, 0),
		rec("NetworkProtectionUserBypassEvent", "www.dropbox.com", "alice", 0, 0),
		rec("ConnectionSuccess", "app.slack.com", "alice", 300, 7000),
		rec("ConnectionSuccess", "intranet.example.org", "alice", 10, 10),
		map[string]any{"ActionType": "DeviceInfo", "OSPlatform": "linux", "AgentVersion": "1.2.3", "DeviceName": "dev-a.example"})
	f.upload(t, tb, "dev-b", "c1", at,
		rec("ConnectionSuccess", "www.dropbox.com", "bob", 2000, 90000),
		rec("NetworkProtectionBlocked", "www.dropbox.com", "bob", 0, 0))
}

func alertFilterAll() store.AlertFilter {
	return store.AlertFilter{From: time.Now().Add(-48 * time.Hour), To: time.Now().Add(time.Hour), Limit: 100}
}
