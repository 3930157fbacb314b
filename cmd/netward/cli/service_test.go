package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServiceVerbsUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStderr string
	}{
		{"install extra argument", []string{"install", "now"}, ExitUsage, `unexpected argument "now"`},
		{"install missing config", []string{"install", "--config", "/nonexistent/netward.json", "--print-unit"}, ExitFailed, "no such file"},
		{"executable without print-unit", []string{"install", "--executable", "/usr/bin/netward"}, ExitUsage, "--executable only goes with --print-unit"},
		{"relative executable", []string{"install", "--print-unit", "--executable", "netward"}, ExitFailed, "not an absolute path"},
		{"install config and demo", []string{"install", "--demo", "--config", "/etc/netward/netward.json"}, ExitUsage, "--config and --demo exclude each other"},
		{"uninstall extra argument", []string{"uninstall", "x"}, ExitUsage, `unexpected argument "x"`},
		{"start unknown flag", []string{"start", "--now"}, ExitUsage, "flag provided but not defined"},
		{"stop help", []string{"stop", "--help"}, ExitOK, ""},
		{"restart help", []string{"restart", "--help"}, ExitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("netward %q = exit %d, stderr %q; want exit %d, stderr containing %q", tt.args, code, stderr, tt.code, tt.wantStderr)
			}
		})
	}
}

func TestInstallPrintUnit(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "netward.json")
	data := filepath.Join(dir, "state")
	if err := os.WriteFile(cfg, []byte(`{"version":1,"dataDir":"`+data+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "install", "--config", cfg, "--print-unit")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	// Everything is under /tmp here: the unit is printed (packagers rely on
	// --print-unit), with a warning that the service could not see it.
	if !strings.Contains(stderr, "warning: the service runs with PrivateTmp=yes") || !strings.Contains(stderr, cfg) || !strings.Contains(stderr, data) {
		t.Errorf("--print-unit with paths under /tmp: no PrivateTmp warning naming them: %q", stderr)
	}
	// What make package runs: no warning, output unchanged in form.
	code, out2, stderr := runCLI(t, "install", "--print-unit", "--executable", "/usr/bin/netward")
	if code != ExitOK || stderr != "" || !strings.Contains(out2, "ExecStart=/usr/bin/netward run\n") {
		t.Errorf("install --print-unit --executable /usr/bin/netward = %d %q:\n%s", code, stderr, out2)
	}
	for _, want := range []string{" run --config " + cfg + "\n", "\nReadWritePaths=-" + data + "\n", "\nRestart=always\n", " cleanup\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("unit lacks %q:\n%s", want, out)
		}
	}
}

func TestInstallRefusesWritableConfig(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the permission check applies when installing as root")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "netward.json")
	if err := os.WriteFile(cfg, []byte(`{"version":1,"dataDir":"`+dir+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o666); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "install", "--config", cfg, "--print-unit")
	if code != ExitFailed || !strings.Contains(stderr, "chmod go-w "+cfg) {
		t.Errorf("exit %d, stderr %q; want exit 1 with a chmod fix", code, stderr)
	}
	code, _, stderr = runCLI(t, "run", "--config", cfg)
	if code != ExitFailed || !strings.Contains(stderr, "refusing to run as root") {
		t.Errorf("run: exit %d, stderr %q; want exit 1 refusing the config", code, stderr)
	}
}

// TestInstallAsksForConfig: install without --config (and with no system
// config) would put the demo config in the boot service: it asks for
// --config or --demo instead (issue 23). From a binary under /tmp, install
// is refused: the unit's PrivateTmp=yes hides it from the service.
func TestInstallAsksForConfig(t *testing.T) {
	if _, err := os.Stat("/etc/netward/netward.json"); err == nil {
		t.Skip("a system config exists: install uses it")
	}
	code, out, stderr := runCLI(t, "install")
	if code != ExitUsage || out != "" || !strings.Contains(stderr, "the service would run the embedded demo config") ||
		!strings.Contains(stderr, "Give --config FILE, or --demo") {
		t.Errorf("install = %d %q %q, want exit 2 asking for --config or --demo", code, out, stderr)
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil || len(underPrivateTmp(exe)) == 0 {
		t.Skipf("the test binary %s is not under /tmp", exe)
	}
	code, _, stderr = runCLI(t, "install", "--demo")
	if code != ExitFailed || !strings.Contains(stderr, "PrivateTmp=yes") || !strings.Contains(stderr, exe) {
		t.Errorf("install --demo from %s = %d %q, want exit 1: the service could not see its binary", exe, code, stderr)
	}
}

func TestUnderPrivateTmp(t *testing.T) {
	got := underPrivateTmp("/tmp/x/netward", "/var/tmp/y", "/tmp", "/tmpfoo/netward", "/usr/bin/netward", "", "/tmp/../usr/bin/netward")
	if strings.Join(got, ",") != "/tmp/x/netward,/var/tmp/y,/tmp" {
		t.Errorf("underPrivateTmp = %q", got)
	}
}
