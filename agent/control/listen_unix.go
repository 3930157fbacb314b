//go:build !windows

package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Listen opens the control socket at path. The directory is created 0755
// (the runtime directory); the socket is made 0666 because every local user
// may use the read and bypass calls — roles are enforced per request from
// SO_PEERCRED, not by file permissions. A stale socket left by a crash is
// replaced; a live one means another agent runs and is an error.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: create %s: %w (the runtime directory must be writable by the agent; under systemd RuntimeDirectory=netward does it)", filepath.Dir(path), err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket: %s exists and is not a socket; remove it or set control.socket to another path", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket: %s is in use: another netward agent is running (stop it, or give this one another control.socket)", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("control socket: remove stale %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// PrepareUserDir creates dir (0700) for a per-user socket and checks it
// (UserDirOK): a directory someone else planted in /tmp is refused.
func PrepareUserDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control socket: create %s: %w", dir, err)
	}
	return UserDirOK(dir)
}

// UserDirOK checks that dir, holding a per-user control socket, is a real
// directory owned by this user that nobody else may write: otherwise
// another local user could put a socket of theirs in the CLI's way.
func UserDirOK(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("control socket directory %s is not a directory (a symlink?); remove it", dir)
	case ok && int(st.Uid) != os.Getuid():
		return fmt.Errorf("control socket directory %s belongs to uid %d, not to you (uid %d); remove it, or set XDG_RUNTIME_DIR", dir, st.Uid, os.Getuid())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("control socket directory %s is writable by others (%v); chmod 700 it", dir, fi.Mode().Perm())
	}
	return nil
}

// dial connects to the agent's socket.
func dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}
