package dnsproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// rawBatch reads and writes a UDP socket's batches with recvmmsg and
// sendmmsg as raw system calls (unix.RawSyscall6), not as x/net's
// ipv4/ipv6 PacketConn does (syscall.Syscall6). The socket is non-blocking,
// so neither call blocks: a full or empty socket returns EAGAIN, and the
// netpoller waits as it does for x/net. What a raw call saves is the
// runtime's entersyscall: when every P is idle — an agent between two
// sequential queries — the runtime's monitor thread (sysmon) sleeps, and
// the first system call entered after that wakes it, a futex wake and a
// context switch on a second thread for every sequential query (issue 21:
// 2.0–2.6 switches per cached or blocked query, dnsmasq 1.0; docs/dns.md
// tenth part). A raw call does not wake it; nor can it be retaken from,
// which a call that never blocks does not need.
type rawBatch struct {
	rc    syscall.RawConn
	v6    bool
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrAny
}

// mmsghdr is struct mmsghdr (x/sys/unix has none).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// newBatchConn returns the socket's batch reader and writer: rawBatch,
// or x/net's PacketConn if the socket gives no raw access.
func newBatchConn(conn *net.UDPConn, v6 bool) batchConn {
	rc, err := conn.SyscallConn()
	if err != nil {
		return newNetBatchConn(conn, v6)
	}
	return &rawBatch{rc: rc, v6: v6}
}

// prepare sizes the headers for n messages.
func (b *rawBatch) prepare(n int) {
	if cap(b.hdrs) < n {
		b.hdrs = make([]mmsghdr, n)
		b.iovs = make([]unix.Iovec, n)
		b.names = make([]unix.RawSockaddrAny, n)
	}
	b.hdrs = b.hdrs[:n]
	clear(b.hdrs)
}

// ReadBatch reads up to len(ms) datagrams, each into its message's first
// buffer, setting N, Flags and Addr (a *net.UDPAddr) as x/net's does.
func (b *rawBatch) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	b.prepare(len(ms))
	for i := range ms {
		buf := ms[i].Buffers[0]
		h := &b.hdrs[i].hdr
		b.iovs[i] = unix.Iovec{}
		if len(buf) > 0 {
			b.iovs[i].Base = &buf[0]
		}
		b.iovs[i].SetLen(len(buf))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
	}
	var n int
	var errno syscall.Errno
	err := b.rc.Read(func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(ms)), uintptr(flags), 0, 0)
		for e == unix.EINTR { // a signal before any datagram moved: ask again, the edge may not come back
			r, _, e = unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(ms)), uintptr(flags), 0, 0)
		}
		if e == unix.EAGAIN {
			return false // wait on the netpoller, as x/net does
		}
		n, errno = int(r), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", errno)
	}
	for i := range n {
		ms[i].N = int(b.hdrs[i].len)
		ms[i].NN = 0
		ms[i].Flags = int(b.hdrs[i].hdr.Flags)
		ms[i].Addr = sockaddrUDP(&b.names[i])
	}
	return n, nil
}

// WriteBatch sends each message's first buffer to its Addr (a
// *net.UDPAddr), as many per sendmmsg as the kernel takes; n is how many
// were sent.
func (b *rawBatch) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	b.prepare(len(ms))
	for i := range ms {
		buf := ms[i].Buffers[0]
		h := &b.hdrs[i].hdr
		b.iovs[i] = unix.Iovec{}
		if len(buf) > 0 {
			b.iovs[i].Base = &buf[0]
		}
		b.iovs[i].SetLen(len(buf))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
		if ms[i].Addr != nil {
			l, err := b.sockaddr(&b.names[i], ms[i].Addr)
			if err != nil {
				if i == 0 {
					return 0, err
				}
				// Send the ones before it; the caller skips it next.
				ms, b.hdrs = ms[:i], b.hdrs[:i]
				break
			}
			h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
			h.Namelen = l
		}
	}
	var n int
	var errno syscall.Errno
	err := b.rc.Write(func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(ms)), uintptr(flags), 0, 0)
		for e == unix.EINTR { // a signal before any datagram moved: ask again, the edge may not come back
			r, _, e = unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(ms)), uintptr(flags), 0, 0)
		}
		if e == unix.EAGAIN {
			return false
		}
		n, errno = int(r), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, os.NewSyscallError("sendmmsg", errno)
	}
	return n, nil
}

var errNotUDPAddr = errors.New("dnsproxy: batch address is not a UDP address")

// sockaddr encodes a into sa for this socket's family and returns its length.
func (b *rawBatch) sockaddr(sa *unix.RawSockaddrAny, a net.Addr) (uint32, error) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("%w: %T", errNotUDPAddr, a)
	}
	l, ok := putSockaddr(sa, ua.AddrPort(), b.v6)
	if !ok {
		fam := "IPv4"
		if b.v6 {
			fam = "IPv6"
		}
		return 0, fmt.Errorf("%w: %v on an %s socket", errNotUDPAddr, ua, fam)
	}
	return l, nil
}

// putSockaddr encodes ap into sa for a socket of the family v6 says (an
// IPv4 address is mapped on an IPv6 socket) and returns its length; false
// if the socket cannot send to it.
func putSockaddr(sa *unix.RawSockaddrAny, ap netip.AddrPort, v6 bool) (uint32, bool) {
	*sa = unix.RawSockaddrAny{}
	a := ap.Addr()
	if !v6 {
		if a = a.Unmap(); !a.Is4() {
			return 0, false
		}
		s := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		s.Family = unix.AF_INET
		putPort(&s.Port, int(ap.Port()))
		s.Addr = a.As4()
		return unix.SizeofSockaddrInet4, true
	}
	if !a.IsValid() {
		return 0, false
	}
	s := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
	s.Family = unix.AF_INET6
	putPort(&s.Port, int(ap.Port()))
	s.Addr = a.As16()
	if z := a.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			s.Scope_id = uint32(ifi.Index)
		} else if n, err := strconv.Atoi(z); err == nil && n > 0 {
			s.Scope_id = uint32(n)
		}
	}
	return unix.SizeofSockaddrInet6, true
}

// putPort stores port in network byte order.
func putPort(p *uint16, port int) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// sockaddrUDP decodes a received source address; nil if of no IP family.
func sockaddrUDP(sa *unix.RawSockaddrAny) *net.UDPAddr {
	switch sa.Addr.Family {
	case unix.AF_INET:
		s := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s.Port))
		return &net.UDPAddr{IP: net.IPv4(s.Addr[0], s.Addr[1], s.Addr[2], s.Addr[3]).To4(), Port: int(p[0])<<8 | int(p[1])}
	case unix.AF_INET6:
		s := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s.Port))
		a := &net.UDPAddr{IP: make(net.IP, net.IPv6len), Port: int(p[0])<<8 | int(p[1])}
		copy(a.IP, s.Addr[:])
		if s.Scope_id != 0 {
			if ifi, err := net.InterfaceByIndex(int(s.Scope_id)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	}
	return nil
}
