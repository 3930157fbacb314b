//go:build linux

package consolee2e

import (
	"bufio"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/console/alerts"
	"github.com/netward/netward/console/alerts/alertstest"
	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/internal/pgtest"
)

// TestAnalyticsStory is issue 18's "done when" with real processes, once
// per store: a console and two enrolled `netward run` agents on loopback
// (DNS proxies over a fake upstream). Warn bypasses on both agents show in
// the app's bypass and distinct-user counts, the machine's apps, users,
// addresses and traffic, and a hunting query; an Unsanctioned access
// raises the alert on a real webhook receiver and real syslog receivers
// (UDP and TCP); an agent held on an old sequence produces the "not
// blocked" alert; CSV exports match the JSON.
func TestAnalyticsStory(t *testing.T) {
	require(t)
	if os.Geteuid() != 0 {
		// The second user's bypass runs as "nobody" (runuser).
		msg := "the analytics story needs root (a bypass by a second local user)"
		if pgtest.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	perStore(t, "e2e18", analyticsStory)
}

// fakeUpstream answers every A query with 203.0.113.10 (the "internet").
func fakeUpstream(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if len(q.Question) == 1 && q.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 203.0.113.10")
			m.Answer = append(m.Answer, rr)
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// freezeProxy passes an agent's feed and uploads to the console until
// frozen; then each feed request still reaches the console (so it is a
// check-in, with the sequence the agent holds) but the agent gets 304: it
// is held on its old sequence, a stale endpoint.
type freezeProxy struct{ frozen atomic.Bool }

func (p *freezeProxy) start(t *testing.T, dataDir, target string) string {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dataDir, "tls", "cert.pem"), filepath.Join(dataDir, "tls", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(target)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the test's own hop
	rp := &httputil.ReverseProxy{Director: func(r *http.Request) { r.URL.Scheme, r.URL.Host = u.Scheme, u.Host }, Transport: tr, FlushInterval: -1}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/v1/indicators" && p.frozen.Load() {
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, target+"/v1/indicators", nil)
			req.Header = r.Header.Clone()
			if resp, err := tr.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusNotModified)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

// receivers are a webhook server checking the HMAC and syslog listeners
// on UDP and TCP (RFC 6587 octet counting), collecting what they got.
type receivers struct {
	mu       sync.Mutex
	webhooks []alerts.WebhookBody
	syslog   map[string][]string // by network
	badSig   atomic.Int64
	web      *httptest.Server
	sl       *alertstest.Syslog
}

func startReceivers(t *testing.T, secret string) *receivers {
	rc := &receivers{syslog: map[string][]string{}}
	rc.web = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if alerts.Signature(secret, r.Header.Get("Netward-Timestamp"), body) != r.Header.Get("Netward-Signature") {
			rc.badSig.Add(1)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var b alerts.WebhookBody
		if json.Unmarshal(body, &b) != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.webhooks = append(rc.webhooks, b)
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.web.Close)
	rc.sl = alertstest.NewSyslog(t)
	go func() {
		for m := range rc.sl.C {
			rc.add(m.Network, m.Text)
		}
	}()
	return rc
}

func (rc *receivers) add(network, msg string) {
	rc.mu.Lock()
	rc.syslog[network] = append(rc.syslog[network], msg)
	rc.mu.Unlock()
}

// got reports whether every receiver has a message of kind for device.
func (rc *receivers) got(kind, device string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	web := false
	for _, b := range rc.webhooks {
		web = web || (b.Alert.Kind == kind && b.Alert.DeviceID == device)
	}
	has := func(network string) bool {
		for _, m := range rc.syslog[network] {
			f, err := alertstest.Parse(m)
			if err == nil && f["pri"] == "36" && f["appName"] == "netward-console" && f["msgId"] == kind && f["kind"] == kind && f["device"] == device {
				return true
			}
		}
		return false
	}
	return web && has("udp") && has("tcp")
}

// console is a running `netward-console serve` and an API client signed
// in as its first admin.
type console struct {
	base, fingerprint string
	log               e2e.SyncBuf
	admin             *admin
}

// startConsole starts the console on cfgPath and signs in with the
// password it prints.
func startConsole(t *testing.T, cfgPath string) *console {
	t.Helper()
	c := &console{}
	srv := exec.Command(bins.console, "serve", "--config", cfgPath)
	out, _ := srv.StdoutPipe()
	srv.Stderr = &c.log
	e2e.Start(t, srv)
	password := ""
	sc := bufio.NewScanner(out)
	for password == "" && sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "netward-console serving "); ok {
			c.base = v
		}
		if _, v, ok := strings.Cut(line, "fingerprint (new self-signed certificate): "); ok {
			c.fingerprint = v
		}
		if i := strings.LastIndex(line, "): "); strings.HasPrefix(line, "initial admin") && i > 0 {
			password = line[i+3:]
		}
	}
	go io.Copy(io.Discard, out)
	if c.base == "" || c.fingerprint == "" || password == "" {
		t.Fatalf("console printed no address, fingerprint or password (%q %q %q); log:\n%s", c.base, c.fingerprint, password, c.log.String())
	}
	jar, _ := cookiejar.New(nil)
	// The test's API client skips verification; agents pin the fingerprint.
	c.admin = &admin{t: t, base: c.base, c: &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	var sess struct {
		CSRFToken string `json:"csrfToken"`
	}
	if code := c.admin.do("POST", "/api/login", map[string]string{"name": "admin", "password": password}, &sess); code != 200 {
		t.Fatalf("login = %d", code)
	}
	c.admin.csrf = sess.CSRFToken
	return c
}

type agentProc struct {
	id, cfg, sock string
	dnsPort       int
	log           e2e.SyncBuf
}

func analyticsStory(t *testing.T, dsn string) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "console")
	cfgPath := filepath.Join(dir, "console.json")
	writeJSON(t, cfgPath, map[string]any{"dataDir": dataDir, "listen": "127.0.0.1:0", "store": map[string]string{"dsn": dsn},
		"feed": map[string]int{"checkinSeconds": 1}})
	con := startConsole(t, cfgPath)
	base, fingerprint, consoleLog, a := con.base, con.fingerprint, &con.log, con.admin

	// Alert receivers.
	const secret = "e2e webhook secret, 32 bytes...."
	rc := startReceivers(t, secret)
	for _, d := range []map[string]any{
		{"name": "soc", "kind": "webhook", "url": rc.web.URL, "secret": secret},
		{"name": "siem-udp", "kind": "syslog", "network": "udp", "address": rc.sl.UDP.LocalAddr().String()},
		{"name": "siem-tcp", "kind": "syslog", "network": "tcp", "address": rc.sl.TCP.Addr().String()},
	} {
		if code := a.do("POST", "/api/alert-destinations", d, nil); code != 200 {
			t.Fatalf("destination %v = %d", d["name"], code)
		}
	}
	for _, app := range []string{"slack", "dropbox"} {
		if code := a.do("PUT", "/api/apps/"+app+"/tag", map[string]string{"tag": "Monitored"}, nil); code != 200 {
			t.Fatalf("tag %s = %d", app, code)
		}
	}
	var key struct {
		Key string `json:"key"`
	}
	if code := a.do("POST", "/api/enrollment-keys", map[string]any{"name": "e2e18", "expiresInHours": 1}, &key); code != 200 {
		t.Fatalf("create key = %d", code)
	}
	keyFile := filepath.Join(dir, "enroll.key")
	os.WriteFile(keyFile, []byte(key.Key+"\n"), 0o600)

	// A directory "nobody" can reach: the control sockets and a copy of
	// the netward binary for the second user's bypass.
	shared, err := os.MkdirTemp("", "i18e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	os.Chmod(shared, 0o755)
	agentBin := filepath.Join(shared, "netward")
	if b, err := os.ReadFile(bins.agent); err != nil || os.WriteFile(agentBin, b, 0o755) != nil {
		t.Fatalf("copy the agent: %v", err)
	}

	upstream := fakeUpstream(t)
	freeze := &freezeProxy{}
	proxyURL := freeze.start(t, dataDir, base)
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	agents := []*agentProc{{id: "i18a-" + suffix}, {id: "i18b-" + suffix}}
	for i, ag := range agents {
		ag.dnsPort = freeDNSPort(t)
		ag.cfg = filepath.Join(dir, ag.id+".json")
		ag.sock = filepath.Join(shared, ag.id+".sock")
		writeJSON(t, ag.cfg, map[string]any{
			"version": 1, "dataDir": filepath.Join(dir, ag.id), "mode": "block",
			"device":     map[string]any{"id": ag.id, "name": ag.id},
			"indicators": map[string]any{"source": "builtin:demo", "longPollSeconds": 60},
			"dns":        map[string]any{"capture": false, "listen": []string{fmt.Sprintf("127.0.0.1:%d", ag.dnsPort)}, "upstreams": []string{upstream}},
			"sni":        map[string]any{"enabled": false},
			"telemetry":  map[string]any{"chunkRecords": 1, "chunkInterval": "1s"},
			"control":    map[string]any{"socket": ag.sock},
		})
		consoleURL := base
		if i == 1 {
			consoleURL = proxyURL // the agent to be held on an old sequence
		}
		if out, err := exec.Command(agentBin, "enroll", "--console", consoleURL, "--key", keyFile, "--fingerprint", fingerprint, "--config", ag.cfg).CombinedOutput(); err != nil {
			t.Fatalf("enroll %s: %v\n%s", ag.id, err, out)
		}
		c := exec.Command(agentBin, "run", "--config", ag.cfg)
		c.Stdout, c.Stderr = &ag.log, &ag.log
		e2e.Start(t, c)
	}
	var feedSt struct {
		Sequence int64 `json:"sequence"`
	}
	a.do("GET", "/api/feed", nil, &feedSt)
	for _, ag := range agents {
		e2e.WaitFor(t, ag.id+" checking in with the published sequence", 60*time.Second, func() bool {
			var d struct {
				Device struct {
					SequenceHeld int64 `json:"sequenceHeld"`
				} `json:"device"`
			}
			return a.do("GET", "/api/devices/"+ag.id, nil, &d) == 200 && d.Device.SequenceHeld == feedSt.Sequence
		}, &ag.log, consoleLog)
	}

	// Hold agent B: from now on its feed requests are check-ins that get
	// 304. Its poll held since before is answered by one more change
	// (Discord Monitored), which B takes; then Dropbox becomes
	// Unsanctioned: A blocks it, B (still warning) does not.
	freeze.frozen.Store(true)
	if code := a.do("PUT", "/api/apps/discord/tag", map[string]string{"tag": "Monitored"}, nil); code != 200 {
		t.Fatal("tag discord")
	}
	a.do("GET", "/api/feed", nil, &feedSt)
	e2e.WaitFor(t, "agent B to check in with its last sequence", 60*time.Second, func() bool {
		var d struct {
			Device struct {
				SequenceHeld int64 `json:"sequenceHeld"`
			} `json:"device"`
		}
		return a.do("GET", "/api/devices/"+agents[1].id, nil, &d) == 200 && d.Device.SequenceHeld == feedSt.Sequence
	}, &agents[1].log, consoleLog)
	if code := a.do("PUT", "/api/apps/dropbox/tag", map[string]string{"tag": "Unsanctioned"}, nil); code != 200 {
		t.Fatal("tag dropbox Unsanctioned")
	}
	tagged := time.Now()
	e2e.WaitFor(t, "agent A to block www.dropbox.com", 10*time.Second, func() bool { return blocked(agents[0].dnsPort, "www.dropbox.com") }, &agents[0].log)

	dig := func(ag *agentProc, name string) string {
		out, _ := exec.Command("dig", "+tries=1", "+time=2", "+short", "-p", strconv.Itoa(ag.dnsPort), "@127.0.0.1", name, "A").CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	bypass := func(ag *agentProc, user, name string) {
		c := exec.Command(agentBin, "bypass", "--socket", ag.sock, name)
		if user != "root" {
			c = exec.Command("runuser", "-u", user, "--", agentBin, "bypass", "--socket", ag.sock, name)
		}
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: netward bypass %s as %s: %v\n%s", ag.id, name, user, err, out)
		}
	}
	// Warn, then a bypass, on both agents, by two users.
	for i, ag := range agents {
		dig(ag, "slack.com")
		bypass(ag, []string{"root", "nobody"}[i], "slack.com")
		if got := dig(ag, "slack.com"); got != "203.0.113.10" {
			t.Errorf("%s: slack.com after the bypass resolves to %q, want the upstream's answer", ag.id, got)
		}
		dig(ag, "app.slack.com")
	}
	// Past the alert grace after the tag: B, on the old sequence, lets its
	// user through to Dropbox — not blocked.
	time.Sleep(time.Until(tagged.Add(11 * time.Second)))
	dig(agents[1], "www.dropbox.com")
	bypass(agents[1], "root", "www.dropbox.com")
	if got := dig(agents[1], "www.dropbox.com"); got != "203.0.113.10" {
		t.Errorf("B: www.dropbox.com = %q after the bypass, want the upstream's answer", got)
	}
	if !blocked(agents[0].dnsPort, "dl.dropbox.com") {
		t.Error("A does not block dl.dropbox.com")
	}

	// The alerts reach all three receivers.
	e2e.WaitFor(t, "the Unsanctioned access alert on the webhook and both syslog receivers", 60*time.Second, func() bool {
		return rc.got("unsanctionedAccess", agents[0].id)
	}, &agents[0].log, consoleLog)
	e2e.WaitFor(t, "the not-blocked alert for the agent on the old sequence", 60*time.Second, func() bool {
		return rc.got("unsanctionedNotBlocked", agents[1].id)
	}, &agents[1].log, consoleLog)
	if n := rc.badSig.Load(); n != 0 {
		t.Errorf("%d webhooks with a bad signature", n)
	}
	var al struct {
		Alerts []struct {
			Kind, DeviceID, AppID, Detail string
		}
	}
	a.do("GET", "/api/alerts", nil, &al)
	for _, x := range al.Alerts {
		if x.Kind == "unsanctionedNotBlocked" && (x.DeviceID != agents[1].id || !strings.Contains(x.Detail, "stale")) {
			t.Errorf("not-blocked alert = %+v, want agent B, stale", x)
		}
	}

	// The discovery views.
	var slack struct {
		Total struct {
			Bypasses int64 `json:"bypasses"`
			Warns    int64 `json:"warns"`
		} `json:"total"`
		BypassUsers int64 `json:"bypassUsers"`
		Machines    []struct {
			Key string `json:"key"`
		} `json:"machines"`
		Users []struct {
			Name     string `json:"name"`
			Bypassed bool   `json:"bypassed"`
		} `json:"users"`
	}
	e2e.WaitFor(t, "both bypasses counted on slack", 60*time.Second, func() bool {
		return a.do("GET", "/api/discovery/apps/slack?period=24h", nil, &slack) == 200 && slack.Total.Bypasses == 2
	}, consoleLog)
	if slack.BypassUsers != 2 || len(slack.Machines) != 2 || slack.Total.Warns < 2 {
		t.Errorf("slack = %+v, want 2 distinct bypassing users on 2 machines, warns", slack)
	}
	// The agents still upload (the blocked dig above): compare the CSV with
	// a JSON answer that was the same before and after it.
	var apps struct {
		Apps []map[string]any `json:"apps"`
	}
	var rows [][]string
	e2e.WaitFor(t, "the apps list to hold still across a JSON, CSV, JSON read", 30*time.Second, func() bool {
		var again struct {
			Apps []map[string]any `json:"apps"`
		}
		a.do("GET", "/api/discovery/apps?period=24h", nil, &apps)
		rows = csvRows(t, a, "/api/discovery/apps?period=24h&format=csv")
		a.do("GET", "/api/discovery/apps?period=24h", nil, &again)
		return reflect.DeepEqual(apps, again)
	}, consoleLog)
	if len(rows) != len(apps.Apps)+1 {
		t.Fatalf("CSV has %d rows for %d apps", len(rows)-1, len(apps.Apps))
	}
	for i, app := range apps.Apps {
		for j, h := range rows[0] {
			if v, ok := app[h]; ok && fmt.Sprint(v) != rows[i+1][j] && !isNumberEqual(v, rows[i+1][j]) {
				t.Errorf("CSV row %d %s = %q, JSON %v", i, h, rows[i+1][j], v)
			}
		}
	}
	var m struct {
		Risk  string `json:"risk"`
		Total struct {
			Transactions int64 `json:"transactions"`
		} `json:"total"`
		Apps []struct {
			AppID string `json:"appId"`
		} `json:"apps"`
		Users []struct {
			Value string `json:"value"`
		} `json:"users"`
		Addresses []struct {
			Value string `json:"value"`
		} `json:"addresses"`
		Series []any `json:"series"`
	}
	a.do("GET", "/api/machines/"+agents[0].id+"?period=24h", nil, &m)
	appIDs := ""
	for _, x := range m.Apps {
		appIDs += x.AppID + " "
	}
	if m.Total.Transactions == 0 || len(m.Series) == 0 || !strings.Contains(appIDs, "slack") || !strings.Contains(appIDs, "dropbox") ||
		len(m.Users) == 0 || m.Users[0].Value != "root" || len(m.Addresses) == 0 {
		t.Errorf("machine A = %+v", m)
	}
	// Its addresses are the machine's own (DeviceInfo): the DNS records of
	// the loopback dig leave LocalIP empty (CONTRACT §6), so no loopback
	// address is in its history.
	for _, ad := range m.Addresses {
		if ip, err := netip.ParseAddr(ad.Value); err != nil || ip.IsLoopback() {
			t.Errorf("machine A's address history holds %q: %+v", ad.Value, m.Addresses)
		}
	}
	var machines struct {
		Machines []struct {
			ID    string `json:"id"`
			Risk  string `json:"risk"`
			Stale bool   `json:"stale"`
		} `json:"machines"`
	}
	a.do("GET", "/api/machines", nil, &machines)
	for _, x := range machines.Machines {
		if x.ID == agents[1].id && (x.Risk != "high" || !x.Stale) {
			t.Errorf("machine B = %+v, want high risk, stale", x)
		}
		if x.ID == agents[0].id && x.Risk != "medium" {
			t.Errorf("machine A = %+v, want medium (an access alert, a bypass)", x)
		}
	}
	var hunt struct {
		Devices []struct {
			DeviceID string `json:"deviceId"`
		} `json:"devices"`
		Events []struct {
			DeviceId, RemoteUrl, ActionType string
		} `json:"events"`
	}
	a.do("GET", "/api/hunt?period=24h&domains=slack.com", nil, &hunt)
	devs := map[string]bool{}
	for _, e := range hunt.Events {
		devs[e.DeviceId] = true
		if e.RemoteUrl != "slack.com" && !strings.HasSuffix(e.RemoteUrl, ".slack.com") {
			t.Errorf("hunt returned %s", e.RemoteUrl)
		}
	}
	if len(hunt.Devices) != 2 || !devs[agents[0].id] || !devs[agents[1].id] {
		t.Errorf("hunt slack.com = %+v, want events of both agents", hunt)
	}
	t.Logf("[%s] slack bypasses %d by %d users; %d alerts; hunt found %d events on %d devices", storeName(dsn), slack.Total.Bypasses, slack.BypassUsers, len(al.Alerts), len(hunt.Events), len(hunt.Devices))
}

// freeDNSPort is a loopback port free for both UDP and TCP (the DNS
// proxy listens on both).
func freeDNSPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			c.Close()
			return port
		}
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return 0
}

func csvRows(t *testing.T, a *admin, path string) [][]string {
	t.Helper()
	resp, err := a.c.Get(a.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CSV %s: %d %v", path, resp.StatusCode, err)
	}
	return rows
}

// isNumberEqual compares a JSON number (float64) with its CSV text.
func isNumberEqual(v any, s string) bool {
	f, ok := v.(float64)
	if !ok {
		return false
	}
	g, err := strconv.ParseFloat(s, 64)
	return err == nil && g == f
}
