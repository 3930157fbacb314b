package dnsproxy

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The forwarded path's per-query writes — the query to the upstream
// (writeWaking) and the reply to the client (writeToUDP) — are raw system
// calls on Linux, as the batches are (mmsg_linux.go): a call through the
// runtime's syscall state (entersyscall) wakes its monitor thread, sysmon,
// when every P was idle, a futex wake and a second thread's switch per
// sequential forwarded query (issue 21, docs/dns.md eleventh part). The
// sockets are non-blocking, so a raw call never blocks: EAGAIN waits on
// the netpoller.

// writeWaking writes b on the connected UDP socket c, the upstream query of
// a forwarded one. A socket reader's write (g set) wakes a helper of g
// before it waits for room in the socket's send buffer (EAGAIN), so the
// reader's own socket is read meanwhile (readerGroup); a write that does
// not wait wakes nothing.
func writeWaking(c *net.UDPConn, b []byte, g *readerGroup) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	if errno, err := sendRaw(rc, b, nil, 0, g); err != nil {
		return err
	} else if errno != 0 {
		return &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", errno)}
	}
	return nil
}

// writeToUDP sends b to the client to from the socket c: a reply of the
// general or forwarded path.
func writeToUDP(c *net.UDPConn, b []byte, to netip.AddrPort) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	la, _ := c.LocalAddr().(*net.UDPAddr)
	var sa unix.RawSockaddrAny
	l, ok := putSockaddr(&sa, to, la != nil && la.IP.To4() == nil, lookupZoneIndex)
	if !ok {
		return &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: net.UDPAddrFromAddrPort(to), Err: errNotUDPAddr}
	}
	if errno, err := sendRaw(rc, b, &sa, l, nil); err != nil {
		return err
	} else if errno != 0 {
		return &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: net.UDPAddrFromAddrPort(to), Err: os.NewSyscallError("sendto", errno)}
	}
	return nil
}

// sendRaw sends b on rc's socket with a raw sendto(2), to sa of length l
// (nil: the connected peer). At the first EAGAIN it wakes g (nil: none),
// then waits on the netpoller until the socket takes it. err is the
// netpoller's (net.ErrClosed, a deadline), errno the system call's. EINTR
// (a signal before the datagram moved) is retried at once: returning
// would wait for an edge that may not come.
func sendRaw(rc syscall.RawConn, b []byte, sa *unix.RawSockaddrAny, l uint32, g *readerGroup) (errno syscall.Errno, err error) {
	woke := false
	err = rc.Write(func(fd uintptr) bool {
		for {
			_, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0, uintptr(unsafe.Pointer(sa)), uintptr(l))
			if errno != unix.EINTR {
				break
			}
		}
		if errno == unix.EAGAIN {
			if !woke {
				g.wake()
				woke = true
			}
			return false
		}
		return true
	})
	return errno, err
}
