package svc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/telemetry/flow"
)

// capBits are the capability numbers of linux/capability.h for the names the
// unit uses.
var capBits = map[string]uint{
	"CAP_DAC_READ_SEARCH":  2,
	"CAP_SETUID":           7,
	"CAP_NET_BIND_SERVICE": 10,
	"CAP_NET_ADMIN":        12,
	"CAP_SYS_PTRACE":       19,
}

// TestCapabilitiesSuffice runs the real agent, with inspection (nftables +
// NFQUEUE), the warn pages (ports 80 and 443) and conntrack telemetry, inside
// a network namespace with exactly the unit's CapabilityBoundingSet — what
// systemd gives it — and checks it comes up with nothing refused; then with
// CAP_NET_ADMIN or CAP_NET_BIND_SERVICE dropped, and checks what breaks. This
// pins Capabilities to what the agent really needs.
func TestCapabilitiesSuffice(t *testing.T) {
	e2e.Require(t, "setpriv", "nft", "ss", "go")
	bin := e2e.Build(t, "github.com/netward/netward/cmd/netward")

	var all []string
	for _, c := range Capabilities {
		if _, ok := capBits[c.Name]; !ok {
			t.Fatalf("capBits lacks %s", c.Name)
		}
		all = append(all, c.Name)
	}
	t.Run("unit set", func(t *testing.T) {
		ns := e2e.NewNetns(t, "nwcap")
		p := startAgent(t, ns, bin, all)
		p.waitLog(t, "netward agent running")
		p.waitLog(t, "inline inspection on") // the inspector starts in the background
		// The process holds exactly the unit's set, no more.
		var want uint64
		for _, c := range all {
			want |= 1 << capBits[c]
		}
		if got := capField(t, p.cmd.Process.Pid, "CapEff"); got != want {
			t.Errorf("CapEff = %#x, want %#x", got, want)
		}
		if out := ns.Must(t, "nft", "list", "tables"); !strings.Contains(out, "netward_inspect") {
			t.Errorf("no netward_inspect table in the namespace:\n%s", out)
		}
		ss := ns.Must(t, "ss", "-ltnH")
		for _, port := range []string{"127.0.0.154:80", "127.0.0.154:443"} {
			if !strings.Contains(ss, port) {
				t.Errorf("nothing listens on %s:\n%s", port, ss)
			}
		}
		// Nothing was refused for lack of a capability.
		for _, bad := range []string{"permission denied", "operation not permitted"} {
			if strings.Contains(strings.ToLower(p.logs.String()), bad) {
				t.Errorf("with the unit's capabilities the log says %q:\n%s", bad, p.logs.String())
			}
		}
		if err := p.stop(t); err != nil {
			t.Errorf("agent exit: %v\n%s", err, p.logs.String())
		}
	})
	t.Run("without CAP_NET_ADMIN", func(t *testing.T) {
		// No nftables, no NFQUEUE: the agent must fail, not run unprotected.
		ns := e2e.NewNetns(t, "nwcap")
		p := startAgent(t, ns, bin, without(all, "CAP_NET_ADMIN"))
		timeout := time.NewTimer(30 * time.Second)
		defer timeout.Stop()
		select {
		case err := <-p.done:
			p.done <- err
			if err == nil {
				t.Fatal("agent without CAP_NET_ADMIN exited 0")
			}
			if !strings.Contains(p.logs.String(), "operation not permitted") {
				t.Errorf("log lacks the EPERM:\n%s", p.logs.String())
			}
		case <-timeout.C:
			t.Fatalf("agent without CAP_NET_ADMIN kept running:\n%s", p.logs.String())
		}
	})
	t.Run("without CAP_NET_BIND_SERVICE", func(t *testing.T) {
		// The agent runs on, but without its block/warn pages.
		ns := e2e.NewNetns(t, "nwcap")
		p := startAgent(t, ns, bin, without(all, "CAP_NET_BIND_SERVICE"))
		p.waitLog(t, "netward agent running")
		if !strings.Contains(p.logs.String(), "127.0.0.154:80: bind: permission denied") {
			t.Errorf("log lacks the refused bind:\n%s", p.logs.String())
		}
		p.stop(t)
	})
}

func without(list []string, drop string) []string {
	var out []string
	for _, c := range list {
		if c != drop {
			out = append(out, c)
		}
	}
	return out
}

// agentProc is a running agent; done receives its exit once.
type agentProc struct {
	cmd  *exec.Cmd
	logs *e2e.SyncBuf
	done chan error
}

func startAgent(t *testing.T, ns *e2e.Netns, bin string, caps []string) *agentProc {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "netward.json")
	conf := `{"version": 1, "dataDir": "` + dir + `/data", "mode": "block",
		"indicators": {"source": "builtin:demo"},
		"dns": {"listen": ["127.0.0.1:0"]}, "sni": {"enabled": true},
		"control": {"socket": "` + dir + `/netward.sock"}}`
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	set := "-all"
	for _, c := range caps {
		set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	cmd := ns.Cmd("setpriv", "--inh-caps=-all", "--bounding-set="+set, "--", bin, "run", "--config", cfg)
	logs := &e2e.SyncBuf{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, logs: logs, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// stop sends SIGTERM and returns the exit.
func (p *agentProc) stop(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err // for the cleanup
	return err
}

func (p *agentProc) waitLog(t *testing.T, want string) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.logs.String(), want) {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("agent exited (%v) before logging %q:\n%s", err, want, p.logs.String())
		case <-deadline.C:
			t.Fatalf("no %q in the agent's log:\n%s", want, p.logs.String())
		case <-tick.C:
		}
	}
}

// capField reads a capability mask from /proc/PID/status.
func capField(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// TestProcessAttributionCapabilities checks the reason given for
// CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE: the agent's own attribution code
// (telemetry/flow.SockDiag), run as root with the unit's bounding set, names
// the process of another user's connection, and cannot without either one.
// Loopback only; no firewall change.
func TestProcessAttributionCapabilities(t *testing.T) {
	e2e.Require(t, "setpriv", "bash")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	// A connection owned by nobody (uid 65534): bash's /dev/tcp, held open
	// by sleep until the test ends.
	client := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		"bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d; exec sleep 60", port))
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Process.Kill(); client.Wait() })
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.RemoteAddr().String() // the client's end
	remote := conn.LocalAddr().String()

	var all []string
	for _, c := range Capabilities {
		all = append(all, c.Name)
	}
	lookup := func(caps []string) (flow.Process, string) {
		set := "-all"
		for _, c := range caps {
			set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
		}
		child, args := e2e.ChildArgs("TestSockLookupChild")
		cmd := exec.Command("setpriv", append([]string{"--inh-caps=-all", "--bounding-set=" + set, "--", child}, args...)...)
		cmd.Env = e2e.ChildEnv("TestSockLookupChild", "NETWARD_SVC_LOOKUP="+local+" "+remote)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("lookup child: %v", err)
		}
		var p flow.Process
		if err := json.NewDecoder(bytes.NewReader(out)).Decode(&p); err != nil {
			t.Fatalf("lookup child output %q: %v", out, err)
		}
		return p, string(out)
	}
	p, out := lookup(all)
	if p.PID != client.Process.Pid || p.FileName != "sleep" || p.Account != "nobody" {
		t.Errorf("with the unit's capabilities: %s; want pid %d, sleep, nobody", out, client.Process.Pid)
	}
	for _, drop := range []string{"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"} {
		if p, out := lookup(without(all, drop)); p.PID != 0 {
			t.Errorf("without %s the process was still found: %s (the capability would be unnecessary)", drop, out)
		}
	}
}
