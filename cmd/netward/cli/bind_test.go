package cli

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/agent/control"
	"github.com/netward/netward/internal/e2e"
)

// freeUDPPort returns a loopback UDP port nothing listens on now.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	return port
}

// TestPagesAddressTaken: another program holds the sink's port 80. The
// agent says so (not "needs root"), `status` lists it under errors, and
// DNS does not hand out the sink address for a warned name (issue 23).
func TestPagesAddressTaken(t *testing.T) {
	e2e.Require(t)              // binding port 80 on the sink address needs root
	const sink = "127.23.0.154" // i23's own loopback address: parallel tests keep theirs
	squatter, err := net.Listen("tcp", net.JoinHostPort(sink, "80"))
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "netward.json")
	sock := filepath.Join(dir, "s.sock")
	dnsAddr := net.JoinHostPort("127.0.0.1", freeUDPPort(t))
	if err := os.WriteFile(cfg, []byte(`{"dataDir": "`+dir+`", "indicators": {"source": "builtin:demo"},
		"dns": {"listen": ["`+dnsAddr+`"], "upstreams": ["127.0.0.1:9"], "blockAnswer": "sink"},
		"warn": {"sinkAddress": "`+sink+`"}, "control": {"socket": "`+sock+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	startAgentChild(t, cfg)

	code, out, _ := runCLI(t, "status", "--json", "--socket", sock)
	var st control.Status
	if code != ExitOK || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --json = %d %q", code, out)
	}
	var pages string
	for _, e := range st.Errors {
		if e.Component == "warn pages" {
			pages = e.Message
		}
	}
	if !strings.Contains(pages, "address already in use") || !strings.Contains(pages, "another program already listens on tcp "+sink+":80") ||
		strings.Contains(pages, "root") {
		t.Errorf("status errors = %+v; want the warn pages' true cause (address in use)", st.Errors)
	}
	code, out, _ = runCLI(t, "status", "--socket", sock)
	if code != ExitOK || strings.Contains(out, "errors        none") || !strings.Contains(out, "another program already listens") {
		t.Errorf("status text hides the error:\n%s", out)
	}

	c := &dns.Client{Timeout: 2 * time.Second}
	for _, name := range []string{"warned.netward.example.", "blocked.netward.example."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := c.Exchange(m, dnsAddr)
		if err != nil {
			t.Fatalf("query %s: %v", name, err)
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok && a.A.String() == sink {
				t.Errorf("%s answered with the sink %s, where another program listens", name, sink)
			}
		}
		if r.Rcode != dns.RcodeNameError {
			t.Errorf("%s: rcode %s, want NXDOMAIN while the pages are not served", name, dns.RcodeToString[r.Rcode])
		}
	}
}

// TestDNSPortTaken: a DNS listen port another program holds is reported
// as such, not as a missing privilege (issue 23: "port 53 needs root" on
// port 15399).
func TestDNSPortTaken(t *testing.T) {
	squatter, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "netward.json")
	if err := os.WriteFile(cfg, []byte(`{"dataDir": "`+dir+`", "dns": {"listen": ["`+squatter.LocalAddr().String()+`"]},
		"warn": {"sinkAddress": "127.23.0.155"}, "control": {"socket": "`+filepath.Join(dir, "s.sock")+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := cliChild(os.Args[0], "run", "--config", cfg)
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != ExitFailed || !strings.Contains(string(out), "address already in use") ||
		!strings.Contains(string(out), "another program already listens on udp "+squatter.LocalAddr().String()) ||
		strings.Contains(string(out), "needs root") {
		t.Errorf("run with a taken DNS port = %d:\n%s", cmd.ProcessState.ExitCode(), out)
	}
}
