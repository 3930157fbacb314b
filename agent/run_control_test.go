//go:build linux

package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/agent/bypass"
	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/agent/control"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/telemetry"
)

// startControlAgent runs the warn and control components of an agent whose
// socket lives in a directory every user can reach (the peer test connects as
// another uid).
func startControlAgent(t *testing.T, extra string) (*Agent, string) {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir is 0700 along two levels; open them for the other uid.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "run", "netward.sock")
	cfg, err := config.Parse([]byte(fmt.Sprintf(`{"version":1,"dataDir":%q,"warn":{"sinkAddress":%q},"control":{"socket":%q}%s}`,
		filepath.Join(dir, "data"), controlSink, sock, extra)), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	installSet(a, "42", time.Now().Add(-time.Hour), warnPolicy(t, false))
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	if err := a.startWarn(gctx, g); err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := a.startControl(gctx, g); err != nil {
		cancel()
		_ = g.Wait()
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			if err := g.Wait(); err != nil {
				t.Errorf("agent: %v", err)
			}
		})
	})
	return a, sock
}

// envChildSocket is the socket TestControlPeerChild calls.
const envChildSocket = "NETWARD_CONTROL_CHILD_SOCKET"

// TestControlPeerChild is the child process of TestControlRolesAcrossUsers:
// it calls every endpoint and prints one "call result" line each.
func TestControlPeerChild(t *testing.T) {
	if !e2e.IsChild(t) {
		t.Skip("child process of TestControlRolesAcrossUsers")
	}
	sock := os.Getenv(envChildSocket)
	c := control.NewClient(sock)
	ctx := context.Background()
	res := func(err error) string {
		var ae *control.APIError
		switch {
		case err == nil:
			return "ok"
		case errors.As(err, &ae):
			return strconv.Itoa(ae.Status)
		}
		return "error " + err.Error()
	}
	p, err := c.WhoAmI(ctx)
	fmt.Printf("whoami %s %d %v %s\n", res(err), p.UID, p.Admin, p.User)
	_, err = c.Status(ctx)
	fmt.Printf("status %s\n", res(err))
	_, err = c.Check(ctx, "warned.test")
	fmt.Printf("check %s\n", res(err))
	e, err := c.Bypass(ctx, "warned.test")
	fmt.Printf("bypass %s %s\n", res(err), e.User)
	_, err = c.Bypass(ctx, "blocked.test")
	fmt.Printf("bypass-block %s\n", res(err))
	chk, err := c.Check(ctx, "www.warned.test")
	fmt.Printf("check-after %s %s\n", res(err), chk.Action)
	l, err := c.ListBypasses(ctx)
	title := ""
	if len(l) > 0 {
		title = l[0].Title
	}
	fmt.Printf("list %s %d %s\n", res(err), len(l), title)
	var users []string
	err = c.Events(ctx, "", false, func(r telemetry.Record) error {
		users = append(users, r.InitiatingProcessAccountName+"/"+r.RemoteUrl)
		return nil
	})
	fmt.Printf("events %s %s\n", res(err), strings.Join(users, ","))
	_, err = c.RevokeBypass(ctx, "warned.test")
	fmt.Printf("revoke %s\n", res(err))
	fmt.Printf("mode %s\n", res(c.SetMode(ctx, "off")))
	fmt.Printf("reload %s\n", res(c.Reload(ctx)))
	_, err = c.RequeueTelemetry(ctx)
	fmt.Printf("requeue %s\n", res(err))
	os.Exit(0)
}

// TestControlRolesAcrossUsers connects as uid 65534 (a real other user,
// identified by SO_PEERCRED) and checks the two roles: reads and a bypass
// for itself work, admin calls are refused with 403.
func TestControlRolesAcrossUsers(t *testing.T) {
	// Root is needed to start a child under another uid; under
	// NETWARD_E2E=require (CI) a skip is a failure.
	e2e.Require(t)
	// uid 65534 is "nobody" on Debian and most distributions; without a
	// passwd entry the agent names the peer by its number.
	nobodyName := "65534"
	if u, err := user.LookupId("65534"); err == nil {
		nobodyName = u.Username
	}
	a, sock := startControlAgent(t, "")
	// The user sees their own events only: not the system resolver's (no
	// account) nor another account's (issue 20 #8).
	a.emit(telemetry.Record{Timestamp: time.Now(), ActionType: telemetry.NetworkProtectionWarned, RemoteUrl: "warned.test", Source: "dns", IndicatorId: "1"})
	a.emit(telemetry.Record{Timestamp: time.Now(), ActionType: telemetry.NetworkProtectionWarned, RemoteUrl: "mine.test", Source: "sni", IndicatorId: "1", InitiatingProcessAccountName: nobodyName})
	a.emit(telemetry.Record{Timestamp: time.Now(), ActionType: telemetry.NetworkProtectionWarned, RemoteUrl: "theirs.test", Source: "sni", IndicatorId: "1", InitiatingProcessAccountName: "alice"})
	// Nor the device's bypasses, only their own.
	if _, err := a.createBypass("feed.test", "", "cli"); err != nil {
		t.Fatal(err)
	}

	// The test binary may sit in a 0700 build directory: copy it where
	// the other uid can execute it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(filepath.Dir(sock)), "child.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	_, args := e2e.ChildArgs("TestControlPeerChild")
	cmd := exec.Command(bin, args...)
	cmd.Env = e2e.ChildEnv("TestControlPeerChild", envChildSocket+"="+sock)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		got[k] = v
	}
	want := map[string]string{
		"whoami":       "ok 65534 false " + nobodyName,
		"status":       "ok",
		"check":        "ok",
		"bypass":       "ok " + nobodyName,
		"bypass-block": "403",
		"check-after":  "ok bypassed",
		"list":         "ok 1 Monitored app: Demo",
		"events":       "ok " + nobodyName + "/mine.test," + nobodyName + "/warned.test", // the event, then its bypass's
		"revoke":       "403",
		"mode":         "403",
		"reload":       "403",
		"requeue":      "403",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("as uid 65534, %s = %q, want %q\nchild output:\n%s", k, got[k], v, out)
		}
	}
	// The bypass is the other user's, not the device's: root still sees the
	// warning, and the admin calls refused above changed nothing.
	if l := a.listBypasses(); len(l) != 2 || !slices.ContainsFunc(l, func(e bypass.Entry) bool { return e.User == nobodyName && e.How == "cli" }) {
		t.Errorf("bypasses = %+v, want one by %s from the cli and the device's", l, nobodyName)
	}
	c := control.NewClient(sock)
	chk, err := c.Check(context.Background(), "warned.test")
	if err != nil || chk.Action != "warn" || !chk.Bypass.Possible || chk.Bypass.Active {
		t.Errorf("root's check = %+v, %v; want warn with no bypass of its own", chk, err)
	}
	if a.dp.State().Settings.Mode != filter.ModeBlock {
		t.Errorf("mode changed to %v by a refused call", a.dp.State().Settings.Mode)
	}
	// Root is admin.
	if r, err := c.RevokeBypass(context.Background(), "warned.test"); err != nil || r.Removed != 1 {
		t.Errorf("root revoke = %+v, %v; want 1 removed", r, err)
	}
	if err := c.SetMode(context.Background(), "audit"); err != nil || a.dp.State().Settings.Mode != filter.ModeAudit {
		t.Errorf("root set mode: %v, mode %v", err, a.dp.State().Settings.Mode)
	}
	var ae *control.APIError
	if err := c.Reload(context.Background()); !errors.As(err, &ae) || ae.Status != http.StatusNotImplemented {
		t.Errorf("reload without an indicator sync = %v, want 501", err)
	}
}

// rawRequest sends a hand-written HTTP request over the socket.
func rawRequest(t *testing.T, sock, req string) (int, string) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A malformed test request must fail the test, not hang it.
	if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestControlRefusesBrowsers: requests a web page could make carry Origin or
// Referer, or a foreign Host; every one is refused before any handler runs.
func TestControlRefusesBrowsers(t *testing.T) {
	a, sock := startControlAgent(t, "")
	body := `{"name":"warned.test"}`
	for _, tc := range []struct {
		name, req string
		code      int
	}{
		{"plain status", "GET /v1/status HTTP/1.1\r\nHost: netward\r\nConnection: close\r\n\r\n", 200},
		{"origin", "GET /v1/status HTTP/1.1\r\nHost: netward\r\nOrigin: http://evil.example\r\nConnection: close\r\n\r\n", 403},
		{"null origin", "GET /v1/status HTTP/1.1\r\nHost: netward\r\nOrigin: null\r\nConnection: close\r\n\r\n", 403},
		{"referer", "GET /v1/status HTTP/1.1\r\nHost: netward\r\nReferer: http://evil.example/\r\nConnection: close\r\n\r\n", 403},
		{"foreign host", "GET /v1/status HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", 403},
		{"bypass from a page", "POST /v1/bypasses HTTP/1.1\r\nHost: netward\r\nOrigin: http://evil.example\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body, 403},
		{"unversioned path", "GET /status HTTP/1.1\r\nHost: netward\r\nConnection: close\r\n\r\n", 404},
		{"oversized body", "POST /v1/bypasses HTTP/1.1\r\nHost: netward\r\nContent-Length: 20000\r\nConnection: close\r\n\r\n" + strings.Repeat(" ", 20000), 413},
		{"unknown field", "POST /v1/bypasses HTTP/1.1\r\nHost: netward\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"nme\":\"x\"}", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := rawRequest(t, sock, tc.req)
			if code != tc.code {
				t.Errorf("HTTP %d, want %d: %s", code, tc.code, b)
			}
			if code != 200 {
				var e struct{ Error string }
				if json.Unmarshal([]byte(b), &e) != nil || e.Error == "" {
					t.Errorf("error body is not JSON with an error text: %q", b)
				}
			}
		})
	}
	if l := a.listBypasses(); len(l) != 0 {
		t.Errorf("a refused request created bypasses: %+v", l)
	}
}

func TestControlStatusAndCheck(t *testing.T) {
	a, sock := startControlAgent(t, "")
	c := control.NewClient(sock)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != "block" || st.Indicators.Version != "42" || st.Indicators.Total != 5 ||
		st.Indicators.ByAction["Warn"] != 4 || st.Indicators.ByAction["Block"] != 1 || st.Indicators.Swaps != 1 ||
		st.Indicators.AgeSeconds < 3599 || st.Telemetry == nil {
		t.Errorf("status = %+v", st)
	}
	for _, tc := range []struct {
		q, kind, target, action, id string
		possible                    bool
	}{
		{"WWW.Warned.Test.", "name", "www.warned.test", "warn", "1", true},
		{"blocked.test", "name", "blocked.test", "block", "5", false},
		{"free.test", "name", "free.test", "allow", "", false},
		{"https://blocked.test/a/b", "url", "blocked.test/a/b", "block", "5", false},
		{"203.0.113.7", "ip", "203.0.113.7", "allow", "", false},
		{"feed.test:443", "name", "feed.test", "warn", "4", true},
	} {
		r, err := c.Check(ctx, tc.q)
		if err != nil {
			t.Errorf("check %q: %v", tc.q, err)
			continue
		}
		id := ""
		if r.Indicator != nil {
			id = r.Indicator.ID
		}
		if r.Kind != tc.kind || r.Target != tc.target || r.Action != tc.action || id != tc.id || r.Bypass.Possible != tc.possible {
			t.Errorf("check %q = %+v (indicator %q), want %s %s %s id %q possible %v", tc.q, r, id, tc.kind, tc.target, tc.action, tc.id, tc.possible)
		}
	}
	var ae *control.APIError
	if _, err := c.Check(ctx, "not a name!"); !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("check of an invalid name = %v, want 400", err)
	}
	// A device-wide bypass shows up as active for the check.
	if _, err := a.createBypass("warned.test", "", "cli"); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Check(ctx, "warned.test"); r.Action != "bypassed" || !r.Bypass.Active || r.Bypass.Expires.IsZero() {
		t.Errorf("after bypass: %+v", r)
	}
	// Audit mode: the action is audit, would is warn/block.
	if err := a.setMode("audit"); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Check(ctx, "blocked.test"); r.Action != "audit" || r.Would != "block" || r.Mode != "audit" {
		t.Errorf("audit mode check = %+v", r)
	}
}

// TestControlEvents: records emitted by the agent reach `events`, and a
// follower sees new ones as they happen.
func TestControlEvents(t *testing.T) {
	a, sock := startControlAgent(t, "")
	c := control.NewClient(sock)
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	a.emit(telemetry.Record{Timestamp: ts, ActionType: telemetry.NetworkProtectionBlocked, RemoteUrl: "blocked.test", Source: "dns", IndicatorId: "5"})
	var got []telemetry.Record
	if err := c.Events(context.Background(), "", false, func(r telemetry.Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].RemoteUrl != "blocked.test" || !got[0].Timestamp.Equal(ts) {
		t.Fatalf("events = %+v", got)
	}
	got = nil
	if err := c.Events(context.Background(), "1h", false, func(r telemetry.Record) error { got = append(got, r); return nil }); err != nil || len(got) != 0 {
		t.Errorf("events since 1h = %+v, %v; want none (the record is older)", got, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recs := make(chan telemetry.Record, 4)
	done := make(chan error, 1)
	go func() {
		done <- c.Events(ctx, "", true, func(r telemetry.Record) error { recs <- r; return nil })
	}()
	if r := <-recs; r.RemoteUrl != "blocked.test" {
		t.Fatalf("follow backlog = %+v", r)
	}
	a.emit(telemetry.Record{ActionType: telemetry.NetworkProtectionWarned, RemoteUrl: "warned.test", Source: "sni"})
	select {
	case r := <-recs:
		if r.RemoteUrl != "warned.test" {
			t.Errorf("followed = %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a followed event did not arrive")
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("follow ended with %v", err)
	}
}

// TestControlSocketInUse: a second agent on the same socket is refused with
// a clear error; a stale socket file (crash) is replaced.
func TestControlSocketInUse(t *testing.T) {
	_, sock := startControlAgent(t, "")
	if _, err := control.Listen(sock); err == nil || !strings.Contains(err.Error(), "another netward agent is running") {
		t.Errorf("second listen: %v", err)
	}
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := control.Listen(stale)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	ln2.Close()
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := control.Listen(stale); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen over a regular file: %v", err)
	}
}

// TestControlStatusTransportWarnings: an http:// feed without a public key
// is a warning in `netward status` for as long as it is configured (issue
// 20 #7).
func TestControlStatusTransportWarnings(t *testing.T) {
	_, sock := startControlAgent(t, `,"indicators":{"source":"http://192.0.2.1/v1/indicators"}`)
	st, err := control.NewClient(sock).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "indicators.publicKey is not set") {
		t.Errorf("status warnings = %q, want the unsigned http feed", st.Warnings)
	}
}

// TestControlRequeueTelemetry: `netward telemetry requeue` (admin) sends a
// chunk the collector refused once again (issue 20 #10).
func TestControlRequeueTelemetry(t *testing.T) {
	var puts, stored atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if puts.Add(1) == 1 {
			http.Error(w, "refused once", http.StatusBadRequest)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		stored.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	a, sock := startControlAgent(t, fmt.Sprintf(`,"device":{"id":"dev-1"},"telemetry":{"endpoint":%q,"chunkRecords":1}`, srv.URL))
	a.tel.noFlows = true
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	t.Cleanup(func() { cancel(); _ = g.Wait() })
	if err := a.startTelemetry(gctx, g); err != nil {
		t.Fatal(err)
	}
	a.emit(telemetry.Record{ActionType: telemetry.ConnectionSuccess, RemoteUrl: "example.com"})
	// The machine record (DeviceInfo, issue 16) is a chunk of its own too:
	// the first chunk sent is refused, the other uploaded.
	e2e.WaitFor(t, "the chunk quarantined, the other uploaded", 30*time.Second, func() bool {
		s := a.telemetryStatus()
		return s.Quarantined == 1 && s.SpoolChunks == 0 && s.UploadedChunks == 1
	})
	r, err := control.NewClient(sock).RequeueTelemetry(context.Background())
	if err != nil || r.Requeued != 1 {
		t.Fatalf("requeue = %+v, %v; want 1", r, err)
	}
	e2e.WaitFor(t, "the requeued chunk uploaded", 30*time.Second, func() bool { return a.telemetryStatus().UploadedChunks == 2 })
	if s := a.telemetryStatus(); s.Quarantined != 0 || stored.Load() != 2 || puts.Load() != 3 {
		t.Errorf("status = %+v, %d stored of %d sent; want nothing quarantined and 2 stored of 3", s, stored.Load(), puts.Load())
	}
}
