package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/Microsoft/go-winio"
)

// Windows: two named pipes whose security descriptors are the roles, because
// go-winio does not expose the client's token on an accepted pipe. PATH
// (\\.\pipe\netward) is open to Authenticated Users for reads and bypasses;
// PATH-admin only to SYSTEM and Administrators. A client tries the admin pipe
// first and falls back to the user pipe on "access denied". Both DACLs are
// protected (P): nothing is inherited. Authenticated Users get read and write
// data (0x12019b = FILE_GENERIC_READ|FILE_GENERIC_WRITE without
// FILE_APPEND_DATA, which on a pipe is FILE_CREATE_PIPE_INSTANCE), so they
// cannot create a rogue instance of the pipe.
const (
	userPipeSDDL  = "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;AU)"
	adminPipeSDDL = "D:P(A;;GA;;;SY)(A;;GA;;;BA)"
)

func adminPipe(path string) string { return path + "-admin" }

// PrepareUserDir and UserDirOK have nothing to do on Windows: pipes live
// in no directory (UserSocket is "").
func PrepareUserDir(string) error { return nil }

// UserDirOK: see PrepareUserDir.
func UserDirOK(string) error { return nil }

// Listen opens the user and admin pipes for path and returns one listener
// that accepts from both; each connection carries its pipe's role.
func Listen(path string) (net.Listener, error) {
	user, err := winio.ListenPipe(path, &winio.PipeConfig{SecurityDescriptor: userPipeSDDL})
	if err != nil {
		return nil, fmt.Errorf("control pipe %s: %w (is another netward agent running?)", path, err)
	}
	admin, err := winio.ListenPipe(adminPipe(path), &winio.PipeConfig{SecurityDescriptor: adminPipeSDDL})
	if err != nil {
		user.Close()
		return nil, fmt.Errorf("control pipe %s: %w (is another netward agent running?)", adminPipe(path), err)
	}
	m := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{}), lns: []net.Listener{user, admin}}
	for i, ln := range m.lns {
		go m.accept(ln, i == 1)
	}
	return m, nil
}

type pipeListener struct {
	lns   []net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

type rolePipeConn struct {
	net.Conn
	admin bool
}

func (m *pipeListener) accept(ln net.Listener, admin bool) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		select {
		case m.conns <- &rolePipeConn{Conn: c, admin: admin}:
		case <-m.done:
			c.Close()
			return
		}
	}
}

func (m *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

func (m *pipeListener) Close() error {
	var errs []error
	m.once.Do(func() {
		close(m.done)
		for _, ln := range m.lns {
			errs = append(errs, ln.Close())
		}
	})
	return errors.Join(errs...)
}

func (m *pipeListener) Addr() net.Addr { return m.lns[0].Addr() }

// peerIdentity: the pipe the client could open is its role. The account
// name is not known, so a bypass from the CLI covers the device.
func peerIdentity(c net.Conn) Peer {
	if rc, ok := c.(*rolePipeConn); ok {
		return Peer{Admin: rc.admin}
	}
	return Peer{}
}

// dial opens the admin pipe when the caller may, else the user pipe.
func dial(ctx context.Context, path string) (net.Conn, error) {
	if c, err := winio.DialPipeContext(ctx, adminPipe(path)); err == nil {
		return c, nil
	}
	return winio.DialPipeContext(ctx, path)
}
