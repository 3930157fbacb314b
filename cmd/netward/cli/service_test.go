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
