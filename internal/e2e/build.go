package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// builds are the binaries built for this test process, each once (the
// test helpers' one piece of process state: a test binary is one process).
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

// NetwardEnv names a prebuilt netward binary for Build to use instead of
// building cmd/netward (run many packages' suites against one build).
const NetwardEnv = "NETWARD_BIN"

// Build returns the binary of the main package pkg (an import path) built
// from this tree, once per test process: later calls, from any test of the
// package, reuse it. For cmd/netward, $NETWARD_BIN wins when set. The
// binaries live in a directory that Main removes.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin, err := BuildErr(pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// BuildErr is Build for a TestMain, which has no testing.TB.
func BuildErr(pkg string) (string, error) {
	if b := os.Getenv(NetwardEnv); b != "" && pkg == "github.com/netward/netward/cmd/netward" {
		return b, nil
	}
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if bin, ok := builds.bins[pkg]; ok {
		return bin, nil
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "netward-e2e-bin-")
		if err != nil {
			return "", err
		}
		// 0755: tests run binaries as other users (uid 65534) too.
		if err := os.Chmod(dir, 0o755); err != nil {
			return "", err
		}
		builds.dir, builds.bins = dir, map[string]string{}
	}
	bin := filepath.Join(builds.dir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	builds.bins[pkg] = bin
	return bin, nil
}

// Main runs a package's tests (call it from TestMain: os.Exit(e2e.Main(m)))
// and then removes the binaries Build made for them.
func Main(m *testing.M) int {
	code := m.Run()
	builds.mu.Lock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
	builds.mu.Unlock()
	return code
}
