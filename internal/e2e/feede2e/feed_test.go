//go:build linux

// Package feede2e is the end-to-end test of the indicator feed: the real
// netward-console serve-feed in an "internet" namespace, the real netward
// agent with host DNS capture in a "client" namespace, and dnsmasq as the
// client's resolver, on documentation addresses only.
package feede2e

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
)

const (
	clientAddr = "198.51.100.1"
	inetAddr   = "198.51.100.2"
	feedURL    = "http://console.test:8470/v1/indicators"
)

func TestMain(m *testing.M) { os.Exit(e2e.Main(m)) }

var (
	statusRE = regexp.MustCompile(`status: (\w+)`)
	edeRE    = regexp.MustCompile(`EDE: (.*)`)
)

// blocked reports whether the client's resolver (dnsmasq, captured by the
// agent) answers name with netward's block.
func blocked(ns *e2e.Netns, name string) bool {
	out, _ := ns.Run("dig", "+tries=1", "+time=2", "@"+inetAddr, name, "A")
	st := statusRE.FindStringSubmatch(out)
	ede := edeRE.FindStringSubmatch(out)
	return st != nil && st[1] == "NXDOMAIN" && ede != nil && strings.Contains(ede[1], "blocked "+name)
}

// TestFeedNeverResolvedThroughTheProxy blocks the console's own name with
// the console's feed. With host DNS capture on, every ordinary lookup of
// console.test gets netward's block; when the console restarts, the agent
// must still resolve it (its resolver's sockets carry the agent's mark,
// exempt from capture) to fetch the newer set. Were the feed resolved
// through the proxy, every reconnect would fail and later.test would stay
// open. Then a restart with the console down enforces the stored set.
func TestFeedNeverResolvedThroughTheProxy(t *testing.T) {
	e2e.Require(t, "dig", "dnsmasq", "go")
	dir := t.TempDir()
	nw := e2e.Build(t, "github.com/netward/netward/cmd/netward")
	console := e2e.Build(t, "github.com/netward/netward/cmd/netward-console")

	client := e2e.NewNetns(t, "nwfeed-c")
	inet := e2e.NewNetns(t, "nwfeed-i")
	e2e.Link(t, client, []string{clientAddr + "/24"}, inet, []string{inetAddr + "/24"})

	e2e.Start(t, inet.Cmd("dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address="+inetAddr, "--port=53", "--user=root",
		"--address=/console.test/"+inetAddr, "--address=/later.test/"+inetAddr))

	feedDir := filepath.Join(dir, "feed")
	if err := os.Mkdir(feedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(feedDir, "block.txt"), []byte("console.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var srvLog e2e.SyncBuf
	startFeed := func() (pub string, stop func()) {
		srv := inet.Cmd(console, "serve-feed", "--dir", feedDir, "--key", filepath.Join(dir, "key"),
			"--listen", inetAddr+":8470", "--token", "device-token")
		srvOut, err := srv.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		srv.Stderr = &srvLog
		stop = e2e.Start(t, srv)
		sc := bufio.NewScanner(srvOut)
		for pub == "" && sc.Scan() {
			pub, _ = strings.CutPrefix(sc.Text(), "public key: ")
		}
		if pub == "" {
			t.Fatalf("serve-feed printed no public key:\n%s", srvLog.String())
		}
		go func() { _, _ = bufio.NewReader(srvOut).WriteTo(&srvLog) }()
		return pub, stop
	}
	pub, stopFeed := startFeed()

	// The client's resolver is dnsmasq (ip netns exec bind-mounts this).
	etc := filepath.Join("/etc/netns", client.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+inetAddr+"\noptions timeout:2 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("device-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "netward.json")
	if err := os.WriteFile(cfg, []byte(`{"version": 1, "dataDir": "`+filepath.Join(dir, "data")+`",
 "indicators": {"source": "`+feedURL+`", "tokenFile": "`+token+`", "publicKey": "`+pub+`", "longPollSeconds": 30},
 "dns": {"capture": true, "listen": ["127.0.0.153:53"], "syntheticTtlSeconds": 1},
 "sni": {"enabled": false},
 "control": {"socket": "`+filepath.Join(dir, "netward.sock")+`"}}`), 0o644); err != nil {
		t.Fatal(err)
	}

	// 1. First start: the set is fetched and console.test is blocked for
	// every ordinary lookup (so host capture is installed).
	var log1 e2e.SyncBuf
	a1 := client.Cmd(nw, "run", "--config", cfg)
	a1.Stdout, a1.Stderr = &log1, &log1
	stop1 := e2e.Start(t, a1)
	e2e.WaitFor(t, "console.test to be blocked", 20*time.Second, func() bool { return blocked(client, "console.test") }, &log1, &srvLog)

	// 2. The console restarts with a new indicator. The agent's held long
	// poll breaks; to reconnect it must resolve console.test again, now
	// with capture in place and console.test blocked.
	stopFeed()
	if err := os.WriteFile(filepath.Join(feedDir, "later.txt"), []byte("later.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stopFeed = startFeed()
	e2e.WaitFor(t, "later.test to be blocked", 20*time.Second, func() bool { return blocked(client, "later.test") }, &log1, &srvLog)
	stop1()

	// 3. Restart with the console down: the stored set is enforced.
	stopFeed()
	var log2 e2e.SyncBuf
	a2 := client.Cmd(nw, "run", "--config", cfg)
	a2.Stdout, a2.Stderr = &log2, &log2
	e2e.Start(t, a2)
	e2e.WaitFor(t, "the stored set after a restart", 20*time.Second, func() bool { return blocked(client, "later.test") && blocked(client, "console.test") }, &log2)
	if l := log2.String(); !strings.Contains(l, "fromStore=true") {
		t.Errorf("the restart did not enforce the stored set:\n%s", l)
	}
}
