// Package e2e holds what netward's tests share: throwaway hosts built out
// of Linux network namespaces and veth pairs (tests that use them need root;
// they skip without it, unless NETWARD_E2E=require, where a skip is a
// failure), the binaries built once per test process (Build, Main), child
// processes of the test binary (ChildCmd, IsChild), waiting for another
// process (WaitFor, Start, SyncBuf), and a clock a test moves by hand
// (Clock). The binary-level suites live in its subdirectories.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Require skips (or, with NETWARD_E2E=require, fails) t unless it runs as root
// on Linux with every command in tools on PATH.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if os.Getenv("NETWARD_E2E") == "off" {
		Skip(t, "NETWARD_E2E=off")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("end-to-end test needs %s (install with: apt-get install dnsutils iproute2 nftables; run as root)", strings.Join(missing, ", "))
	if os.Getenv("NETWARD_E2E") == "require" {
		t.Fatal(msg)
	}
	Skip(t, msg)
}

// SkipLogEnv names a file to which Skip appends one line per skipped
// end-to-end test: `make test` prints a one-line summary of the suites that
// did not run, which `go test` without -v would hide.
const SkipLogEnv = "NETWARD_SKIP_LOG"

// Skip skips t for reason (a missing privilege or tool), noting its suite
// (the test binary's package) in $NETWARD_SKIP_LOG.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if p := os.Getenv(SkipLogEnv); p != "" {
		suite := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
		// One write of a short line with O_APPEND: parallel test binaries
		// do not interleave their lines.
		if f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			_, _ = fmt.Fprintf(f, "%s: %s\n", suite, strings.ReplaceAll(reason, "\n", " "))
			_ = f.Close()
		}
	}
	t.Skip(reason)
}

// Netns is a network namespace that is deleted when the test ends.
type Netns struct {
	Name string
}

// NewNetns creates a namespace named prefix-<pid>-<n> with loopback up. The
// name is unique per test process, so tests may run in parallel.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e6)
	if len(name) > 15 { // keep derived veth names short
		name = name[:15]
	}
	Must(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	n := &Netns{Name: name}
	n.Must(t, "ip", "link", "set", "lo", "up")
	return n
}

// Cmd returns a command that runs inside the namespace.
func (n *Netns) Cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Must runs a command inside the namespace and fails the test on error.
func (n *Netns) Must(t testing.TB, name string, args ...string) string {
	t.Helper()
	return run(t, n.Cmd(name, args...))
}

// Run runs a command inside the namespace and returns its combined output.
func (n *Netns) Run(name string, args ...string) (string, error) {
	out, err := n.Cmd(name, args...).CombinedOutput()
	return string(out), err
}

// Must runs a command in the current namespace and fails the test on error.
func Must(t testing.TB, name string, args ...string) string {
	t.Helper()
	return run(t, exec.Command(name, args...))
}

func run(t testing.TB, c *exec.Cmd) string {
	t.Helper()
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(c.Args, " "), err, out.String())
	}
	return out.String()
}

// Link connects a and b with a veth pair and assigns the given addresses (CIDR
// notation, e.g. "192.0.2.1/24" and "2001:db8::1/64"; IPv6 DAD is disabled so
// the addresses are usable at once). Use documentation ranges only.
func Link(t testing.TB, a *Netns, aAddrs []string, b *Netns, bAddrs []string) {
	t.Helper()
	va, vb := "va"+suffix(a.Name), "vb"+suffix(b.Name)
	Must(t, "ip", "link", "add", va, "netns", a.Name, "type", "veth", "peer", "name", vb, "netns", b.Name)
	for _, side := range []struct {
		ns    *Netns
		dev   string
		addrs []string
	}{{a, va, aAddrs}, {b, vb, bAddrs}} {
		side.ns.Must(t, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0")
		side.ns.Must(t, "sysctl", "-qw", "net.ipv6.conf."+side.dev+".accept_dad=0")
		for _, addr := range side.addrs {
			if strings.Contains(addr, ":") {
				side.ns.Must(t, "ip", "-6", "addr", "add", addr, "dev", side.dev, "nodad")
			} else {
				side.ns.Must(t, "ip", "addr", "add", addr, "dev", side.dev)
			}
		}
		side.ns.Must(t, "ip", "link", "set", side.dev, "up")
	}
}

func suffix(ns string) string {
	s := strings.ReplaceAll(ns, "-", "")
	if len(s) > 12 {
		s = s[len(s)-12:]
	}
	return s
}
