//go:build linux

// Package discoverye2e checks what a machine reports for the console's
// machine and app views (issue 16) with the real `netward run` in a
// network namespace: two local users browse, one through a real forward
// proxy (tinyproxy), and the chunks the collector received must give the
// machine's apps, users, addresses and traffic — and nothing of the
// agent's own traffic.
package discoverye2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/telemetry"
)

// The fake internet: dnsmasq, the collector and tinyproxy on inetAddr, the
// web site on siteAddr; the endpoint on hostAddr (its veth: what the IP
// address history must show, never loopback).
const (
	inetAddr  = "192.0.2.1"
	siteAddr  = "192.0.2.2"
	hostAddr  = "192.0.2.100"
	proxyPort = 8888
	collPort  = 8480
)

const indicators = `{"version": "1", "generatedAt": "2026-12-01T10:00:00Z", "settings": {"mode": "block"},
 "indicators": [
  {"id": "1", "indicatorValue": "blocked.example", "indicatorType": "DomainName", "action": "Block", "title": "e2e block"},
  {"id": "2", "indicatorValue": "blocked2.example", "indicatorType": "DomainName", "action": "Block", "title": "e2e block via proxy"}]}`

// TestSiteChild serves the web site in the internet namespace: HTTPS on
// :443 for any name (self-signed), /down?n=N sends N bytes, /up reads the
// body.
func TestSiteChild(t *testing.T) {
	if !e2e.IsChild(t) {
		t.Skip("child process of TestDiscoveryE2E")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "site"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"*.example", "www.example.com"}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	mux := http.NewServeMux()
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(bytes.Repeat([]byte("d"), n))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "read %d\n", n)
	})
	ln, err := net.Listen("tcp", os.Getenv("SITE_ADDR"))
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}
	go func() { <-ctx.Done(); srv.Close() }()
	_ = srv.ServeTLS(ln, "", "")
	os.Exit(0)
}

func start(t *testing.T, c interface{ Start() error }, name string) {
	t.Helper()
	if err := c.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
}

// chunkRecords reads every record of every chunk the collector stored.
func chunkRecords(t *testing.T, dir string) []telemetry.Record {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.ndjson.gz"))
	var out []telemetry.Record
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r telemetry.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %q: %v", f, sc.Bytes(), err)
			}
			out = append(out, r)
		}
	}
	return out
}

func TestDiscoveryE2E(t *testing.T) {
	e2e.Require(t, "curl", "dnsmasq", "tinyproxy", "setpriv", "nft", "go", "conntrack")
	netward := e2e.Build(t, "github.com/netward/netward/cmd/netward")
	console := e2e.Build(t, "github.com/netward/netward/cmd/netward-console")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)

	host := e2e.NewNetns(t, "i16h")
	inet := e2e.NewNetns(t, "i16i")
	e2e.Link(t, host, []string{hostAddr + "/24"}, inet, []string{inetAddr + "/24", siteAddr + "/24"})
	// Finished TCP flows leave conntrack at once (not after 2 min of
	// TIME_WAIT), so their flow records come while the test waits.
	host.Must(t, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1",
		"net.netfilter.nf_conntrack_tcp_timeout_close=1", "net.netfilter.nf_conntrack_tcp_timeout_fin_wait=1",
		"net.netfilter.nf_conntrack_tcp_timeout_last_ack=1", "net.netfilter.nf_conntrack_tcp_timeout_close_wait=1",
		"net.netfilter.nf_conntrack_udp_timeout=2")

	for _, ns := range []*e2e.Netns{host, inet} {
		etc := filepath.Join("/etc/netns", ns.Name)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(etc) })
		if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+inetAddr+"\noptions timeout:2 attempts:2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The internet: DNS, the site, the collector, the forward proxy.
	dnsmasq := inet.Cmd("dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address="+inetAddr, "--port=53", "--user=root", "--address=/example/"+siteAddr, "--address=/example.com/"+siteAddr)
	start(t, dnsmasq, "dnsmasq")
	t.Cleanup(func() { dnsmasq.Process.Kill(); dnsmasq.Wait() })
	e2e.Start(t, inet.ChildCmd("TestSiteChild", "SITE_ADDR="+siteAddr+":443"))
	coll := filepath.Join(dir, "collector")
	var collLog e2e.SyncBuf
	cc := inet.Cmd(console, "collect", "--dir", coll, "--listen", fmt.Sprintf("%s:%d", inetAddr, collPort), "--no-auth")
	cc.Stdout, cc.Stderr = &collLog, &collLog
	e2e.Start(t, cc)
	tpConf := filepath.Join(dir, "tinyproxy.conf")
	os.WriteFile(tpConf, []byte(fmt.Sprintf("User nobody\nGroup nogroup\nPort %d\nListen %s\nAllow 192.0.2.0/24\nConnectPort 443\nMaxClients 20\nLogLevel Info\n", proxyPort, inetAddr)), 0o644)
	var tpLog e2e.SyncBuf
	tp := inet.Cmd("tinyproxy", "-d", "-c", tpConf)
	tp.Stdout, tp.Stderr = &tpLog, &tpLog
	e2e.Start(t, tp)

	// The agent, with every default of issue 16: answers recorded,
	// deduplicated, the agent's own traffic left out, device.id auto.
	ind := filepath.Join(dir, "indicators.json")
	os.WriteFile(ind, []byte(indicators), 0o644)
	cfg := filepath.Join(dir, "netward.json")
	sock := filepath.Join(dir, "netward.sock")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`{"version": 1, "dataDir": %q, "mode": "block",
 "indicators": {"source": "file://%s"},
 "dns": {"capture": true, "listen": ["127.0.0.153:53"], "upstreams": ["%s"]},
 "sni": {"enabled": true, "proxyPorts": [%d]},
 "telemetry": {"endpoint": "http://%s:%d", "chunkInterval": "2s", "dedupWindow": "5s"},
 "control": {"socket": %q}}`, filepath.Join(dir, "data"), ind, inetAddr, proxyPort, inetAddr, collPort, sock)), 0o644)
	var agentLog e2e.SyncBuf
	agent := host.Cmd(netward, "run", "--config", cfg, "--log-level", "debug")
	agent.Stdout, agent.Stderr = &agentLog, &agentLog
	stopAgent := e2e.Start(t, agent)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s\ncollector log:\n%s\ntinyproxy log:\n%s", agentLog.String(), collLog.String(), tpLog.String())
		}
	})
	var status struct {
		Indicators struct{ Version string } `json:"indicators"`
		Telemetry  struct {
			DeviceID string `json:"deviceId"`
			Flows    *struct {
				Records      uint64  `json:"records"`
				UnnamedShare float64 `json:"unnamedShare"`
			} `json:"flows"`
			DNSAnswers *struct{ Received uint64 } `json:"dnsAnswers"`
		} `json:"telemetry"`
	}
	e2e.WaitFor(t, "the agent to enforce the indicator set", 30*time.Second, func() bool {
		out, err := host.Run(netward, "status", "--json", "--config", cfg)
		return err == nil && json.Unmarshal([]byte(out), &status) == nil && status.Indicators.Version == "1"
	}, &agentLog)
	if status.Telemetry.DeviceID == "" || status.Telemetry.DeviceID == "auto" {
		t.Errorf("status shows device id %q, want device.id auto resolved", status.Telemetry.DeviceID)
	}

	// Two users browse: nobody directly, daemon through the proxy.
	var stdin []byte
	as := func(uid string, args ...string) (string, error) {
		a := append([]string{"--reuid=" + uid, "--regid=" + uid, "--clear-groups", "curl", "-sk", "--max-time", "10"}, args...)
		c := host.Cmd("setpriv", a...)
		c.Stdin = bytes.NewReader(stdin)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := as("65534", "-o", "/dev/null", "https://www.example.com/down?n=200000"); err != nil {
		t.Fatalf("nobody: download: %v %s", err, out)
	}
	stdin = bytes.Repeat([]byte("u"), 100_000)
	if out, err := as("65534", "--data-binary", "@-", "https://www.example.com/up"); err != nil || !strings.Contains(out, "read 100000") {
		t.Fatalf("nobody: upload: %v %s", err, out)
	}
	stdin = nil
	if out, err := as("65534", "https://blocked.example/"); err == nil {
		t.Errorf("nobody reached blocked.example: %s", out)
	}
	proxy := fmt.Sprintf("http://%s:%d", inetAddr, proxyPort)
	if out, err := as("1", "-x", proxy, "-o", "/dev/null", "https://shop.example/down?n=50000"); err != nil {
		t.Fatalf("daemon: through the proxy: %v %s", err, out)
	}
	if out, err := as("1", "-x", proxy, "https://blocked2.example/"); err == nil {
		t.Errorf("daemon reached blocked2.example through the proxy: %s", out)
	}

	// Wait for the chunks to say it all.
	find := func(recs []telemetry.Record, f func(telemetry.Record) bool) (telemetry.Record, bool) {
		for _, r := range recs {
			if f(r) {
				return r, true
			}
		}
		return telemetry.Record{}, false
	}
	type want struct {
		what string
		f    func(telemetry.Record) bool
	}
	wants := []want{
		{"nobody's allowed DNS answer from the veth address", func(r telemetry.Record) bool {
			return r.ActionType == telemetry.DnsQueryResponse && r.RemoteUrl == "www.example.com" && r.LocalIP == hostAddr && r.InitiatingProcessAccountName == "nobody"
		}},
		{"nobody's download, named, with bytes down", func(r telemetry.Record) bool {
			return r.ActionType == telemetry.ConnectionSuccess && r.Source == telemetry.SourceConntrack && r.RemoteUrl == "www.example.com" &&
				r.BytesReceived > 200_000 && r.InitiatingProcessAccountName == "nobody" && r.InitiatingProcessFileName == "curl" && r.LocalIP == hostAddr
		}},
		{"nobody's upload, with bytes up", func(r telemetry.Record) bool {
			return r.ActionType == telemetry.ConnectionSuccess && r.RemoteUrl == "www.example.com" && r.BytesSent > 100_000 && r.InitiatingProcessAccountName == "nobody"
		}},
		{"the blocked name", func(r telemetry.Record) bool {
			return r.ActionType == telemetry.NetworkProtectionBlocked && r.RemoteUrl == "blocked.example"
		}},
		{"daemon's download through the proxy, named by the tunnel's SNI", func(r telemetry.Record) bool {
			return r.ActionType == telemetry.ConnectionSuccess && r.RemoteUrl == "shop.example" && r.RemoteIP == inetAddr &&
				r.RemotePort == proxyPort && r.BytesReceived > 50_000 && r.InitiatingProcessAccountName == "daemon"
		}},
		{"the name blocked at the proxy's CONNECT", func(r telemetry.Record) bool {
			return r.ActionType == telemetry.NetworkProtectionBlocked && r.RemoteUrl == "blocked2.example" && r.Source == telemetry.SourceHTTP
		}},
		{"a machine record with the veth address", func(r telemetry.Record) bool {
			if r.ActionType != telemetry.DeviceInfo || r.OSPlatform != "linux" || r.AgentVersion == "" {
				return false
			}
			for _, a := range r.IPAddresses {
				if a.Address == hostAddr && a.Mac != "" {
					return true
				}
			}
			return false
		}},
	}
	var recs []telemetry.Record
	var missing []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		// A finished flow's record comes with its DESTROY event, and the
		// kernel destroys an expired entry lazily: its garbage collector
		// visits a near-empty table about once a minute, so the records
		// came 50 s after the traffic, near this deadline. A dump of the
		// table evicts what has expired at once (ctnetlink, as the agent's
		// own dump every 5 minutes does); the agent is not told to dump.
		_, _ = host.Run("conntrack", "-L")
		recs = chunkRecords(t, coll)
		missing = missing[:0]
		for _, w := range wants {
			if _, ok := find(recs, w.f); !ok {
				missing = append(missing, w.what)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, r := range recs {
				b, _ := json.Marshal(r)
				t.Logf("record %s", b)
			}
			t.Fatalf("after 60 s the chunks lack: %s", strings.Join(missing, "; "))
		}
	}
	stopAgent()

	users := map[string]bool{}
	for _, r := range recs {
		if r.DeviceId != status.Telemetry.DeviceID {
			t.Errorf("record with device id %q, want %q: %+v", r.DeviceId, status.Telemetry.DeviceID, r)
		}
		if strings.HasPrefix(r.LocalIP, "127.") || r.LocalIP == "::1" {
			t.Errorf("a loopback LocalIP: %+v", r)
		}
		for _, a := range r.IPAddresses {
			if strings.HasPrefix(a.Address, "127.") || a.Address == "::1" {
				t.Errorf("a loopback address in a machine record: %+v", r)
			}
		}
		// None of the agent's own traffic: uploads to the collector, its
		// upstream DNS queries, its feed.
		if r.InitiatingProcessFileName == "netward" || r.RemotePort == collPort ||
			(r.Source == telemetry.SourceConntrack && r.RemotePort == 53 && r.InitiatingProcessAccountName == "root") {
			t.Errorf("a record of the agent's own traffic: %+v", r)
		}
		if u := r.InitiatingProcessAccountName; u != "" {
			users[u] = true
		}
	}
	if !users["nobody"] || !users["daemon"] {
		t.Errorf("users in the chunks: %v, want nobody and daemon", users)
	}
	if status.Telemetry.DNSAnswers == nil {
		t.Error("status has no dnsAnswers counters")
	}
}
