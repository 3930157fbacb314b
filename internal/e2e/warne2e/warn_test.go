// Package warne2e is the end-to-end test of the warn/block/bypass flow with
// real clients (dig, curl) in network namespaces: a "client" namespace runs
// the netward binary (DNS proxy + warn pages + control API) and an "internet"
// namespace runs a real DNS server (dnsmasq) and a real web server on
// documentation addresses.
//
// It drives the CLI verbs `run`, `status` and `bypass` (a missing verb fails
// the test). It skips, saying so, while the agent cannot load a file://
// indicator source yet.
package warne2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
)

const (
	clientAddr = "192.0.2.1"
	inetAddr   = "192.0.2.2"
	sinkAddr   = "127.0.0.154"
	realBody   = "REAL SITE netward-e2e"
	envWeb     = "NWWARN_WEB_LISTEN"
)

func TestMain(m *testing.M) { os.Exit(e2e.Main(m)) }

// TestRealSiteChild is the "real site", the child process TestWarnBypassEndToEnd
// runs inside the internet namespace: it serves realBody on NWWARN_WEB_LISTEN
// and nothing else, until killed.
func TestRealSiteChild(t *testing.T) {
	if !e2e.IsChild(t) {
		t.Skip("child process of TestWarnBypassEndToEnd")
	}
	ln, err := net.Listen("tcp", os.Getenv(envWeb))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s\n", realBody, r.URL.Path)
	})}
	t.Fatal(srv.Serve(ln))
}

// requireVerbs fails unless the binary has every verb this test drives: the
// binary is built from this tree, so a missing verb is a bug, not a reason
// to skip.
func requireVerbs(t *testing.T, bin string, verbs ...string) {
	t.Helper()
	for _, v := range verbs {
		out, err := exec.Command(bin, v, "--help").CombinedOutput()
		if err != nil || strings.Contains(string(out), "unknown command") {
			t.Fatalf("netward %s --help: %v: %s", v, err, strings.TrimSpace(string(out)))
		}
	}
}

// statusJSON is the part of `netward status --json` this test reads.
type statusJSON struct {
	Indicators struct {
		Version string `json:"version"`
		Total   int    `json:"total"`
	} `json:"indicators"`
	Interception struct {
		DNS bool `json:"dns"`
	} `json:"interception"`
}

const indicatorsJSON = `{"version": "1", "generatedAt": "2026-11-22T10:00:00Z",
 "settings": {"mode": "block", "warnRedirectUrl": "https://intranet.example/apps",
              "blockRedirectUrl": "https://intranet.example/blocked", "bypassDurationHours": 24},
 "indicators": [
  {"id": "1", "indicatorValue": "warned.test", "indicatorType": "DomainName", "action": "Warn",
   "title": "Monitored app: Demo", "application": "Demo", "applicationId": "100"},
  {"id": "2", "indicatorValue": "short.test", "indicatorType": "DomainName", "action": "Warn",
   "title": "Short bypass", "bypassDurationHours": 0.001},
  {"id": "3", "indicatorValue": "blocked.test", "indicatorType": "DomainName", "action": "Block",
   "title": "Unsanctioned app"}]}`

func TestWarnBypassEndToEnd(t *testing.T) {
	e2e.Require(t, "dig", "curl", "dnsmasq")
	bin := e2e.Build(t, "github.com/netward/netward/cmd/netward")
	requireVerbs(t, bin, "run", "status", "bypass")

	client := e2e.NewNetns(t, "nwwarn-c")
	inet := e2e.NewNetns(t, "nwwarn-i")
	e2e.Link(t, client, []string{clientAddr + "/24"}, inet, []string{inetAddr + "/24"})

	// The internet: dnsmasq answers every test name with the real server.
	dns := inet.Cmd("dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address="+inetAddr, "--port=53", "--user=root",
		"--address=/warned.test/"+inetAddr, "--address=/short.test/"+inetAddr, "--address=/blocked.test/"+inetAddr)
	startBackground(t, dns)
	startBackground(t, inet.ChildCmd("TestRealSiteChild", envWeb+"="+inetAddr+":80"))

	// The client's resolver is netward (ip netns exec bind-mounts this file).
	etc := filepath.Join("/etc/netns", client.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	ind := filepath.Join(dir, "indicators.json")
	if err := os.WriteFile(ind, []byte(indicatorsJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "netward.json")
	sock := filepath.Join(dir, "netward.sock")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"version": 1, "dataDir": %q, "mode": "block",
 "indicators": {"source": "file://%s"},
 "dns": {"capture": false, "listen": ["127.0.0.1:53"], "upstreams": ["%s:53"], "blockAnswer": "nxdomain", "syntheticTtlSeconds": 2},
 "sni": {"enabled": false},
 "warn": {"sinkAddress": %q},
 "control": {"socket": %q}}`, filepath.Join(dir, "data"), ind, inetAddr, sinkAddr, sock)), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := client.Cmd(bin, "run", "--config", cfg, "--log-level", "debug")
	logf, _ := os.Create(filepath.Join(dir, "agent.log"))
	agent.Stdout, agent.Stderr = logf, logf
	startBackground(t, agent)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
			t.Logf("agent log:\n%s", b)
		}
	})

	digA := func(name string) string {
		out, _ := client.Run("dig", "+short", "+tries=1", "+time=2", "@127.0.0.1", name, "A")
		return strings.TrimSpace(out)
	}
	waitFor := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		e2e.WaitFor(t, what, d, cond)
	}
	// The agent must have loaded the file:// source before anything else
	// means something: wait for `netward status --json` to report it.
	var st statusJSON
	waitFor("netward status --json to report indicator set 1", 20*time.Second, func() bool {
		out, err := client.Run(bin, "status", "--json", "--config", cfg)
		return err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Indicators.Version == "1"
	})
	if st.Indicators.Total != 3 || !st.Interception.DNS {
		t.Errorf("status = %+v, want 3 indicators and the DNS proxy on", st)
	}
	waitFor("the warned name to resolve to the sink", 20*time.Second, func() bool { return digA("warned.test") == sinkAddr })

	jar := filepath.Join(dir, "cookies")
	curl := func(args ...string) string {
		out, _ := client.Run("curl", append([]string{"-s", "--max-time", "5", "-b", jar, "-c", jar}, args...)...)
		return out
	}

	// 1. The warn page.
	page := curl("http://warned.test/x")
	for _, want := range []string{"Continue to warned.test", "Monitored app: Demo", "https://intranet.example/apps"} {
		if !strings.Contains(page, want) {
			t.Fatalf("warn page lacks %q:\n%s", want, page)
		}
	}
	m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no token on the warn page")
	}
	token := m[1]

	// 2. Continue without a valid token, or from another origin: refused.
	for name, args := range map[string][]string{
		"no token":       {"-H", "Origin: http://warned.test", "--data", "path=/x"},
		"foreign origin": {"-H", "Origin: http://evil.example", "--data-urlencode", "token=" + token, "--data", "path=/x"},
	} {
		code := curl(append([]string{"-o", "/dev/null", "-w", "%{http_code}"}, append(args, "http://warned.test/.netward/continue")...)...)
		if code != "403" {
			t.Errorf("Continue with %s: HTTP %s, want 403", name, code)
		}
	}
	if got := digA("warned.test"); got != sinkAddr {
		t.Fatalf("a refused Continue changed the DNS answer: %q", got)
	}

	// 3. A valid Continue: the next DNS answer is real and curl reaches the
	// real server in the internet namespace.
	code := curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Origin: http://warned.test",
		"--data-urlencode", "token="+token, "--data", "path=/x", "http://warned.test/.netward/continue")
	if code != "303" {
		t.Fatalf("valid Continue: HTTP %s, want 303", code)
	}
	waitFor("the real answer for warned.test", 5*time.Second, func() bool { return digA("warned.test") == inetAddr })
	if body := curl("http://warned.test/x"); !strings.Contains(body, realBody) {
		t.Errorf("after Continue curl got %q, want the real site", body)
	}
	list, _ := client.Run(bin, "bypass", "--list", "--config", cfg)
	if !strings.Contains(list, "Demo") {
		t.Errorf("netward bypass --list does not show the Demo bypass:\n%s", list)
	}

	// 4. A short bypass (3.6 s) expires and the warning returns.
	if out, err := client.Run(bin, "bypass", "short.test", "--config", cfg); err != nil {
		t.Fatalf("netward bypass short.test: %v\n%s", err, out)
	}
	if got := digA("short.test"); got != inetAddr {
		t.Errorf("short.test right after bypass: %q, want %s", got, inetAddr)
	}
	waitFor("the short bypass to expire", 10*time.Second, func() bool { return digA("short.test") == sinkAddr })
	if page := curl("http://short.test/"); !strings.Contains(page, "Continue to short.test") {
		t.Errorf("after expiry: no warn page:\n%s", page)
	}

	// 5. A block cannot be bypassed: exit 1.
	c := client.Cmd(bin, "bypass", "blocked.test", "--config", cfg)
	out, err := c.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("netward bypass blocked.test: %v, want exit 1\n%s", err, out)
	}
	if got := digA("blocked.test"); got != "" {
		t.Errorf("blocked.test resolves to %q after a refused bypass, want NXDOMAIN", got)
	}
}

// startBackground starts c and stops it (SIGTERM, then kill) when the test ends.
func startBackground(t *testing.T, c *exec.Cmd) {
	t.Helper()
	if err := c.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(c.Args, " "), err)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = c.Process.Signal(os.Interrupt)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		select {
		case <-done:
		case <-ctx.Done():
			_ = c.Process.Kill()
			<-done
		}
	})
}
