package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netward/netward/agent/control"
	"github.com/netward/netward/internal/e2e"
)

// envCLIArgs are the arguments of TestCLIChild, one a line.
const envCLIArgs = "NETWARD_CLI_ARGS"

// TestCLIChild is the real CLI in a process of its own, so tests exercise
// signals, exit codes and peer credentials of a real process: it runs the
// arguments of cliChild and exits with the CLI's code, having written only
// what the CLI writes.
func TestCLIChild(t *testing.T) {
	if !e2e.IsChild(t) {
		t.Skip("child process of the CLI's process tests")
	}
	args := strings.Split(os.Getenv(envCLIArgs), "\n")
	os.Exit(Run(context.Background(), &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, args))
}

// cliChild returns a command running the CLI with args in a child process
// (TestCLIChild) of the binary bin (the test binary itself, or a copy).
func cliChild(bin string, args ...string) *exec.Cmd {
	_, targs := e2e.ChildArgs("TestCLIChild")
	cmd := exec.Command(bin, targs...)
	cmd.Env = e2e.ChildEnv("TestCLIChild", envCLIArgs+"="+strings.Join(args, "\n"))
	return cmd
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, args)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStderr string
	}{
		{"no arguments", nil, ExitUsage, ""},
		{"unknown command", []string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{"unknown flag", []string{"version", "--frob"}, ExitUsage, "flag provided but not defined"},
		{"extra argument", []string{"version", "extra"}, ExitUsage, `unexpected argument "extra"`},
		{"help", []string{"--help"}, ExitOK, ""},
		{"command help", []string{"version", "--help"}, ExitOK, ""},
		{"version", []string{"version"}, ExitOK, ""},
		{"run with missing config", []string{"run", "--config", "/nonexistent/netward.json"}, ExitFailed, "no such file"},
		{"run with bad log level", []string{"run", "--log-level", "loud"}, ExitUsage, "--log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("netward %q exit = %d, want %d (stderr %q)", tt.args, code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("netward %q stderr = %q, want it to contain %q", tt.args, stderr, tt.wantStderr)
			}
		})
	}
}

func TestHelpHasExample(t *testing.T) {
	for _, c := range commands() {
		code, out, _ := runCLI(t, c.name, "--help")
		if code != ExitOK || !strings.Contains(out, "Example:") || !strings.Contains(out, "Usage: netward "+c.name) {
			t.Errorf("netward %s --help = %d %q, want usage and an example", c.name, code, out)
		}
	}
}

// TestHelpOnceBadFlagOneLine: every verb prints its help once for --help and
// -h (the flag package used to print it a second time), and a bad flag gets
// the error and one usage line on stderr, nothing on stdout, exit 2 (issue 23).
func TestHelpOnceBadFlagOneLine(t *testing.T) {
	for _, c := range commands() {
		for _, h := range []string{"--help", "-h"} {
			code, out, errOut := runCLI(t, c.name, h)
			if code != ExitOK || strings.Count(out, "Usage: ") != 1 || errOut != "" {
				t.Errorf("netward %s %s = %d, %d usage blocks, stderr %q; want 0, 1, empty:\n%s", c.name, h, code, strings.Count(out, "Usage: "), errOut, out)
			}
		}
		code, out, errOut := runCLI(t, c.name, "--no-such-flag")
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		// indicators has two sub-verbs, so its usage takes a line each.
		if code != ExitUsage || out != "" || len(lines) != 2+strings.Count(c.usage, "\n") ||
			!strings.HasPrefix(lines[0], "netward "+c.name+": ") || !strings.Contains(lines[0], "-no-such-flag") ||
			!strings.HasPrefix(lines[1], "Usage: netward "+c.name) {
			t.Errorf("netward %s --no-such-flag = %d, stdout %q, stderr %q; want 2, nothing, the error and one usage line", c.name, code, out, errOut)
		}
	}
}

func TestDashDashVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version"} {
		code, out, errOut := runCLI(t, arg)
		if code != ExitOK || !strings.HasPrefix(out, "netward ") || errOut != "" {
			t.Errorf("netward %s = %d %q %q, want the version", arg, code, out, errOut)
		}
	}
	code, out, _ := runCLI(t, "--version", "--json")
	if code != ExitOK || !strings.Contains(out, `"goVersion"`) {
		t.Errorf("netward --version --json = %d %q", code, out)
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := runCLI(t, "version", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version --json is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"version", "commit", "goVersion", "platform"} {
		if v[k] == "" {
			t.Errorf("version --json lacks %q: %s", k, out)
		}
	}
}

// TestRunStopsCleanlyOnSignal runs the real CLI in a child process and checks
// that SIGINT and SIGTERM stop it with exit code 0 (what systemd expects).
func TestRunStopsCleanlyOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "netward.json")
			// An unused listen port keeps parallel runs apart.
			if err := os.WriteFile(cfg, []byte(`{"dataDir": "`+dir+`", "dns": {"listen": ["127.0.0.1:0"]}, "control": {"socket": "`+filepath.Join(dir, "s.sock")+`"}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := cliChild(os.Args[0], "run", "--config", cfg)
			var logs e2e.SyncBuf
			cmd.Stderr = &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			e2e.WaitFor(t, "the agent to report running", 20*time.Second,
				func() bool { return strings.Contains(logs.String(), "netward agent running") }, &logs)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("exit after %v = %d (%v), want 0; logs:\n%s", sig, code, err, logs.String())
			}
			if !strings.Contains(logs.String(), "netward agent stopped") {
				t.Errorf("no clean-stop log line:\n%s", logs.String())
			}
		})
	}
}

// TestPrintStatusFreshness: a feed set shows its sequence and proof time;
// a stale one says so, and why it matters, without hiding the set.
func TestPrintStatusFreshness(t *testing.T) {
	at := time.Date(2026, 11, 19, 10, 0, 0, 0, time.UTC)
	st := control.Status{Version: "1", Mode: "block", Indicators: control.IndicatorStatus{
		Source: "https://console.example/v1/indicators", Version: "sha256-1", Total: 3, Sequence: 42,
		FreshAt: at, MaxAgeHours: 72}}
	var b strings.Builder
	printStatus(&b, st)
	if !strings.Contains(b.String(), "sequence 42, proved current 2026-11-19T10:00:00Z") {
		t.Errorf("fresh:\n%s", b.String())
	}
	st.Indicators.Stale = true
	st.Indicators.FreshnessError = "the answer carried no Netward-Freshness header"
	b.Reset()
	printStatus(&b, st)
	for _, want := range []string{"STALE: the console last proved this set current 2026-11-19T10:00:00Z, more than indicators.maxAgeHours (72) ago; it stays in force",
		"last answer proved nothing: the answer carried no Netward-Freshness header", "version sha256-1"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("stale status lacks %q:\n%s", want, b.String())
		}
	}
	// file:// and builtin: sources are exempt: no freshness lines.
	st.Indicators = control.IndicatorStatus{Source: "file:///etc/netward/x.csv", Version: "v"}
	b.Reset()
	printStatus(&b, st)
	if strings.Contains(b.String(), "proved") || strings.Contains(b.String(), "STALE") {
		t.Errorf("file source shows freshness:\n%s", b.String())
	}
}

// TestPrintStatusWarnings: the configuration's clear-text warnings show in
// `netward status` (issue 20 #7).
func TestPrintStatusWarnings(t *testing.T) {
	st := control.Status{Version: "1", Mode: "block", Warnings: []string{"telemetry.endpoint http://console.example is plain http://"}}
	var b strings.Builder
	printStatus(&b, st)
	if !strings.Contains(b.String(), "WARNING") || !strings.Contains(b.String(), "telemetry.endpoint http://console.example is plain http://") {
		t.Errorf("status lacks the warning:\n%s", b.String())
	}
}
