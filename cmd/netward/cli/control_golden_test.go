//go:build !windows

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netward/netward/agent/bypass"
	"github.com/netward/netward/agent/control"
	"github.com/netward/netward/telemetry"
)

// -update rewrites the golden files of TestControlGolden from the current
// output: go test ./cmd/netward/cli -run TestControlGolden -update
var update = flag.Bool("update", false, "rewrite testdata/golden/*.golden")

// goldenBackend is a control.Backend with fixed answers, so the CLI's text
// and --json output can be pinned byte for byte. The agent's own tests
// (agent/run_control_test.go) check the real backend behind the same API.
type goldenBackend struct {
	mu      sync.Mutex
	revoked int
}

var (
	goldenStart   = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	goldenExpires = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	goldenIndDemo = &control.Indicator{Value: "warned.test", Type: "DomainName", Action: "Warn", ID: "1",
		Title: "Monitored app: Demo", Application: "Demo", ApplicationID: "100"}
	goldenEntry = control.Bypass{User: "alice", Application: "Demo", IndicatorID: "1", Name: "warned.test",
		Created: goldenExpires.Add(-24 * time.Hour), Expires: goldenExpires, Who: "alice", How: bypass.HowCLI}
)

func (b *goldenBackend) Status() control.Status {
	return control.Status{
		Version: "1.2.3", Commit: "abc1234", Mode: "block", StartedAt: goldenStart, UptimeSeconds: 3723,
		Config: "/etc/netward/netward.json",
		Indicators: control.IndicatorStatus{Source: "file:///etc/netward/indicators.json", Version: "42",
			GeneratedAt: goldenStart.Add(-time.Hour), LoadedAt: goldenStart, AgeSeconds: 7200, Total: 6,
			ByAction: map[string]int{"Warn": 3, "Block": 2, "Allowed": 1}, HTTPOnly: 1, Swaps: 2,
			NextExpiry: goldenStart.Add(24 * time.Hour), Rejected: 1, Failures: 2, LastErrorAt: goldenStart.Add(-time.Minute),
			LastError: "indicator file /etc/netward/indicators.json does not exist; create it or fix indicators.source"},
		Interception: control.InterceptionState{DNS: true, DNSListen: []string{"127.0.0.1:15353"}, QUIC: "inspect",
			DNSStats: &control.DNSStats{Queries: 120, ByVerdict: map[string]uint64{"allow": 110, "block": 6, "warn": 4},
				CacheHits: 90, CacheMisses: 30, UpstreamErrors: 2, ServFail: 1, InFlight: 3}},
		Bypasses: control.BypassStatus{Active: 1, ByTarget: map[string]int{"Demo": 1}},
		Telemetry: &control.TelemetryStatus{SpoolChunks: 2, SpoolBytes: 2048, SpoolRecords: 10, UploadedChunks: 5,
			LastUpload: time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)},
		Errors: []control.ErrorEntry{{Time: goldenStart.Add(time.Minute), Component: "indicators",
			Message: "feed unreachable; keeping set 42"}},
	}
}

func (b *goldenBackend) Check(q, user string) (control.CheckResult, error) {
	res := control.CheckResult{Query: q, Kind: "name", Target: q, Mode: "block", Interceptors: []string{"dns"}}
	switch q {
	case "warned.test":
		res.Action, res.Would, res.Indicator = "warn", "warn", goldenIndDemo
		res.Bypass.Possible = true
	case "bypassed.test":
		res.Action, res.Would, res.Indicator = "bypassed", "bypassed", goldenIndDemo
		res.Bypass = control.BypassState{Possible: true, Active: true, Expires: goldenExpires}
	case "blocked.test":
		res.Action, res.Would = "block", "block"
		res.Indicator = &control.Indicator{Value: "blocked.test", Type: "DomainName", Action: "Block", ID: "5", Title: "Unsanctioned app"}
	case "http://warned.test/dl/x.exe":
		res.Kind, res.Target, res.Action, res.Would = "url", "warned.test/dl/x.exe", "block", "block"
		res.Indicator = &control.Indicator{Value: "warned.test/dl/", Type: "Url", Action: "Block", ID: "6"}
		res.Interceptors = []string{}
		res.Note = "a Url indicator with a path is enforced on plain HTTP only; over TLS only the host is seen (CONTRACT §1)"
	case "free.test":
		res.Action, res.Would = "allow", "allow"
	default:
		return res, control.BadQuery(fmt.Errorf("%q is not a host name, URL or IP address", q))
	}
	return res, nil
}

func (b *goldenBackend) CreateBypass(name, user string) (control.Bypass, error) {
	switch name {
	case "warned.test":
		return goldenEntry, nil
	case "blocked.test":
		return control.Bypass{}, fmt.Errorf("bypass %s: %w", name, bypass.ErrBlock)
	}
	return control.Bypass{}, fmt.Errorf("bypass %s: %w", name, bypass.ErrNotWarned)
}

func (b *goldenBackend) ListBypasses() []control.BypassInfo {
	return []control.BypassInfo{
		{Bypass: goldenEntry, Title: "Monitored app: Demo"},
		{Bypass: control.Bypass{Indicator: "feed.test", IndicatorType: "DomainName", IndicatorID: "4", Name: "www.feed.test",
			Created: goldenStart, Expires: goldenExpires, Who: "device", How: bypass.HowPage}},
	}
}

func (b *goldenBackend) RevokeBypass(name string) (int, error) {
	if name == "warned.test" {
		return 1, nil
	}
	return 0, nil
}

func (b *goldenBackend) SetMode(string) error         { return nil }
func (b *goldenBackend) Reload(context.Context) error { return nil }

// startGoldenAgent serves the control API with goldenBackend on a real unix
// socket in t.TempDir().
func startGoldenAgent(t *testing.T) string {
	t.Helper()
	ring := control.NewRing(16)
	ring.Add(telemetry.Record{Timestamp: goldenStart.Add(time.Minute), ActionType: telemetry.NetworkProtectionWarned,
		RemoteUrl: "warned.test", Source: "dns", IndicatorId: "1", Application: "Demo"})
	ring.Add(telemetry.Record{Timestamp: goldenStart.Add(2 * time.Minute), ActionType: telemetry.NetworkProtectionBlocked,
		RemoteUrl: "blocked.test", RemoteIP: "203.0.113.9", RemotePort: 443, Source: "sni", IndicatorId: "5",
		InitiatingProcessFileName: "curl", InitiatingProcessId: 4242, InitiatingProcessAccountName: "alice"})
	srv, err := control.New(control.Config{Backend: &goldenBackend{}, Events: ring,
		Now: func() time.Time { return goldenStart.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "netward.sock")
	ln, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control server: %v", err)
		}
	})
	return sock
}

// TestControlGolden pins the exit code, stdout and stderr of every verb that
// talks to the agent, against a real control server on a unix socket, and
// with no agent at all (exit 3). Paths are written as $SOCKET.
func TestControlGolden(t *testing.T) {
	sock := startGoldenAgent(t)
	missing := filepath.Join(t.TempDir(), "nothing-here.sock")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"status", []string{"status"}, ExitOK},
		{"status-json", []string{"status", "--json"}, ExitOK},
		{"status-extra-arg", []string{"status", "now"}, ExitUsage},
		{"check-warn", []string{"check", "warned.test"}, ExitOK},
		{"check-warn-json", []string{"check", "warned.test", "--json"}, ExitOK},
		{"check-bypassed", []string{"check", "bypassed.test"}, ExitOK},
		{"check-block", []string{"check", "--json", "blocked.test"}, ExitOK},
		{"check-url", []string{"check", "http://warned.test/dl/x.exe"}, ExitOK},
		{"check-allow", []string{"check", "free.test", "--json"}, ExitOK},
		{"check-bad-query", []string{"check", "not a name!"}, ExitUsage},
		{"check-no-arg", []string{"check"}, ExitUsage},
		{"bypass", []string{"bypass", "warned.test"}, ExitOK},
		{"bypass-json", []string{"bypass", "--json", "warned.test"}, ExitOK},
		{"bypass-block", []string{"bypass", "blocked.test"}, ExitFailed},
		{"bypass-not-warned", []string{"bypass", "free.test"}, ExitFailed},
		{"bypass-list", []string{"bypass", "--list"}, ExitOK},
		{"bypass-list-json", []string{"bypass", "--list", "--json"}, ExitOK},
		{"bypass-revoke", []string{"bypass", "--revoke", "warned.test"}, ExitOK},
		{"bypass-revoke-json", []string{"bypass", "--revoke", "warned.test", "--json"}, ExitOK},
		{"bypass-revoke-none", []string{"bypass", "--revoke", "other.test"}, ExitFailed},
		{"bypass-no-arg", []string{"bypass"}, ExitUsage},
		{"bypass-two-modes", []string{"bypass", "warned.test", "--list"}, ExitUsage},
		{"events", []string{"events"}, ExitOK},
		{"events-json", []string{"events", "--json"}, ExitOK},
		{"events-bad-since", []string{"events", "--since", "yesterday"}, ExitUsage},
		{"not-running-status", []string{"status", "--socket", missing}, ExitNotRunning},
		{"not-running-check", []string{"check", "--socket", missing, "warned.test"}, ExitNotRunning},
		{"not-running-bypass", []string{"bypass", "--socket", missing, "warned.test"}, ExitNotRunning},
		{"not-running-list", []string{"bypass", "--socket", missing, "--list", "--json"}, ExitNotRunning},
		{"not-running-events", []string{"events", "--socket", missing}, ExitNotRunning},
		{"indicators-reload", []string{"indicators", "reload"}, ExitOK},
		{"indicators-reload-json", []string{"indicators", "reload", "--json"}, ExitOK},
		{"indicators-reload-extra-arg", []string{"indicators", "reload", "now"}, ExitUsage},
		{"not-running-reload", []string{"indicators", "reload", "--socket", missing}, ExitNotRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !strings.HasPrefix(tt.name, "not-running") {
				verb := 1
				if args[0] == "indicators" { // a verb with subcommands
					verb = 2
				}
				args = append(append(slices.Clone(args[:verb]), "--socket", sock), args[verb:]...)
			}
			code, stdout, stderr := runCLI(t, args...)
			if code != tt.code {
				t.Errorf("netward %q exit = %d, want %d\nstdout:\n%s\nstderr:\n%s", tt.args, code, tt.code, stdout, stderr)
			}
			if strings.HasSuffix(tt.name, "-json") && code == ExitOK {
				// events --json is NDJSON: one record per line.
				docs := []string{stdout}
				if tt.args[0] == "events" {
					docs = strings.SplitAfter(strings.TrimSuffix(stdout, "\n"), "\n")
				}
				for _, d := range docs {
					if !json.Valid([]byte(d)) {
						t.Errorf("netward %q stdout is not JSON:\n%s", tt.args, d)
					}
				}
			}
			got := fmt.Sprintf("# netward %s\nexit %d\n-- stdout --\n%s-- stderr --\n%s", strings.Join(tt.args, " "), code, stdout, stderr)
			got = strings.ReplaceAll(got, missing, "$SOCKET")
			got = strings.ReplaceAll(got, sock, "$SOCKET")
			checkGolden(t, filepath.Join("testdata", "golden", tt.name+".golden"), got)
		})
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no golden file %s; create it with: go test ./cmd/netward/cli -run TestControlGolden -update", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, []byte(got)) {
		t.Errorf("output differs from %s (if the change is intended, rerun with -update and review the diff):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}
