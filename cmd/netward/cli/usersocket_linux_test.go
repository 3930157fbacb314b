package cli

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netward/netward/agent/control"
	"github.com/netward/netward/internal/e2e"
)

// TestUserSocketWithoutRuntimeDir: a non-root `netward run` on the embedded
// default with no XDG_RUNTIME_DIR (su, ssh without a session, containers)
// serves its control API on /tmp/netward-UID/netward.sock, and `netward
// status` run the same way finds it (issue 23: the agent said "control API
// disabled" and status told the user to start the service).
func TestUserSocketWithoutRuntimeDir(t *testing.T) {
	e2e.Require(t)
	// The embedded default's DNS port: another agent on it would make this
	// test about something else.
	if pc, err := net.ListenPacket("udp", "127.0.0.1:15353"); err != nil {
		t.Skipf("the embedded default's DNS port is taken: %v", err)
	} else {
		pc.Close()
	}
	const uid = 65534
	userDir := "/tmp/netward-65534"
	_ = os.RemoveAll(userDir)
	t.Cleanup(func() { _ = os.RemoveAll(userDir) })
	dir := t.TempDir()
	bin := binaryForOtherUser(t, dir)
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, uid, uid); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) *exec.Cmd {
		c := cliChild(bin, args...)
		c.Dir = "/"
		var env []string
		for _, kv := range c.Env {
			if !strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") && !strings.HasPrefix(kv, "HOME=") {
				env = append(env, kv)
			}
		}
		c.Env = append(env, "HOME="+home)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		return c
	}

	agent := asNobody("run")
	var logs e2e.SyncBuf
	agent.Stderr = &logs
	stop := e2e.Start(t, agent)
	defer stop()
	e2e.WaitFor(t, "the agent to report running", 20*time.Second,
		func() bool { return strings.Contains(logs.String(), "netward agent running") }, &logs)
	if !strings.Contains(logs.String(), "fallback="+userDir+"/netward.sock") || strings.Contains(logs.String(), "control API disabled") {
		t.Fatalf("the agent did not fall back to the per-user socket:\n%s", logs.String())
	}
	fi, err := os.Stat(userDir)
	if err != nil || fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != uid {
		t.Errorf("per-user socket directory: %v %v", fi, err)
	}

	st := asNobody("status")
	var out, errOut bytes.Buffer
	st.Stdout, st.Stderr = &out, &errOut
	_ = st.Run()
	if code := st.ProcessState.ExitCode(); code != ExitOK || !strings.Contains(out.String(), "builtin:demo") {
		t.Errorf("status as uid %d without XDG_RUNTIME_DIR = %d\n%s%s", uid, code, out.String(), errOut.String())
	}
}

// TestUserDirOK: a per-user socket directory someone else owns, or others
// may write, is refused, so nobody can plant a socket in the CLI's way.
func TestUserDirOK(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine")
	if err := control.PrepareUserDir(mine); err != nil {
		t.Fatalf("PrepareUserDir: %v", err)
	}
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := control.UserDirOK(open); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("UserDirOK(0777 dir) = %v", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(mine, link); err != nil {
		t.Fatal(err)
	}
	if err := control.UserDirOK(link); err == nil {
		t.Error("UserDirOK(symlink) = nil")
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(dir, "theirs")
		if err := os.Mkdir(theirs, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := control.UserDirOK(theirs); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("UserDirOK(another user's dir) = %v", err)
		}
	}
	if got := control.UserSocket(func(string) string { return "" }); got != filepath.Join("/tmp", "netward-"+strconv.Itoa(os.Getuid()), "netward.sock") {
		t.Errorf("UserSocket without XDG_RUNTIME_DIR = %q", got)
	}
}
