package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/consoletest"
	"github.com/netward/netward/console/feed"
	"github.com/netward/netward/console/ingest"
	"github.com/netward/netward/console/store"
)

const adminPW, viewerPW = "admin password 123", "viewer password 123"

type fixture struct {
	st      *store.Store
	pub     *feed.Publisher
	h       http.Handler
	raw     http.Handler // without Recover
	admin   *session
	viewer  *session
	builtin *catalog.Catalog
}

// session is a signed-in browser: cookie and CSRF token.
type session struct {
	cookie, csrf string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	st := consoletest.Store(t)
	au := consoletest.Auth(st, auth.Config{LoginBurst: 1000})
	cat, _ := catalog.Parse("app\tdropbox\tCloud storage\tdropbox.com\napp\tslack\tChat\tslack.com\ngroup\tcategory-x\tX\t2\n")
	pub, err := feed.New(feed.Config{Store: st, Auth: au, Catalog: cat, Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	ing, err := ingest.New(ingest.Config{Store: st, Auth: au, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{Store: st, Auth: au, Feed: pub, Ingest: ing, Catalog: cat, Fingerprint: "AA:BB"})
	mux := http.NewServeMux()
	mux.Handle("/api/", a)
	mux.Handle("/v1/enroll", a)
	f := &fixture{st: st, pub: pub, h: Recover(slog.New(slog.DiscardHandler), mux), raw: mux, builtin: cat}
	if _, err := au.AddAccount(ctx, "root", "admin", adminPW); err != nil {
		t.Fatal(err)
	}
	if _, err := au.AddAccount(ctx, "val", "viewer", viewerPW); err != nil {
		t.Fatal(err)
	}
	f.admin, f.viewer = f.login(t, "root", adminPW), f.login(t, "val", viewerPW)
	return f
}

func (f *fixture) login(t testing.TB, name, pw string) *session {
	t.Helper()
	w := f.do(nil, "POST", "/api/login", map[string]string{"name": name, "password": pw})
	if w.Code != 200 {
		t.Fatalf("login %s = %d %s", name, w.Code, w.Body)
	}
	var s sessionInfo
	json.Unmarshal(w.Body.Bytes(), &s)
	for _, c := range w.Result().Cookies() {
		if c.Name == auth.SessionCookie {
			if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict", c)
			}
			return &session{cookie: c.Value, csrf: s.CSRFToken}
		}
	}
	t.Fatal("no session cookie")
	return nil
}

// do sends a request as s (nil: anonymous); in is JSON-encoded unless it
// is a string (sent as is).
func (f *fixture) do(s *session, method, path string, in any) *httptest.ResponseRecorder {
	var body io.Reader
	switch v := in.(type) {
	case nil:
	case string:
		body = strings.NewReader(v)
	default:
		b, _ := json.Marshal(v)
		body = bytes.NewReader(b)
	}
	r := httptest.NewRequest(method, path, body)
	if s != nil {
		r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: s.cookie})
		r.Header.Set("X-CSRF-Token", s.csrf)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func TestAccessControl(t *testing.T) {
	f := newFixture(t)
	noCSRF := &session{cookie: f.admin.cookie}
	tests := []struct {
		name   string
		s      *session
		method string
		path   string
		body   any
		want   int
	}{
		{"anonymous read", nil, "GET", "/api/apps", nil, 401},
		{"viewer reads", f.viewer, "GET", "/api/apps", nil, 200},
		{"viewer reads devices", f.viewer, "GET", "/api/devices", nil, 200},
		{"viewer cannot tag", f.viewer, "PUT", "/api/apps/dropbox/tag", map[string]string{"tag": "Unsanctioned"}, 403},
		{"viewer cannot add indicators", f.viewer, "POST", "/api/indicators", map[string]string{"indicatorValue": "x.example", "indicatorType": "DomainName", "action": "Block"}, 403},
		{"viewer cannot change settings", f.viewer, "PUT", "/api/settings", map[string]string{"mode": "off"}, 403},
		{"viewer cannot make keys", f.viewer, "POST", "/api/enrollment-keys", map[string]string{"name": "k"}, 403},
		{"admin without CSRF token", noCSRF, "PUT", "/api/apps/dropbox/tag", map[string]string{"tag": "Unsanctioned"}, 403},
		{"admin tags", f.admin, "PUT", "/api/apps/dropbox/tag", map[string]string{"tag": "Unsanctioned"}, 200},
		{"a category grouping is not an app", f.admin, "PUT", "/api/apps/category-x/tag", map[string]string{"tag": "Unsanctioned"}, 400},
		{"unknown app", f.admin, "PUT", "/api/apps/nope/tag", map[string]string{"tag": "Monitored"}, 404},
		{"unknown tag", f.admin, "PUT", "/api/apps/slack/tag", map[string]string{"tag": "Forbidden"}, 400},
		{"unknown field", f.admin, "PUT", "/api/apps/slack/tag", map[string]string{"tags": "Monitored"}, 400},
		{"not JSON", f.admin, "PUT", "/api/apps/slack/tag", "{", 400},
		{"unknown endpoint", f.admin, "GET", "/api/nothing", nil, 404},
		{"wrong password", nil, "POST", "/api/login", map[string]string{"name": "root", "password": "nope"}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w := f.do(tt.s, tt.method, tt.path, tt.body); w.Code != tt.want {
				t.Errorf("%s %s = %d, want %d: %s", tt.method, tt.path, w.Code, tt.want, w.Body)
			}
		})
	}
}

func TestTagsIndicatorsSettingsReachTheFeed(t *testing.T) {
	f := newFixture(t)
	seq0 := f.pub.Status().Sequence
	if w := f.do(f.admin, "POST", "/api/apps/tags", map[string]any{"apps": []string{"dropbox", "slack"}, "tag": "Monitored"}); w.Code != 200 {
		t.Fatalf("bulk tag = %d %s", w.Code, w.Body)
	}
	if st := f.pub.Status(); st.Sequence != seq0+1 || st.Indicators != 2 {
		t.Errorf("after tagging: %+v, want one new sequence with 2 indicators", st)
	}
	var apps struct {
		Total int `json:"total"`
	}
	w := f.do(f.viewer, "GET", "/api/apps?tag=monitored&category=chat", nil)
	json.Unmarshal(w.Body.Bytes(), &apps)
	if apps.Total != 1 {
		t.Errorf("filter tag+category: %s", w.Body)
	}
	// One MDE indicator; an invalid one comes back with its problem.
	if w := f.do(f.admin, "POST", "/api/indicators", map[string]any{"indicatorValue": "Evil.Example.", "indicatorType": "DomainName", "action": "AlertAndBlock", "title": "t", "description": "d"}); w.Code != 200 {
		t.Fatalf("submit = %d %s", w.Code, w.Body)
	}
	w = f.do(f.admin, "POST", "/api/indicators", map[string]any{"indicatorValue": "abc", "indicatorType": "FileSha256", "action": "Block"})
	if w.Code != 400 || !strings.Contains(w.Body.String(), "problems") {
		t.Errorf("file hash indicator = %d %s, want 400 with problems", w.Code, w.Body)
	}
	list, _ := f.st.Indicators(context.Background())
	if len(list) != 1 || list[0].Value != "evil.example" || list[0].Action != "Block" || list[0].Description != "d" {
		t.Errorf("stored = %+v, want evil.example as Block", list)
	}
	// CSV import: good lines are saved, bad ones reported with their line.
	csv := "IndicatorType,IndicatorValue,ExpirationTime,Action,Severity,Title,Description,RecommendedActions,RbacGroups,Category,MitreTechniques,GenerateAlert\n" +
		"DomainName,good.example,,Block,,,,,,,,\n" +
		"DomainName,bad name!,,Block,,,,,,,,\n" +
		"Url,http://warn.example/x,,Warn,,,,,,,,\n"
	r := httptest.NewRequest("POST", "/api/indicators/import", strings.NewReader(csv))
	r.Header.Set("Content-Type", "text/csv")
	r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: f.admin.cookie})
	r.Header.Set("X-CSRF-Token", f.admin.csrf)
	rw := httptest.NewRecorder()
	f.h.ServeHTTP(rw, r)
	var imp struct {
		Created  int `json:"created"`
		Errors   int `json:"errors"`
		Problems []struct {
			Line    int    `json:"line"`
			Message string `json:"message"`
		} `json:"problems"`
	}
	json.Unmarshal(rw.Body.Bytes(), &imp)
	if rw.Code != 200 || imp.Created != 2 || imp.Errors != 1 || len(imp.Problems) == 0 || imp.Problems[0].Line != 3 {
		t.Errorf("CSV import = %d %s, want 2 created and the error on line 3", rw.Code, rw.Body)
	}
	// The MDE import body shape, dry run.
	w = f.do(f.admin, "POST", "/api/indicators/import?dryRun=true", map[string]any{"Indicators": []map[string]any{{"indicatorValue": "dry.example", "indicatorType": "DomainName", "action": "Audit"}}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"valid": 1`) {
		t.Errorf("dry run = %d %s", w.Code, w.Body)
	}
	if list, _ := f.st.Indicators(context.Background()); len(list) != 3 {
		t.Errorf("%d indicators after import and dry run, want 3", len(list))
	}
	// Settings: a bad one is refused with the agent's problems; a good one
	// reaches the feed.
	if w := f.do(f.admin, "PUT", "/api/settings", map[string]any{"mode": "loud"}); w.Code != 400 {
		t.Errorf("bad mode = %d %s", w.Code, w.Body)
	}
	if w := f.do(f.admin, "PUT", "/api/settings", map[string]any{"mode": "audit", "warnRedirectUrl": "https://intranet.example/apps", "bypassDurationHours": 4}); w.Code != 200 {
		t.Fatalf("settings = %d %s", w.Code, w.Body)
	}
	s, _ := feed.Settings(context.Background(), f.st)
	if s.Mode != "audit" || s.BypassDurationHours != 4 || s.WarnRedirectURL == "" {
		t.Errorf("settings = %+v", s)
	}
	var audit struct {
		Entries []store.AuditEntry `json:"entries"`
	}
	json.Unmarshal(f.do(f.viewer, "GET", "/api/audit", nil).Body.Bytes(), &audit)
	if len(audit.Entries) < 5 || audit.Entries[0].Action != "settings.update" || audit.Entries[0].Actor != "root" {
		t.Errorf("audit log = %+v", audit.Entries)
	}
}

func TestEnrollAndDevices(t *testing.T) {
	f := newFixture(t)
	var k struct {
		Key           string `json:"key"`
		EnrollCommand string `json:"enrollCommand"`
	}
	w := f.do(f.admin, "POST", "/api/enrollment-keys", map[string]any{"name": "wave 1", "expiresInHours": 24})
	json.Unmarshal(w.Body.Bytes(), &k)
	if w.Code != 200 || !strings.HasPrefix(k.Key, "nwe_") || !strings.Contains(k.EnrollCommand, "--fingerprint AA:BB") {
		t.Fatalf("create key = %d %s", w.Code, w.Body)
	}
	w = f.do(nil, "POST", "/v1/enroll", EnrollRequest{Key: k.Key, DeviceID: "pc-1", DeviceName: "PC 1"})
	var er EnrollResponse
	json.Unmarshal(w.Body.Bytes(), &er)
	if w.Code != 200 || !strings.HasPrefix(er.Token, "nwd_") || !strings.HasSuffix(er.FeedURL, "/v1/indicators") || er.PublicKey == "" {
		t.Fatalf("enroll = %d %s", w.Code, w.Body)
	}
	if w := f.do(nil, "POST", "/v1/enroll", EnrollRequest{Key: "nwe_wrong", DeviceID: "pc-2"}); w.Code != 403 {
		t.Errorf("wrong key = %d", w.Code)
	}
	if w := f.do(nil, "POST", "/v1/enroll", EnrollRequest{Key: k.Key, DeviceID: "../x"}); w.Code != 400 {
		t.Errorf("bad device id = %d %s", w.Code, w.Body)
	}
	if w := f.do(f.viewer, "GET", "/api/devices/pc-1", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"name": "PC 1"`) {
		t.Errorf("device = %d %s", w.Code, w.Body)
	}
	// Another holder of the key cannot take pc-1 over (review #1): 409 and
	// what to do; the device proves its token to re-enroll; an admin can
	// allow a reinstalled machine.
	w = f.do(nil, "POST", "/v1/enroll", EnrollRequest{Key: k.Key, DeviceID: "pc-1", DeviceName: "evil"})
	if w.Code != 409 || !strings.Contains(w.Body.String(), "allow-reenroll") {
		t.Errorf("takeover = %d %s, want 409 naming allow-reenroll", w.Code, w.Body)
	}
	w = f.do(nil, "POST", "/v1/enroll", EnrollRequest{Key: k.Key, DeviceID: "pc-1", DeviceName: "PC 1", CurrentToken: er.Token})
	if w.Code != 200 {
		t.Errorf("re-enroll with the current token = %d %s", w.Code, w.Body)
	}
	if w := f.do(f.viewer, "POST", "/api/devices/pc-1/allow-reenroll", nil); w.Code != 403 {
		t.Errorf("a viewer allows re-enrollment = %d", w.Code)
	}
	if w := f.do(f.admin, "POST", "/api/devices/pc-1/allow-reenroll", map[string]any{"hours": 1}); w.Code != 200 {
		t.Errorf("allow-reenroll = %d %s", w.Code, w.Body)
	}
	if w := f.do(nil, "POST", "/v1/enroll", EnrollRequest{Key: k.Key, DeviceID: "pc-1", DeviceName: "PC 1"}); w.Code != 200 {
		t.Errorf("re-enroll after allow-reenroll = %d %s", w.Code, w.Body)
	}
	if w := f.do(f.viewer, "GET", "/api/audit", nil); !strings.Contains(w.Body.String(), "device.tokenReplaced") || !strings.Contains(w.Body.String(), "device.allowReenroll") {
		t.Errorf("audit log lacks the token replacements: %s", w.Body)
	}
	if w := f.do(f.admin, "POST", "/api/devices/pc-1/revoke", nil); w.Code != 200 {
		t.Errorf("revoke = %d %s", w.Code, w.Body)
	}
	if w := f.do(nil, "POST", "/v1/enroll", EnrollRequest{Key: k.Key, DeviceID: "pc-1"}); w.Code != 403 {
		t.Errorf("re-enroll of a revoked device = %d", w.Code)
	}
	if w := f.do(f.admin, "DELETE", "/api/devices/pc-1", nil); w.Code != 204 {
		t.Errorf("delete = %d", w.Code)
	}
	if w := f.do(nil, "POST", "/v1/enroll", EnrollRequest{Key: k.Key, DeviceID: "pc-1"}); w.Code != 200 {
		t.Errorf("enroll after delete = %d %s", w.Code, w.Body)
	}
}

// The device list tells current, behind, refusing and ahead apart
// (review #2): a device above the published sequence is not "up to date".
func TestDeviceStates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.st.CreateEnrollKey(ctx, store.EnrollKey{Name: "k", Hash: "kh", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	seq := f.pub.Status().Sequence
	at := f.pub.Status().GeneratedAt
	var cs []store.Checkin
	for id, c := range map[string]store.Checkin{
		"current":  {Sequence: seq, At: at.Add(time.Hour)},
		"ahead":    {Sequence: seq + 4, At: at.Add(time.Hour)},
		"refusing": {Sequence: seq - 1, At: at.Add(time.Hour)},
		"behind":   {Sequence: seq - 1, At: at.Add(time.Second)},
	} {
		if _, _, err := f.st.Enroll(ctx, "kh", store.Device{ID: id, Name: id, TokenHash: "t" + id}, ""); err != nil {
			t.Fatal(err)
		}
		c.DeviceID, c.Known, c.AgentVersion = id, true, "1.0"
		cs = append(cs, c)
	}
	if _, _, err := f.st.Enroll(ctx, "kh", store.Device{ID: "unknown", Name: "unknown", TokenHash: "tu"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SaveCheckins(ctx, cs, time.Hour); err != nil {
		t.Fatal(err)
	}
	w := f.do(f.viewer, "GET", "/api/devices", nil)
	var out struct {
		Devices []struct {
			ID    string `json:"id"`
			State string `json:"state"`
			Stale bool   `json:"stale"`
		} `json:"devices"`
	}
	json.Unmarshal(w.Body.Bytes(), &out)
	got := map[string]string{}
	for _, d := range out.Devices {
		got[d.ID] = fmt.Sprintf("%s/%v", d.State, d.Stale)
	}
	want := map[string]string{"current": "current/false", "ahead": "ahead/true", "refusing": "refusing/true", "behind": "behind/true", "unknown": "unknown/false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("device states = %v, want %v", got, want)
	}
}

// An admin rotates the feed signing key; the answer and GET /api/feed name
// the new public key (review #2).
func TestRotateKey(t *testing.T) {
	f := newFixture(t)
	old := f.pub.Status().PublicKey
	if w := f.do(f.viewer, "POST", "/api/feed/rotate-key", nil); w.Code != 403 {
		t.Errorf("a viewer rotates = %d", w.Code)
	}
	w := f.do(f.admin, "POST", "/api/feed/rotate-key", nil)
	var out struct {
		PublicKey string `json:"publicKey"`
	}
	json.Unmarshal(w.Body.Bytes(), &out)
	if w.Code != 200 || out.PublicKey == "" || out.PublicKey == old || f.pub.Status().PublicKey != out.PublicKey {
		t.Errorf("rotate = %d %s (old %s)", w.Code, w.Body, old)
	}
}

func TestAccountsAndTokens(t *testing.T) {
	f := newFixture(t)
	var tok struct {
		Token string `json:"token"`
	}
	w := f.do(f.viewer, "POST", "/api/tokens", map[string]any{"name": "grafana", "expiresInDays": 30})
	json.Unmarshal(w.Body.Bytes(), &tok)
	if w.Code != 200 || !strings.HasPrefix(tok.Token, "nwt_") {
		t.Fatalf("token = %d %s", w.Code, w.Body)
	}
	r := httptest.NewRequest("PUT", "/api/apps/slack/tag", strings.NewReader(`{"tag":"Monitored"}`))
	r.Header.Set("Authorization", "Bearer "+tok.Token)
	rw := httptest.NewRecorder()
	f.h.ServeHTTP(rw, r)
	if rw.Code != 403 {
		t.Errorf("a viewer's token tags = %d, want 403", rw.Code)
	}
	w = f.do(f.admin, "POST", "/api/accounts", map[string]any{"name": "bob", "role": "admin"})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"password": "`) {
		t.Errorf("add account = %d %s", w.Code, w.Body)
	}
	if w := f.do(f.admin, "POST", "/api/account/password", map[string]string{"current": "wrong", "new": "a new long password"}); w.Code != 403 {
		t.Errorf("password change with a wrong current = %d", w.Code)
	}
	if w := f.do(f.admin, "POST", "/api/account/password", map[string]string{"current": adminPW, "new": "short"}); w.Code != 400 {
		t.Errorf("short new password = %d", w.Code)
	}
	if w := f.do(f.admin, "POST", "/api/account/password", map[string]string{"current": adminPW, "new": "a new long password"}); w.Code != 200 {
		t.Errorf("password change = %d %s", w.Code, w.Body)
	}
	if w := f.do(f.admin, "POST", "/api/logout", nil); w.Code != 204 {
		t.Errorf("logout = %d", w.Code)
	}
	if w := f.do(f.admin, "GET", "/api/session", nil); w.Code != 401 {
		t.Errorf("session after logout = %d", w.Code)
	}
}

func TestRecover(t *testing.T) {
	h := Recover(slog.New(slog.DiscardHandler), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			var m map[string]int
			m["x"]++ // nil map write: panics
		}
		w.WriteHeader(204)
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/boom", nil))
	if w.Code != 500 {
		t.Errorf("panic = %d, want 500", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/fine", nil))
	if w.Code != 204 {
		t.Errorf("after a panic = %d", w.Code)
	}
}

func TestCustomApps(t *testing.T) {
	f := newFixture(t)
	w := f.do(f.admin, "POST", "/api/apps", map[string]any{"name": "Intranet Wiki", "category": "Collaboration", "domains": []string{"Wiki.Corp.Example", "docs.corp.example/private"}})
	var out struct {
		ID       string   `json:"id"`
		Warnings []string `json:"warnings"`
	}
	json.Unmarshal(w.Body.Bytes(), &out)
	if w.Code != 200 || out.ID == "" || len(out.Warnings) != 1 {
		t.Fatalf("create = %d %s, want an id and a warning for the path entry", w.Code, w.Body)
	}
	if w := f.do(f.admin, "POST", "/api/apps", map[string]any{"name": "Bad", "domains": []string{"not a name"}}); w.Code != 400 || !strings.Contains(w.Body.String(), "problems") {
		t.Errorf("bad domain = %d %s", w.Code, w.Body)
	}
	if w := f.do(f.admin, "PUT", "/api/apps/"+out.ID+"/tag", map[string]string{"tag": "Unsanctioned"}); w.Code != 200 || !strings.Contains(w.Body.String(), "not propagated") {
		t.Fatalf("tag custom app = %d %s", w.Code, w.Body)
	}
	if st := f.pub.Status(); st.Indicators != 1 {
		t.Errorf("feed after tagging a custom app: %+v, want only wiki.corp.example (the path entry is not propagated)", st)
	}
	if w := f.do(f.admin, "DELETE", "/api/apps/dropbox", nil); w.Code != 400 {
		t.Errorf("deleting a shipped app = %d", w.Code)
	}
	if w := f.do(f.admin, "DELETE", "/api/apps/"+out.ID, nil); w.Code != 200 {
		t.Errorf("delete custom app = %d %s", w.Code, w.Body)
	}
	if st := f.pub.Status(); st.Indicators != 0 {
		t.Errorf("feed after deleting the custom app: %+v", st)
	}
}
