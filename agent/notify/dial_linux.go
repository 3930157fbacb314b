package notify

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"

	"github.com/godbus/dbus/v5"
)

// dialSession connects to a user's session bus. A session bus accepts only
// its own user (dbus-daemon refuses even root), and it learns who connects
// from the socket's peer credentials, taken at connect(2) from the calling
// thread's effective uid. So a root agent connects from a locked OS thread
// whose effective uid it switches to the user's with the raw setresuid
// syscall (per thread; syscall.Setresuid would change every thread of the
// process) and back right after.
func dialSession(b Bus) (*dbus.Conn, error) {
	path, ok := strings.CutPrefix(b.Address, "unix:path=")
	if !ok || os.Geteuid() != 0 || b.UID == 0 {
		conn, err := dbus.Dial(b.Address)
		if err != nil {
			return nil, err
		}
		return conn, authHello(conn, os.Getuid())
	}
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, err := connectAs(path, b.UID)
		if err != nil && err == errStuck {
			// The thread could not get root back: leave it locked so the
			// runtime discards it when this goroutine ends.
			res <- result{nil, fmt.Errorf("could not restore root on the notifying thread")}
			return
		}
		runtime.UnlockOSThread()
		res <- result{c, err}
	}()
	r := <-res
	if r.err != nil {
		return nil, r.err
	}
	conn, err := dbus.NewConn(r.c)
	if err != nil {
		r.c.Close()
		return nil, err
	}
	return conn, authHello(conn, b.UID)
}

var errStuck = fmt.Errorf("thread credentials not restored")

func connectAs(path string, uid int) (net.Conn, error) {
	const keep = ^uintptr(0) // -1: leave unchanged
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, keep, uintptr(uid), keep); e != 0 {
		return nil, fmt.Errorf("switch to uid %d: %w", uid, e)
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err == nil {
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, keep, 0, keep); e != 0 {
		if fd >= 0 {
			syscall.Close(fd)
		}
		return nil, errStuck
	}
	if err != nil {
		if fd >= 0 {
			syscall.Close(fd)
		}
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // FileConn dups the descriptor
	return net.FileConn(f)
}

func authHello(conn *dbus.Conn, uid int) error {
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(fmt.Sprint(uid))}); err != nil {
		conn.Close()
		return err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return err
	}
	return nil
}
