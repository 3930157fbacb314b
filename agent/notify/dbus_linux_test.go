package notify

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netward/netward/internal/e2e"
)

// notificationServer is a minimal org.freedesktop.Notifications service on
// a real dbus-daemon, standing in for the desktop's notification daemon.
type notificationServer struct {
	conn *dbus.Conn
	got  chan []string
}

func (s *notificationServer) GetCapabilities() ([]string, *dbus.Error) {
	return []string{"body", "actions"}, nil
}

func (s *notificationServer) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	s.got <- append([]string{app, summary, body}, actions...)
	const id = 42
	if len(actions) > 0 {
		// The user clicks Continue.
		go s.conn.Emit(notifPath, notifIface+".ActionInvoked", uint32(id), "continue")
	}
	return id, nil
}

func TestDBusNotification(t *testing.T) {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("NETWARD_E2E") == "require" {
			t.Fatal("dbus-daemon missing (apt-get install dbus)")
		}
		e2e.Skip(t, "dbus-daemon missing (apt-get install dbus)")
	}
	// As root, the bus belongs to another user (nobody), like a desktop
	// user's session bus seen from the root agent.
	uid := os.Getuid()
	var cred *syscall.Credential
	dir, err := os.MkdirTemp("", "nwwarn-bus-") // t.TempDir's parent is closed to other users
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if u, err := user.Lookup("nobody"); err == nil && os.Geteuid() == 0 {
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("session bus owned by uid %d, test runs as uid %d", uid, os.Geteuid())
	sock := filepath.Join(dir, "bus")
	addr := "unix:path=" + sock
	d := exec.Command("dbus-daemon", "--session", "--nofork", "--address="+addr, "--print-address")
	d.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := d.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil { // ready once it prints its address
		t.Fatal(err)
	}

	srvConn, err := dialSession(Bus{Address: addr, UID: uid})
	if err != nil {
		t.Fatalf("connect to the bus of uid %d: %v", uid, err)
	}
	defer srvConn.Close()
	srv := &notificationServer{conn: srvConn, got: make(chan []string, 2)}
	if err := srvConn.Export(srv, notifPath, notifIface); err != nil {
		t.Fatal(err)
	}
	if reply, err := srvConn.RequestName(notifDest, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName: %v %v", reply, err)
	}

	b := &DBus{Buses: func(string) []Bus { return []Bus{{Address: addr, UID: uid}} }}
	continued := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := Notice{Name: "warned.test", App: "Demo", Reason: "Monitored app"}
	if err := b.Notify(ctx, n, func() { close(continued) }); err != nil {
		t.Fatal(err)
	}
	got := <-srv.got
	if got[0] != "netward" || got[1] != n.Summary() || !strings.Contains(got[2], "netward bypass warned.test") {
		t.Errorf("notification = %q", got)
	}
	if len(got) != 5 || got[3] != "continue" {
		t.Errorf("actions = %q, want a continue action", got[3:])
	}
	select {
	case <-continued:
	case <-ctx.Done():
		t.Fatal("clicking Continue did not call the continue function")
	}

	// No bus at all: ErrNoSession.
	none := &DBus{Buses: func(string) []Bus { return nil }}
	if err := none.Notify(ctx, n, nil); err == nil || !strings.Contains(err.Error(), "no session bus") {
		t.Errorf("without a bus: %v", err)
	}
}
