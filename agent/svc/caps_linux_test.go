package svc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
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

// buildNetward builds the CLI once per test binary.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "netward-svc-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "netward")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/netward/netward/cmd/netward").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCapabilitiesSuffice runs the real agent, with inspection (nftables +
// NFQUEUE), the warn pages (ports 80 and 443) and conntrack telemetry, inside
// a network namespace with exactly the unit's CapabilityBoundingSet — what
// systemd gives it — and checks it comes up with nothing refused; then with
// CAP_NET_ADMIN or CAP_NET_BIND_SERVICE dropped, and checks what breaks. This
// pins Capabilities to what the agent really needs.
func TestCapabilitiesSuffice(t *testing.T) {
	e2e.Require(t, "setpriv", "nft", "ss", "go")
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })

	var all []string
	for _, c := range Capabilities {
		if _, ok := capBits[c.Name]; !ok {
			t.Fatalf("capBits lacks %s", c.Name)
		}
		all = append(all, c.Name)
	}
	t.Run("unit set", func(t *testing.T) {
		ns := e2e.NewNetns(t, "nwcap")
		cmd, logs := startAgent(t, ns, bin, all)
		waitLog(t, cmd, logs, "netward agent running")
		waitLog(t, cmd, logs, "inline inspection on") // the inspector starts in the background
		// The process holds exactly the unit's set, no more.
		var want uint64
		for _, c := range all {
			want |= 1 << capBits[c]
		}
		if got := capField(t, cmd.Process.Pid, "CapEff"); got != want {
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
			if strings.Contains(strings.ToLower(logs.String()), bad) {
				t.Errorf("with the unit's capabilities the log says %q:\n%s", bad, logs.String())
			}
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("agent exit: %v\n%s", err, logs.String())
		}
	})
	t.Run("without CAP_NET_ADMIN", func(t *testing.T) {
		// No nftables, no NFQUEUE: the agent must fail, not run unprotected.
		ns := e2e.NewNetns(t, "nwcap")
		cmd, logs := startAgent(t, ns, bin, without(all, "CAP_NET_ADMIN"))
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("agent without CAP_NET_ADMIN exited 0")
			}
			if !strings.Contains(logs.String(), "operation not permitted") {
				t.Errorf("log lacks the EPERM:\n%s", logs.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("agent without CAP_NET_ADMIN kept running:\n%s", logs.String())
		}
	})
	t.Run("without CAP_NET_BIND_SERVICE", func(t *testing.T) {
		// The agent runs on, but without its block/warn pages.
		ns := e2e.NewNetns(t, "nwcap")
		cmd, logs := startAgent(t, ns, bin, without(all, "CAP_NET_BIND_SERVICE"))
		waitLog(t, cmd, logs, "netward agent running")
		if !strings.Contains(logs.String(), "127.0.0.154:80: bind: permission denied") {
			t.Errorf("log lacks the refused bind:\n%s", logs.String())
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
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

func startAgent(t *testing.T, ns *e2e.Netns, bin string, caps []string) (*exec.Cmd, *lockedBuf) {
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
	logs := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, logs
}

func waitLog(t *testing.T, cmd *exec.Cmd, logs *lockedBuf, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the agent's log:\n%s", want, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
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
