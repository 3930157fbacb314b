package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netward/netward/agent/control"
	"github.com/netward/netward/internal/e2e"
)

// startAgentChild runs the real `netward run --config cfg` in a child
// process until the test ends, and waits until it reports running.
func startAgentChild(t *testing.T, cfg string) (stop func()) {
	t.Helper()
	cmd := cliChild(os.Args[0], "run", "--config", cfg)
	var logs e2e.SyncBuf
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	e2e.WaitFor(t, "the agent to report running", 20*time.Second,
		func() bool { return strings.Contains(logs.String(), "netward agent running") }, &logs)
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
	}
}

// TestModeVerb: `netward mode MODE` (admin) sets a local override that
// stays over the source's mode across a restart, `status` shows both, and
// `mode --clear` returns to the source's mode (CONTRACT §3, issue 23).
func TestModeVerb(t *testing.T) {
	e2e.Require(t) // changing the mode is for root (the control API's admin role)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "netward.json")
	sock := filepath.Join(dir, "s.sock")
	if err := os.WriteFile(cfg, []byte(`{"mode": "block", "dataDir": "`+dir+`", "indicators": {"source": "builtin:demo"},
		"dns": {"listen": ["127.0.0.1:0"]}, "control": {"socket": "`+sock+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	status := func() control.Status {
		t.Helper()
		code, out, errOut := runCLI(t, "status", "--json", "--socket", sock)
		if code != ExitOK {
			t.Fatalf("status = %d %s", code, errOut)
		}
		var st control.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	stop := startAgentChild(t, cfg)
	if code, out, errOut := runCLI(t, "mode", "--socket", sock); code != ExitOK || !strings.Contains(out, "mode block (the source's; no local override)") {
		t.Errorf("mode = %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "mode", "loud", "--socket", sock); code != ExitUsage || !strings.Contains(errOut, `"loud" is not a mode`) {
		t.Errorf("mode loud = %d %q, want a usage error", code, errOut)
	}
	code, out, errOut := runCLI(t, "mode", "audit", "--socket", sock)
	if code != ExitOK || !strings.Contains(out, "mode audit (local override, until 'netward mode --clear'; the source's mode is block)") {
		t.Fatalf("mode audit = %d %q %q", code, out, errOut)
	}
	if st := status(); st.Mode != "audit" || st.ModeOverride != "audit" || st.SourceMode != "block" {
		t.Errorf("status after mode audit: mode %q override %q source %q", st.Mode, st.ModeOverride, st.SourceMode)
	}
	code, out, _ = runCLI(t, "check", "blocked.netward.example", "--socket", sock)
	if code != ExitOK || !strings.Contains(out, "would block in block mode; mode is audit") {
		t.Errorf("check under the override = %d:\n%s", code, out)
	}
	if code, out, _ := runCLI(t, "status", "--socket", sock); code != ExitOK ||
		!strings.Contains(out, "audit (local override; the source's mode is block; 'netward mode --clear' returns to it)") {
		t.Errorf("status text does not show the override beside the source's mode:\n%s", out)
	}

	// The override stays across a restart (kept in the data directory).
	stop()
	startAgentChild(t, cfg)
	if st := status(); st.Mode != "audit" || st.ModeOverride != "audit" {
		t.Errorf("after a restart: mode %q override %q, want the override kept", st.Mode, st.ModeOverride)
	}
	code, out, errOut = runCLI(t, "mode", "--clear", "--json", "--socket", sock)
	var ms control.ModeState
	if code != ExitOK || json.Unmarshal([]byte(out), &ms) != nil || ms.Mode != "block" || ms.Override != "" {
		t.Errorf("mode --clear --json = %d %q %q", code, out, errOut)
	}
	if st := status(); st.Mode != "block" || st.ModeOverride != "" {
		t.Errorf("after --clear: mode %q override %q", st.Mode, st.ModeOverride)
	}
	if _, err := os.Stat(filepath.Join(dir, "mode-override")); !os.IsNotExist(err) {
		t.Errorf("the override file outlives --clear: %v", err)
	}
}

// TestStatusBuiltinSet: the built-in demo set is said to be built in, not
// given the build date as an age (issue 23).
func TestStatusBuiltinSet(t *testing.T) {
	st := control.Status{Version: "1", Mode: "block", Indicators: control.IndicatorStatus{
		Source: "builtin:demo", Version: "demo-1", Total: 4, AgeSeconds: 302*3600 + 1800,
		GeneratedAt: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), LoadedAt: time.Now()}}
	var b strings.Builder
	printStatus(&b, st)
	if !strings.Contains(b.String(), "version demo-1, built into netward, 4 in force") || strings.Contains(b.String(), ", age ") {
		t.Errorf("builtin set status:\n%s", b.String())
	}
}
