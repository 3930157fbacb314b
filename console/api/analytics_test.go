package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/alerts"
	"github.com/netward/netward/console/alerts/alertstest"
	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/consoletest"
	"github.com/netward/netward/console/discovery"
	"github.com/netward/netward/console/feed"
	"github.com/netward/netward/console/ingest"
	"github.com/netward/netward/console/store"
)

type analyticsFixture struct {
	*fixture
	ing    *ingest.Ingest
	al     *alerts.Alerts
	tokens map[string]string
	now    time.Time
}

func newAnalyticsFixture(t testing.TB) *analyticsFixture {
	t.Helper()
	ctx := context.Background()
	st := consoletest.Store(t)
	au := consoletest.Auth(st, auth.Config{LoginBurst: 1000})
	cat, err := catalog.Parse("app\tdropbox\tCloud storage\tdropbox.com\napp\tslack\tChat\tslack.com\napp\tdiscord\tChat\tdiscord.com\n")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := cat.NewMatcher()
	pub, err := feed.New(feed.Config{Store: st, Auth: au, Catalog: cat, Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	al, err := alerts.New(alerts.Config{Store: st, Grace: time.Millisecond, Refresh: time.Millisecond, Backoff: 10 * time.Millisecond, Poll: 10 * time.Millisecond, Hostname: "console-test"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ing, err := ingest.New(ingest.Config{Store: st, Auth: au, Dir: dir, Hook: al, Matcher: func() ingest.Matcher { return m }})
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.New(discovery.Config{Store: st, Catalog: func(context.Context) (*catalog.Catalog, error) { return cat, nil },
		Publish: func(ctx context.Context) error { _, err := pub.Publish(ctx); return err }})
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{Store: st, Auth: au, Feed: pub, Ingest: ing, Catalog: cat, Alerts: al, Discovery: disc, ChunkDir: dir})
	mux := http.NewServeMux()
	mux.Handle("/api/", a)
	mux.Handle(ingest.Path, ing)
	f := &fixture{st: st, pub: pub, h: Recover(slog.New(slog.DiscardHandler), mux), raw: mux, builtin: cat}
	if _, err := au.AddAccount(ctx, "root", "admin", adminPW); err != nil {
		t.Fatal(err)
	}
	if _, err := au.AddAccount(ctx, "val", "viewer", viewerPW); err != nil {
		t.Fatal(err)
	}
	f.admin, f.viewer = f.login(t, "root", adminPW), f.login(t, "val", viewerPW)
	af := &analyticsFixture{fixture: f, ing: ing, al: al, tokens: map[string]string{}, now: time.Now().UTC()}
	for _, id := range []string{"pc-1", "pc-2"} {
		af.tokens[id] = consoletest.Enroll(t, au, id)
	}
	return af
}

// upload PUTs records (JSON objects without the device fields) as one chunk.
func (f *analyticsFixture) upload(t testing.TB, device, chunk string, recs ...string) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	for _, r := range recs {
		fmt.Fprintf(zw, `{"DeviceId":%q,"DeviceName":%q,%s}`+"\n", device, device, r)
	}
	zw.Close()
	r := httptest.NewRequest(http.MethodPut, "/v1/telemetry/"+device+"/"+chunk, &b)
	r.Header.Set("Authorization", "Bearer "+f.tokens[device])
	r.Header.Set("Content-Encoding", "gzip")
	r.Header.Set("Content-Type", "application/x-ndjson")
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if w.Code != http.StatusCreated {
		t.Fatalf("upload %s/%s = %d %s", device, chunk, w.Code, w.Body)
	}
}

func rec2(at time.Time, action, url, user string, extra string) string {
	s := fmt.Sprintf(`"Timestamp":%q,"ActionType":%q,"RemoteUrl":%q,"InitiatingProcessAccountName":%q,"InitiatingProcessFileName":"browser","LocalIP":"192.0.2.7"`,
		at.Format(time.RFC3339Nano), action, url, user)
	if extra != "" {
		s += "," + extra
	}
	return s
}

func (f *analyticsFixture) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	w := f.do(f.viewer, "GET", path, nil)
	if w.Code != 200 {
		t.Fatalf("GET %s = %d %s", path, w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

type appRow struct {
	AppID       string `json:"appId"`
	Domain      string `json:"domain"`
	Tag         string `json:"tag"`
	Category    string `json:"category"`
	Users       int64  `json:"users"`
	Machines    int64  `json:"machines"`
	BypassUsers int64  `json:"bypassUsers"`
	Bypasses    int64  `json:"bypasses"`
	Blocks      int64  `json:"blocks"`
	Warns       int64  `json:"warns"`
	Trans       int64  `json:"transactions"`
	BytesSent   int64  `json:"bytesSent"`
}

// The story of the issue on real handlers: traffic and a Warn bypass on
// two devices show in the app's bypass and distinct-user counts, the
// machines' apps, users, addresses and traffic, and a hunting query;
// an Unsanctioned access and an Unsanctioned app not blocked on a device
// held on an old sequence raise alerts; CSV matches JSON.
func TestAnalyticsStory(t *testing.T) {
	f := newAnalyticsFixture(t)
	ctx := context.Background()
	if w := f.do(f.admin, "PUT", "/api/apps/slack/tag", map[string]string{"tag": "Monitored"}); w.Code != 200 {
		t.Fatalf("tag slack = %d %s", w.Code, w.Body)
	}
	old := f.pub.Status().Sequence
	if w := f.do(f.admin, "PUT", "/api/apps/dropbox/tag", map[string]string{"tag": "Unsanctioned"}); w.Code != 200 {
		t.Fatalf("tag dropbox = %d %s", w.Code, w.Body)
	}
	seq := f.pub.Status().Sequence
	// pc-1 took the new sequence; pc-2 polls but stays on the old one.
	now := time.Now().UTC()
	if err := f.st.SaveCheckins(ctx, []store.Checkin{
		{DeviceID: "pc-1", At: now, Known: true, AgentVersion: "1.2.3", OSPlatform: "linux", OSVer: "6.1", Sequence: seq},
		{DeviceID: "pc-2", At: now, Known: true, AgentVersion: "1.2.0", OSPlatform: "linux", OSVer: "6.1", Sequence: old},
	}, time.Hour); err != nil {
		t.Fatal(err)
	}
	t0 := now.Add(time.Second)
	f.upload(t, "pc-1", "c1",
		rec2(t0, "NetworkProtectionWarned", "https://app.slack.com/x", "alice", `"BytesSent":100,"BytesReceived":1000`),
		rec2(t0.Add(time.Millisecond), "NetworkProtectionUserBypassEvent", "https://app.slack.com/x", "alice", ""),
		rec2(t0.Add(2*time.Millisecond), "ConnectionSuccess", "https://app.slack.com/x", "alice", `"BytesSent":2000000,"BytesReceived":3000000`),
		rec2(t0.Add(3*time.Millisecond), "NetworkProtectionBlocked", "https://www.dropbox.com/", "alice", ""),
		rec2(t0.Add(4*time.Millisecond), "NetworkProtectionBlocked", "https://dl.dropbox.com/", "alice", ""),
		rec2(t0.Add(5*time.Millisecond), "ConnectionSuccess", "https://intranet.corp.example/", "alice", `"BytesSent":5,"BytesReceived":5`),
		rec2(t0.Add(6*time.Millisecond), "ConnectionSuccess", "https://notdropbox.com/", "alice", ""),
	)
	f.upload(t, "pc-2", "c1",
		rec2(t0, "NetworkProtectionWarned", "https://slack.com/", "bob", ""),
		rec2(t0.Add(time.Millisecond), "NetworkProtectionUserBypassEvent", "https://slack.com/", "bob", ""),
		rec2(t0.Add(2*time.Millisecond), "ConnectionSuccess", "https://www.dropbox.com/upload", "bob", `"BytesSent":7000000`),
		rec2(t0.Add(3*time.Millisecond), "ConnectionSuccess", "https://intranet.corp.example/", "bob", ""),
		rec2(t0.Add(4*time.Millisecond), "ConnectionSuccess", "https://app.slack.com/", "carol", ""),
	)

	var apps struct {
		Period store.Period `json:"period"`
		Apps   []appRow     `json:"apps"`
	}
	f.getJSON(t, "/api/discovery/apps?period=24h", &apps)
	byID := map[string]appRow{}
	for _, a := range apps.Apps {
		byID[a.AppID] = a
	}
	if s := byID["slack"]; s.Users != 3 || s.Machines != 2 || s.BypassUsers != 2 || s.Bypasses != 2 || s.Warns != 2 || s.Tag != "Monitored" || s.Category != "Chat" {
		t.Errorf("slack = %+v, want 3 users, 2 machines, 2 bypassing users, 2 bypasses, 2 warns, Monitored, Chat", s)
	}
	if d := byID["dropbox"]; d.Blocks != 2 || d.Machines != 2 || d.Users != 2 || d.Tag != "Unsanctioned" {
		t.Errorf("dropbox = %+v", d)
	}
	if apps.Period.Span != store.SpanHour {
		t.Errorf("24h answered per %d s, want hours", apps.Period.Span)
	}
	var filtered struct{ Apps []appRow }
	f.getJSON(t, "/api/discovery/apps?period=7d&minUsers=3", &filtered)
	if len(filtered.Apps) != 1 || filtered.Apps[0].AppID != "slack" {
		t.Errorf("minUsers=3 over 7d = %+v, want slack alone", filtered.Apps)
	}
	f.getJSON(t, "/api/discovery/apps?category=cloud+storage", &filtered)
	if len(filtered.Apps) != 1 || filtered.Apps[0].AppID != "dropbox" {
		t.Errorf("category filter = %+v, want dropbox", filtered.Apps)
	}
	f.getJSON(t, "/api/discovery/apps?tag=Monitored", &filtered)
	if len(filtered.Apps) != 1 || filtered.Apps[0].AppID != "slack" {
		t.Errorf("tag filter = %+v, want slack", filtered.Apps)
	}
	var cands struct{ Domains []appRow }
	f.getJSON(t, "/api/discovery/candidates", &cands)
	if len(cands.Domains) < 2 || cands.Domains[0].Domain != "intranet.corp.example" || cands.Domains[0].Machines != 2 {
		t.Errorf("candidates = %+v, want intranet.corp.example first on 2 machines", cands.Domains)
	}

	// The fleet summary (the dashboard's header and charts).
	var sum struct {
		store.FleetSummary
		Traffic trafficMB `json:"traffic"`
	}
	f.getJSON(t, "/api/discovery/summary?period=24h", &sum)
	if sum.Total.Transactions != 12 || sum.Machines != 2 || sum.Users != 3 || sum.BypassUsers != 2 || len(sum.Series) != 1 || sum.Total.Blocks != 2 || sum.Traffic.TotalMB != 12.001 {
		t.Errorf("summary = %+v, want 12 transactions, 2 machines, 3 users (2 bypassed), 1 bucket, 2 blocks, 12.001 MB", sum)
	}
	if w := f.do(f.viewer, "GET", "/api/discovery/summary?period=24h&format=csv", nil); w.Code != 200 || !strings.HasPrefix(w.Body.String(), "at,transactions,") || strings.Count(w.Body.String(), "\n") != 2 {
		t.Errorf("summary csv = %d %q, want the series: a header and one bucket", w.Code, w.Body)
	}

	var slack appDetailView
	f.getJSON(t, "/api/discovery/apps/slack", &slack)
	if slack.BypassUsers != 2 || slack.Total.Bypasses != 2 || len(slack.Machines) != 2 || len(slack.Domains) != 2 || len(slack.Series) != 1 || len(slack.Users) != 3 {
		t.Errorf("slack detail = %+v", slack)
	}
	for _, u := range slack.Users {
		if want := u.Name != "carol"; u.Bypassed != want {
			t.Errorf("user %s bypassed = %v, want %v", u.Name, u.Bypassed, want)
		}
	}

	// Alerts: pc-1's blocks of dropbox are one alert (same hour, two
	// occurrences); pc-2, on the old sequence, reached dropbox.
	var al struct{ Alerts []store.Alert }
	f.getJSON(t, "/api/alerts", &al)
	kinds := map[string]store.Alert{}
	for _, a := range al.Alerts {
		kinds[a.DeviceID+"/"+a.Kind] = a
	}
	if a := kinds["pc-1/"+store.AlertUnsanctionedAccess]; a.Occurrences != 2 || a.User != "alice" || a.Process != "browser" || a.AppID != "dropbox" {
		t.Errorf("access alert = %+v", a)
	}
	if a := kinds["pc-2/"+store.AlertUnsanctionedNotBlocked]; a.AppID != "dropbox" || !strings.Contains(a.Detail, "stale") {
		t.Errorf("not-blocked alert = %+v", a)
	}
	if len(al.Alerts) != 2 {
		t.Errorf("alerts = %+v, want 2", al.Alerts)
	}

	var machines struct {
		Machines []struct {
			ID          string   `json:"id"`
			Risk        string   `json:"risk"`
			RiskReasons []string `json:"riskReasons"`
			Stale       bool     `json:"stale"`
			Traffic     trafficMB
		}
	}
	f.getJSON(t, "/api/machines", &machines)
	risk := map[string]string{}
	for _, m := range machines.Machines {
		risk[m.ID] = m.Risk
		if m.ID == "pc-2" && (!m.Stale || m.Traffic.UploadMB != 7) {
			t.Errorf("pc-2 = %+v, want stale, 7 MB up", m)
		}
	}
	if risk["pc-1"] != RiskMedium || risk["pc-2"] != RiskHigh {
		t.Errorf("risk = %v, want pc-1 medium (access alert, bypass), pc-2 high (not blocked)", risk)
	}

	var m1 struct {
		Total     store.Counters
		Traffic   trafficMB
		Apps      []appRow
		Users     []store.Seen
		Addresses []store.Seen
		Series    []store.Bucket
	}
	f.getJSON(t, "/api/machines/pc-1", &m1)
	if m1.Traffic.UploadMB != 2 || m1.Traffic.DownloadMB != 3.001 || len(m1.Series) != 1 || len(m1.Users) != 1 || m1.Users[0].Value != "alice" ||
		len(m1.Addresses) != 1 || m1.Addresses[0].Value != "192.0.2.7" || len(m1.Apps) != 4 {
		t.Errorf("pc-1 = %+v", m1)
	}
	var ev struct {
		Events []struct{ ActionType, RemoteUrl string }
	}
	f.getJSON(t, "/api/machines/pc-1/events?action=NetworkProtectionBlocked", &ev)
	if len(ev.Events) != 2 {
		t.Errorf("blocked events of pc-1 = %+v", ev.Events)
	}
	f.getJSON(t, "/api/machines/pc-1/events?domain=slack.com", &ev)
	if len(ev.Events) != 3 {
		t.Errorf("slack.com events of pc-1 = %+v", ev.Events)
	}

	// Hunting: dropbox.com and its subdomains (not notdropbox.com), paged.
	var h struct {
		Devices    []store.HuntDevice
		Events     []struct{ DeviceId, RemoteUrl string }
		NextCursor string
	}
	f.getJSON(t, "/api/hunt?domains=dropbox.com&period=7d", &h)
	if len(h.Devices) != 2 || len(h.Events) != 3 || h.NextCursor != "" {
		t.Errorf("hunt = %+v, want 2 devices, 3 events", h)
	}
	for _, e := range h.Events {
		if strings.Contains(e.RemoteUrl, "notdropbox") {
			t.Errorf("hunt matched %s", e.RemoteUrl)
		}
	}
	var seen []string
	cursor := ""
	for range 5 {
		f.getJSON(t, "/api/hunt?domains=dropbox.com,intranet.corp.example&limit=2&cursor="+cursor, &h)
		for _, e := range h.Events {
			seen = append(seen, e.DeviceId+" "+e.RemoteUrl)
		}
		if cursor = h.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 5 {
		t.Errorf("paged hunt = %q, want 5 events", seen)
	}

	// CSV matches JSON, row for row.
	w := f.do(f.viewer, "GET", "/api/discovery/apps?format=csv", nil)
	rows, err := csv.NewReader(w.Body).ReadAll()
	if err != nil || w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("csv = %d %v", w.Code, err)
	}
	if len(rows) != len(apps.Apps)+1 {
		t.Fatalf("csv has %d rows, JSON %d apps", len(rows)-1, len(apps.Apps))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for i, a := range apps.Apps {
		r := rows[i+1]
		if r[col["appId"]] != a.AppID || r[col["users"]] != strconv.FormatInt(a.Users, 10) || r[col["bypassUsers"]] != strconv.FormatInt(a.BypassUsers, 10) ||
			r[col["bytesSent"]] != strconv.FormatInt(a.BytesSent, 10) {
			t.Errorf("csv row %v != JSON %+v", r, a)
		}
	}
	if _, ok := col["traffic.totalMB"]; !ok {
		t.Errorf("csv header %v lacks traffic.totalMB", rows[0])
	}
	if w := f.do(f.viewer, "GET", "/api/discovery/apps/slack?format=csv&list=users", nil); w.Code != 200 || !strings.Contains(w.Body.String(), "name,bypassed\n") {
		t.Errorf("detail csv = %d %s", w.Code, w.Body)
	}
	if w := f.do(f.viewer, "GET", "/api/hunt?format=csv&domains=dropbox.com", nil); w.Code != 200 || strings.Count(w.Body.String(), "\n") != 4 {
		t.Errorf("hunt csv = %d %s", w.Code, w.Body)
	}

	// A retried chunk counts nothing twice and raises nothing again.
	f.upload(t, "pc-1", "c2", rec2(t0.Add(10*time.Millisecond), "NetworkProtectionBlocked", "https://www.dropbox.com/", "alice", ""))
	f.getJSON(t, "/api/alerts?kind="+store.AlertUnsanctionedAccess+"&device=pc-1", &al)
	if len(al.Alerts) != 1 || al.Alerts[0].Occurrences != 3 {
		t.Errorf("access alerts after a third block = %+v, want one with 3 occurrences", al.Alerts)
	}
	// Acknowledge: a viewer may not, an admin may.
	id := strconv.FormatInt(al.Alerts[0].ID, 10)
	if w := f.do(f.viewer, "POST", "/api/alerts/"+id+"/acknowledge", nil); w.Code != 403 {
		t.Errorf("viewer ack = %d", w.Code)
	}
	if w := f.do(f.admin, "POST", "/api/alerts/"+id+"/acknowledge", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"state": "acknowledged"`) {
		t.Errorf("ack = %d %s", w.Code, w.Body)
	}
}

func TestPeriods(t *testing.T) {
	f := newAnalyticsFixture(t)
	for _, c := range []struct {
		q    string
		code int
		span int64
	}{
		{"period=24h", 200, store.SpanHour},
		{"period=7d", 200, store.SpanDay},
		{"period=90d", 200, store.SpanDay},
		{"period=1y", 400, 0},
		{"from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", 400, 0},
		{"from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", 400, 0},
		{"from=yesterday", 400, 0},
		{"from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z", 200, store.SpanDay},
	} {
		w := f.do(f.viewer, "GET", "/api/discovery/apps?"+c.q, nil)
		if w.Code != c.code {
			t.Errorf("%s = %d %s, want %d", c.q, w.Code, w.Body, c.code)
			continue
		}
		if c.code == 200 {
			var v struct{ Period store.Period }
			json.Unmarshal(w.Body.Bytes(), &v)
			if v.Period.Span != c.span {
				t.Errorf("%s: span %d, want %d", c.q, v.Period.Span, c.span)
			}
		}
	}
	for _, p := range []string{"/api/hunt", "/api/hunt?domains=http://x/", "/api/machines/nope", "/api/discovery/apps/nope", "/api/machines/pc-1/events?cursor=zz"} {
		if w := f.do(f.viewer, "GET", p, nil); w.Code != 400 && w.Code != 404 {
			t.Errorf("%s = %d %s, want 400/404", p, w.Code, w.Body)
		}
	}
}

func parseSyslog(t *testing.T, msg string) map[string]string {
	t.Helper()
	m, err := alertstest.Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Alerts reach a real webhook receiver (HMAC checked, a failing receiver
// retried) and real syslog receivers over UDP and TCP; "send test" works.
func TestAlertDelivery(t *testing.T) {
	f := newAnalyticsFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.al.Run(ctx)
	const secret = "a webhook secret of 32 chars...."
	hooks := make(chan alerts.WebhookBody, 10)
	fails := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if alerts.Signature(secret, r.Header.Get("Netward-Timestamp"), body) != r.Header.Get("Netward-Signature") {
			http.Error(w, "bad signature", 401)
			return
		}
		var b alerts.WebhookBody
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if b.Alert.Kind != "test" && fails > 0 {
			fails--
			http.Error(w, "try later", 503)
			return
		}
		hooks <- b
	}))
	defer srv.Close()
	sl := alertstest.NewSyslog(t)
	for _, d := range []map[string]any{
		{"name": "soc", "kind": "webhook", "url": srv.URL, "secret": secret},
		{"name": "siem-udp", "kind": "syslog", "network": "udp", "address": sl.UDP.LocalAddr().String()},
		{"name": "siem-tcp", "kind": "syslog", "network": "tcp", "address": sl.TCP.Addr().String()},
	} {
		if w := f.do(f.admin, "POST", "/api/alert-destinations", d); w.Code != 200 || strings.Contains(w.Body.String(), secret) {
			t.Fatalf("create destination = %d %s", w.Code, w.Body)
		}
	}
	if w := f.do(f.admin, "POST", "/api/alert-destinations", map[string]any{"name": "weak", "kind": "webhook", "url": srv.URL, "secret": "short"}); w.Code != 400 {
		t.Errorf("short secret = %d", w.Code)
	}
	// Send test, to the webhook.
	if w := f.do(f.admin, "POST", "/api/alert-destinations/1/test", nil); w.Code != 200 {
		t.Fatalf("send test = %d %s", w.Code, w.Body)
	}
	if b := <-hooks; b.Alert.Kind != "test" {
		t.Errorf("test webhook = %+v", b)
	}
	if w := f.do(f.admin, "POST", "/api/alert-destinations/2/test", nil); w.Code != 200 {
		t.Fatalf("send test udp = %d %s", w.Code, w.Body)
	}
	if m := sl.Next(t, 10*time.Second); m.Network != "udp" {
		t.Errorf("test message over %s, want udp", m.Network)
	} else if m := parseSyslog(t, m.Text); m["kind"] != "test" || m["appName"] != "netward-console" || m["pri"] != "36" || m["host"] != "console-test" {
		t.Errorf("udp test message = %v", m)
	}

	if w := f.do(f.admin, "PUT", "/api/apps/dropbox/tag", map[string]string{"tag": "Unsanctioned"}); w.Code != 200 {
		t.Fatal(w.Body)
	}
	f.upload(t, "pc-1", "c1", rec2(time.Now(), "NetworkProtectionBlocked", "https://www.dropbox.com/", `ali"ce]`, ""))
	select {
	case b := <-hooks:
		if b.Alert.Kind != store.AlertUnsanctionedAccess || b.Alert.DeviceID != "pc-1" || b.Alert.User != `ali"ce]` {
			t.Errorf("webhook alert = %+v", b.Alert)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook after a retry")
	}
	got := map[string]map[string]string{}
	for range 2 {
		m := sl.Next(t, 10*time.Second)
		got[m.Network] = parseSyslog(t, m.Text)
	}
	if m := got["udp"]; m["kind"] != store.AlertUnsanctionedAccess || m["user"] != `ali"ce]` || m["device"] != "pc-1" || m["msgId"] != store.AlertUnsanctionedAccess {
		t.Errorf("udp alert = %v", m)
	}
	if m := got["tcp"]; m["appName"] != "netward-console" || m["app"] != "dropbox" || m["domain"] != "www.dropbox.com" {
		t.Errorf("tcp alert = %v", m)
	}
	// The outbox records each delivery (the webhook's after one retry).
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ds struct {
			Destinations []destinationView
		}
		f.getJSON(t, "/api/alert-destinations", &ds)
		done := 0
		for _, d := range ds.Destinations {
			if d.Delivery[store.DeliveryDelivered] == 1 && d.Delivery[store.DeliveryPending] == 0 {
				done++
			}
		}
		if done == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries = %+v, want one delivered per destination", ds.Destinations)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDiscoveryPolicies(t *testing.T) {
	f := newAnalyticsFixture(t)
	now := time.Now().UTC()
	f.upload(t, "pc-1", "c1", rec2(now, "ConnectionSuccess", "https://discord.com/", "alice", ""), rec2(now, "ConnectionSuccess", "https://slack.com/", "alice", ""))
	f.upload(t, "pc-2", "c1", rec2(now, "ConnectionSuccess", "https://discord.com/", "bob", ""))
	if w := f.do(f.admin, "PUT", "/api/apps/slack/tag", map[string]string{"tag": "Sanctioned"}); w.Code != 200 {
		t.Fatal(w.Body)
	}
	for _, bad := range []map[string]any{
		{"name": "all", "tag": "Unsanctioned"},
		{"name": "x", "tag": "Nope", "minUsers": 1},
		{"name": "x", "tag": "Monitored", "namePattern": "[", "minUsers": 1},
	} {
		if w := f.do(f.admin, "POST", "/api/discovery/policies", bad); w.Code != 400 {
			t.Errorf("policy %v = %d %s, want 400", bad, w.Code, w.Body)
		}
	}
	if w := f.do(f.admin, "POST", "/api/discovery/policies", map[string]any{"name": "chat with 2 users", "category": "Chat", "minUsers": 2, "periodDays": 7, "tag": "Monitored"}); w.Code != 200 {
		t.Fatalf("create policy = %d %s", w.Code, w.Body)
	}
	var res discovery.Result
	w := f.do(f.admin, "POST", "/api/discovery/policies/run", nil)
	json.Unmarshal(w.Body.Bytes(), &res)
	if w.Code != 200 || len(res.Tagged) != 1 || res.Tagged[0].AppID != "discord" || !strings.Contains(res.Tagged[0].Reason, "2 users ≥ 2") {
		t.Fatalf("run = %d %s, want discord tagged (slack has a tag and 1 user)", w.Code, w.Body)
	}
	if !strings.Contains(string(f.feedBody(t)), "discord.com") {
		t.Error("the automatic tag is not in the feed")
	}
	var tags struct{ AutoTags []store.AutoTag }
	f.getJSON(t, "/api/discovery/auto-tags", &tags)
	if len(tags.AutoTags) != 1 {
		t.Fatalf("auto tags = %+v", tags)
	}
	if w := f.do(f.admin, "POST", fmt.Sprintf("/api/discovery/auto-tags/%d/revert", tags.AutoTags[0].ID), nil); w.Code != 200 {
		t.Fatalf("revert = %d %s", w.Code, w.Body)
	}
	if strings.Contains(string(f.feedBody(t)), "discord.com") {
		t.Error("the reverted tag is still in the feed")
	}
	// A reverted tag is not set again by the next run.
	w = f.do(f.admin, "POST", "/api/discovery/policies/run", nil)
	json.Unmarshal(w.Body.Bytes(), &res)
	if len(res.Tagged) != 0 {
		t.Errorf("second run tagged %+v", res.Tagged)
	}
	if w := f.do(f.admin, "POST", fmt.Sprintf("/api/discovery/auto-tags/%d/revert", tags.AutoTags[0].ID), nil); w.Code != 409 {
		t.Errorf("second revert = %d", w.Code)
	}
}

func (f *analyticsFixture) feedBody(t *testing.T) []byte {
	t.Helper()
	doc, err := f.st.LatestFeed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return doc.Body
}

// FuzzAnalyticsQuery drives the analytics views with hostile query
// strings and paths: a clear 4xx or an answer, never a 500 or a panic
// (the handlers run without Recover here).
func FuzzAnalyticsQuery(f *testing.F) {
	fx := newAnalyticsFixture(f)
	now := time.Now().UTC()
	fx.upload(f, "pc-1", "c1", rec2(now, "NetworkProtectionBlocked", "https://www.dropbox.com/", "alice", ""), rec2(now, "ConnectionSuccess", "https://slack.com/", "bob", ""))
	paths := []string{"/api/discovery/apps", "/api/discovery/candidates", "/api/discovery/apps/slack", "/api/discovery/domains/slack.com",
		"/api/machines", "/api/machines/pc-1", "/api/machines/pc-1/events", "/api/hunt", "/api/alerts", "/api/discovery/auto-tags", "/api/discovery/summary"}
	for i, q := range []string{"period=24h&format=csv", "from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:01Z", "domains=dropbox.com,,%00&cursor=9999999999.1",
		"cursor=-1.-1&limit=0", "format=csv&list=nope", "minUsers=-1&sort=%ff", "domain=" + strings.Repeat("a.", 200), "from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z",
		"action=,,&domain=..", "period=90d&format=csv&list=series"} {
		f.Add(uint8(i), q)
	}
	f.Fuzz(func(t *testing.T, which uint8, q string) {
		r, err := http.NewRequest("GET", paths[int(which)%len(paths)]+"?"+q, nil)
		if err != nil {
			return
		}
		r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: fx.viewer.cookie})
		w := httptest.NewRecorder()
		fx.raw.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("GET %s = %d %s", r.URL, w.Code, w.Body)
		}
	})
}

// A device that could not reach the console when an app was tagged
// Unsanctioned uploads, when it comes back, what it did meanwhile: no "not
// blocked" alert for those records (it could not know); the same device
// reaching the app after its return, still on the old sequence, raises it.
func TestNotBlockedAlertSkipsOfflineRecords(t *testing.T) {
	f := newAnalyticsFixture(t)
	ctx := context.Background()
	old := f.pub.Status().Sequence
	before := time.Now().UTC()
	if err := f.st.SaveCheckins(ctx, []store.Checkin{{DeviceID: "pc-2", At: before.Add(-3 * time.Hour), Known: true, Sequence: old}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if w := f.do(f.admin, "PUT", "/api/apps/dropbox/tag", map[string]string{"tag": "Unsanctioned"}); w.Code != 200 {
		t.Fatalf("tag dropbox = %d %s", w.Code, w.Body)
	}
	// Back after hours of silence (the tag was published meanwhile), still
	// holding the old sequence; ahead of now by less than the hour ingest
	// accepts records from the future.
	back := time.Now().UTC().Add(30 * time.Minute)
	if err := f.st.SaveCheckins(ctx, []store.Checkin{{DeviceID: "pc-2", At: back, Known: true, Sequence: old}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	notBlocked := func() []store.Alert {
		var al struct{ Alerts []store.Alert }
		// The period reaches past the device's return.
		f.getJSON(t, "/api/alerts?from="+before.Add(-time.Hour).Format(time.RFC3339)+"&to="+before.Add(3*time.Hour).Format(time.RFC3339), &al)
		var out []store.Alert
		for _, a := range al.Alerts {
			if a.Kind == store.AlertUnsanctionedNotBlocked {
				out = append(out, a)
			}
		}
		return out
	}
	f.upload(t, "pc-2", "offline",
		rec2(back.Add(-20*time.Minute), "ConnectionSuccess", "https://www.dropbox.com/upload", "bob", ""),
		rec2(back.Add(-time.Minute), "DnsQueryResponse", "www.dropbox.com", "bob", ""))
	if got := notBlocked(); len(got) != 0 {
		t.Errorf("records made offline raised %+v", got)
	}
	f.upload(t, "pc-2", "online",
		rec2(back.Add(-time.Minute), "ConnectionSuccess", "https://www.dropbox.com/upload", "bob", ""),
		rec2(back.Add(time.Minute), "ConnectionSuccess", "https://www.dropbox.com/upload", "bob", ""))
	got := notBlocked()
	if len(got) != 1 || got[0].DeviceID != "pc-2" || got[0].Occurrences != 1 || !got[0].FirstAt.Equal(back.Add(time.Minute).Truncate(time.Millisecond)) || !strings.Contains(got[0].Detail, "stale") {
		t.Errorf("after the device's return: %+v, want one alert for the record made online", got)
	}
}

// A stale device online (checking in on the old sequence) when it reaches
// the app, whose chunk is uploaded after a later silence (lid closed, a
// roam): the record was made online and raises the alert (review finding:
// reading only the current run of check-ins left it out).
func TestNotBlockedAlertKeepsRecordsMadeOnlineBeforeAGap(t *testing.T) {
	f := newAnalyticsFixture(t)
	ctx := context.Background()
	old := f.pub.Status().Sequence
	base := time.Now().UTC()
	const offlineAfter = 601 * time.Second
	checkin := func(at time.Time) {
		t.Helper()
		if err := f.st.SaveCheckins(ctx, []store.Checkin{{DeviceID: "pc-2", At: at, Known: true, Sequence: old}}, offlineAfter); err != nil {
			t.Fatal(err)
		}
	}
	checkin(base.Add(-time.Minute))
	if w := f.do(f.admin, "PUT", "/api/apps/dropbox/tag", map[string]string{"tag": "Unsanctioned"}); w.Code != 200 {
		t.Fatalf("tag dropbox = %d %s", w.Code, w.Body)
	}
	for m := 1; m <= 5; m++ {
		checkin(base.Add(time.Duration(m) * time.Minute))
	}
	checkin(base.Add(16 * time.Minute)) // back after 11 silent minutes
	f.upload(t, "pc-2", "made-online", rec2(base.Add(4*time.Minute), "ConnectionSuccess", "https://www.dropbox.com/upload", "bob", ""))
	var al struct{ Alerts []store.Alert }
	f.getJSON(t, "/api/alerts?from="+base.Add(-time.Hour).Format(time.RFC3339)+"&to="+base.Add(time.Hour).Format(time.RFC3339), &al)
	n := 0
	for _, a := range al.Alerts {
		if a.Kind == store.AlertUnsanctionedNotBlocked && a.DeviceID == "pc-2" {
			n++
		}
	}
	if n != 1 {
		d, _ := f.st.Device(ctx, "pc-2")
		t.Errorf("a record made online at +4m (check-ins +1..+5m, back at +16m) raised %d not-blocked alerts, want 1 (device %+v)", n, d)
	}
}
