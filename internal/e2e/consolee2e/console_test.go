//go:build linux

// Package consolee2e drives the console story of issue 17 with real
// processes, once per store (SQLite and PostgreSQL): netward-console serve,
// an enrollment key from the API, a real `netward run` agent enrolled with
// the pinned fingerprint, a tag through the API enforced by the agent's DNS
// proxy within 2 s, its chunk ingested and counted once after a forced
// retry, and the device revoked. Everything runs on loopback.
package consolee2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/internal/pgtest"
)

var (
	bins  struct{ console, agent string }
	pg    *pgtest.Cluster
	pgErr error
)

func TestMain(m *testing.M) {
	code := func() int {
		if os.Getenv("NETWARD_E2E") == "off" {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "consolee2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// One build of each binary for the whole package.
		for _, b := range []struct {
			dst *string
			pkg string
		}{{&bins.console, "github.com/netward/netward/cmd/netward-console"}, {&bins.agent, "github.com/netward/netward/cmd/netward"}} {
			*b.dst = filepath.Join(dir, filepath.Base(b.pkg))
			if out, err := exec.Command("go", "build", "-o", *b.dst, b.pkg).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b.pkg, err, out)
				return 1
			}
		}
		pg, pgErr = pgtest.Start()
		if pg != nil {
			defer pg.Stop()
		}
		return m.Run()
	}()
	os.Exit(code)
}

func require(t *testing.T) {
	t.Helper()
	if os.Getenv("NETWARD_E2E") == "off" {
		t.Skip("NETWARD_E2E=off")
	}
	var missing []string
	for _, tool := range []string{"dig"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		msg := "console end-to-end test needs " + strings.Join(missing, ", ") + " (apt-get install dnsutils)"
		if os.Getenv("NETWARD_E2E") == "require" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// admin is an API client signed in as the first admin.
type admin struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func (a *admin) do(method, path string, in any, out any) int {
	a.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, body)
	if a.csrf != "" {
		req.Header.Set("X-CSRF-Token", a.csrf)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		a.t.Logf("%s %s = %d: %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

var (
	statusRE = regexp.MustCompile(`status: (\w+)`)
	edeRE    = regexp.MustCompile(`EDE: 15 \(Blocked\)`)
)

func blocked(port int, name string) bool {
	out, _ := exec.Command("dig", "+tries=1", "+time=1", "-p", fmt.Sprint(port), "@127.0.0.1", name, "A").CombinedOutput()
	st := statusRE.FindSubmatch(out)
	return st != nil && string(st[1]) == "NXDOMAIN" && edeRE.Match(out)
}

// retryProxy stands between the agent and the console with the console's
// own certificate (so the pinned fingerprint matches) and, for the first
// telemetry upload, passes the request on but drops the answer: the chunk is
// stored, the agent never hears it, and must retry.
type retryProxy struct {
	dropped atomic.Int64
	puts    atomic.Int64
}

func (p *retryProxy) start(t *testing.T, dataDir, target string) string {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dataDir, "tls", "cert.pem"), filepath.Join(dataDir, "tls", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(target)
	rp := &httputil.ReverseProxy{
		Director: func(r *http.Request) { r.URL.Scheme, r.URL.Host = u.Scheme, u.Host },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test's own hop
			ResponseHeaderTimeout: 0},
		FlushInterval: -1,
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/telemetry/") {
			p.puts.Add(1)
			if p.dropped.Load() == 0 {
				body, _ := io.ReadAll(r.Body)
				req, _ := http.NewRequest(http.MethodPut, target+r.URL.Path, bytes.NewReader(body))
				req.Header = r.Header.Clone()
				resp, err := rp.Transport.RoundTrip(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusCreated {
						p.dropped.Add(1)
						panic(http.ErrAbortHandler) // the answer never reaches the agent
					}
					w.WriteHeader(resp.StatusCode)
					return
				}
			}
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

func TestConsoleStory(t *testing.T) {
	require(t)
	perStore(t, "e2e", story)
}

// perStore runs f on SQLite (dsn "") and on a new database of the
// private PostgreSQL cluster.
func perStore(t *testing.T, prefix string, f func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, "") })
	t.Run("postgres", func(t *testing.T) {
		if pg == nil {
			msg := fmt.Sprintf("the PostgreSQL run needs a private cluster: %v", pgErr)
			if pgtest.Required() {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		dsn, err := pg.NewDatabase(prefix)
		if err != nil {
			t.Fatal(err)
		}
		f(t, dsn)
	})
}

func story(t *testing.T, dsn string) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "console")
	cfg := map[string]any{"dataDir": dataDir, "listen": "127.0.0.1:0", "store": map[string]string{"dsn": dsn},
		"feed": map[string]int{"checkinSeconds": 1}}
	cfgPath := filepath.Join(dir, "console.json")
	writeJSON(t, cfgPath, cfg)

	// 1. Start the console; read its address, fingerprint and password.
	con := startConsole(t, cfgPath)
	base, fingerprint, consoleLog, a := con.base, con.fingerprint, &con.log, con.admin

	// 2. An enrollment key.
	var key struct {
		Key           string `json:"key"`
		EnrollCommand string `json:"enrollCommand"`
	}
	if code := a.do("POST", "/api/enrollment-keys", map[string]any{"name": "e2e", "expiresInHours": 1}, &key); code != 200 {
		t.Fatalf("create key = %d", code)
	}
	keyFile := filepath.Join(dir, "enroll.key")
	if err := os.WriteFile(keyFile, []byte(key.Key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// 3. Enroll a real agent through the retry proxy, pinning the fingerprint.
	proxy := &retryProxy{}
	proxyURL := proxy.start(t, dataDir, base)
	dnsPort := freePort(t, "udp")
	agentDir := filepath.Join(dir, "agent")
	agentCfg := filepath.Join(dir, "agent.json")
	writeJSON(t, agentCfg, map[string]any{
		"version": 1, "dataDir": agentDir, "mode": "block",
		"indicators": map[string]any{"source": "builtin:demo", "longPollSeconds": 60},
		"dns":        map[string]any{"capture": false, "listen": []string{fmt.Sprintf("127.0.0.1:%d", dnsPort)}, "upstreams": []string{"127.0.0.1:9"}},
		"sni":        map[string]any{"enabled": false},
		"telemetry":  map[string]any{"chunkRecords": 1, "chunkInterval": "1s"},
		"control":    map[string]any{"socket": filepath.Join(dir, "netward.sock")},
	})
	enroll := exec.Command(bins.agent, "enroll", "--console", proxyURL, "--key", keyFile, "--fingerprint", fingerprint, "--config", agentCfg, "--json")
	eout, err := enroll.CombinedOutput()
	if err != nil {
		t.Fatalf("netward enroll: %v\n%s\nconsole log:\n%s", err, eout, consoleLog.String())
	}
	var enrolled struct {
		DeviceID string `json:"deviceId"`
	}
	if err := json.Unmarshal(eout, &enrolled); err != nil || enrolled.DeviceID == "" {
		t.Fatalf("netward enroll --json: %v: %s", err, eout)
	}
	tokenPath := filepath.Join(agentDir, "device-token")
	if st, err := os.Stat(tokenPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("device token %s: %v %v, want mode 0600", tokenPath, st.Mode(), err)
	}
	// A wrong fingerprint is refused before any key is sent.
	bad := exec.Command(bins.agent, "enroll", "--console", proxyURL, "--key", keyFile, "--fingerprint", strings.Repeat("00:", 31)+"00", "--config", agentCfg)
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "pinned") {
		t.Errorf("enroll with a wrong fingerprint: %v: %s", err, out)
	}

	// Another install on this machine (same device id, no token) holding the
	// key cannot take the device over; the refusal says what to do. The
	// enrolled agent re-enrolls by proving its token (review of issue 17, #1).
	otherCfg := filepath.Join(dir, "other.json")
	writeJSON(t, otherCfg, map[string]any{"version": 1, "dataDir": filepath.Join(dir, "other"), "control": map[string]any{"socket": filepath.Join(dir, "other.sock")}})
	takeover := exec.Command(bins.agent, "enroll", "--console", proxyURL, "--key", keyFile, "--fingerprint", fingerprint, "--config", otherCfg)
	if out, err := takeover.CombinedOutput(); err == nil || !strings.Contains(string(out), "allow-reenroll") {
		t.Errorf("enroll of an enrolled id without its token: %v: %s; want refused with the steps", err, out)
	}
	again := exec.Command(bins.agent, "enroll", "--console", proxyURL, "--key", keyFile, "--fingerprint", fingerprint, "--config", agentCfg)
	if out, err := again.CombinedOutput(); err != nil {
		t.Errorf("re-enroll of the enrolled agent: %v: %s", err, out)
	}

	var agentLog e2e.SyncBuf
	ag := exec.Command(bins.agent, "run", "--config", agentCfg)
	ag.Stdout, ag.Stderr = &agentLog, &agentLog
	e2e.Start(t, ag)
	dev := enrolled.DeviceID
	e2e.WaitFor(t, "the agent's first feed request (check-in)", 20*time.Second, func() bool {
		var d struct {
			Device struct {
				LastSeenAt time.Time `json:"lastSeenAt"`
			} `json:"device"`
		}
		return a.do("GET", "/api/devices/"+dev, nil, &d) == 200 && !d.Device.LastSeenAt.IsZero()
	}, &agentLog, consoleLog)
	time.Sleep(300 * time.Millisecond) // the agent's long poll is now held
	if blocked(dnsPort, "www.dropbox.com") {
		t.Fatal("www.dropbox.com is blocked before any tag")
	}

	// 4. Tag Dropbox Unsanctioned; the agent must block within 2 s.
	t0 := time.Now()
	if code := a.do("PUT", "/api/apps/dropbox/tag", map[string]string{"tag": "Unsanctioned"}, nil); code != 200 {
		t.Fatalf("tag = %d", code)
	}
	apiDone := time.Since(t0)
	e2e.WaitFor(t, "dig through the agent to be blocked", 10*time.Second, func() bool { return blocked(dnsPort, "www.dropbox.com") }, &agentLog)
	took := time.Since(t0)
	// The agent's next feed request checks in (Netward-Agent): the console
	// knows its version, OS and that it holds the new sequence.
	var feedSt struct {
		Sequence int64 `json:"sequence"`
	}
	a.do("GET", "/api/feed", nil, &feedSt)
	var checkin struct {
		Device struct {
			CheckinKnown bool   `json:"checkinKnown"`
			AgentVersion string `json:"agentVersion"`
			OSPlatform   string `json:"osPlatform"`
			SequenceHeld int64  `json:"sequenceHeld"`
			Stale        bool   `json:"stale"`
		} `json:"device"`
	}
	e2e.WaitFor(t, "the check-in with the new sequence", 10*time.Second, func() bool {
		return a.do("GET", "/api/devices/"+dev, nil, &checkin) == 200 && checkin.Device.SequenceHeld == feedSt.Sequence
	}, &agentLog)
	if d := checkin.Device; !d.CheckinKnown || d.AgentVersion == "" || d.OSPlatform != "linux" || d.Stale {
		t.Errorf("check-in = %+v, want a known linux agent holding sequence %d, not stale", d, feedSt.Sequence)
	}
	t.Logf("tag → enforcement: %v (API call %v) [%s]", took.Round(time.Millisecond), apiDone.Round(time.Millisecond), storeName(dsn))
	if took > 2*time.Second {
		t.Errorf("the tag took %v to reach the agent, want ≤ 2 s", took)
	}

	// 5. The block is a record; its chunk is uploaded, the proxy drops the
	// console's 201, the agent retries, the console answers 200 and counts
	// it once.
	e2e.WaitFor(t, "a chunk stored, its answer dropped and the upload retried", 30*time.Second, func() bool {
		return proxy.dropped.Load() == 1 && proxy.puts.Load() >= 2
	}, &agentLog)
	var ing struct {
		Created    int64 `json:"created"`
		Duplicates int64 `json:"duplicates"`
	}
	e2e.WaitFor(t, "the retried chunk acknowledged as a duplicate", 10*time.Second, func() bool {
		return a.do("GET", "/api/ingest", nil, &ing) == 200 && ing.Duplicates >= 1
	}, &agentLog, consoleLog)
	time.Sleep(1500 * time.Millisecond) // let any chunk in flight land
	a.do("GET", "/api/ingest", nil, &ing)
	blocksInChunks, chunks := countRaw(t, filepath.Join(dataDir, "chunks"), "NetworkProtectionBlocked")
	var traffic struct {
		Total struct {
			Blocks int64 `json:"blocks"`
		} `json:"total"`
		ByAppAndDomain []struct {
			AppID  string `json:"appId"`
			Domain string `json:"domain"`
			Blocks int64  `json:"blocks"`
		} `json:"byAppAndDomain"`
	}
	a.do("GET", "/api/devices/"+dev+"/traffic", nil, &traffic)
	if blocksInChunks == 0 || traffic.Total.Blocks != blocksInChunks || int64(chunks) != ing.Created {
		t.Errorf("raw chunks hold %d blocks in %d chunks; the console counted %d blocks from %d chunks (%d duplicates): want each chunk counted once",
			blocksInChunks, chunks, traffic.Total.Blocks, ing.Created, ing.Duplicates)
	}
	found := false
	for _, r := range traffic.ByAppAndDomain {
		found = found || (r.AppID == "dropbox" && r.Domain == "www.dropbox.com" && r.Blocks > 0)
	}
	if !found {
		t.Errorf("no dropbox / www.dropbox.com blocks in %+v", traffic.ByAppAndDomain)
	}
	t.Logf("ingest: %d chunks created, %d duplicate retries, %d blocks counted [%s]", ing.Created, ing.Duplicates, traffic.Total.Blocks, storeName(dsn))

	// 6. Revoke the device: its polls and uploads are refused.
	if code := a.do("POST", "/api/devices/"+dev+"/revoke", nil, nil); code != 200 {
		t.Fatalf("revoke = %d", code)
	}
	tok, _ := os.ReadFile(tokenPath)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequest("GET", base+"/v1/indicators", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("feed poll after revoke: %v %v, want 403", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	fmt.Fprintf(zw, `{"Timestamp":"%s","DeviceId":"%s","ActionType":"ConnectionSuccess"}`+"\n", time.Now().UTC().Format(time.RFC3339), dev)
	zw.Close()
	req, _ = http.NewRequest("PUT", base+"/v1/telemetry/"+dev+"/after-revoke", &zb)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/x-ndjson")
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("upload after revoke: %v %v, want 403", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	// The running agent's own next upload is refused too.
	blocked(dnsPort, "dropbox.com")
	e2e.WaitFor(t, "the agent's upload refused after revocation", 20*time.Second, func() bool {
		return strings.Contains(agentLog.String(), "status=403")
	}, &agentLog)
}

func storeName(dsn string) string {
	if dsn == "" {
		return "SQLite"
	}
	return "PostgreSQL"
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// countRaw counts the records with action in the stored raw chunks.
func countRaw(t *testing.T, dir, action string) (records int64, chunks int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".ndjson.gz") {
			return err
		}
		chunks++
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(zr)
		for sc.Scan() {
			if bytes.Contains(sc.Bytes(), []byte(`"ActionType":"`+action+`"`)) {
				records++
			}
		}
		return sc.Err()
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return records, chunks
}
