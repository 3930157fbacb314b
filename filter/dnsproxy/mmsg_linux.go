package dnsproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
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
//
// Its headers are reused from call to call: one goroutine at a time uses a
// rawBatch (each reader has its own), unlike x/net's PacketConn. Every
// message has one buffer (Buffers[0]).
type rawBatch struct {
	rc    syscall.RawConn
	v6    bool
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrAny
	zone  zoneName
	// The system calls run in recv and send, bound once (newBatchConn),
	// with their count and flags in and their results out in the batch: a
	// function literal handed to RawConn.Read or Write escapes, and with it
	// every variable it captures — three allocations per batch read or
	// written (issue 21: 14 % of what the agent allocated answering blocked
	// and cached queries, collections the soft memory limit pays for).
	recvFn, sendFn func(fd uintptr) bool
	count, flags   int
	n              int
	errno          syscall.Errno
	// wake, when set, is woken (once, then unset) if the call must wait
	// for room or data: a socket reader's group, before the reader waits
	// on another socket than its own (queryBatch.flush, readerGroup).
	wake *readerGroup
}

// zoneName is the last IPv6 zone (interface index and name) a scoped
// address of this socket had. Each lookup is a netlink dump of every
// interface (30 allocations and a few system calls): not for every
// datagram of a link-local client. As net's and x/net's own caches, it is
// trusted for zoneTTL (an interface renamed or replaced meanwhile).
type zoneName struct {
	index int
	name  string
	at    time.Time
}

const zoneTTL = time.Minute

// mmsghdr is struct mmsghdr (x/sys/unix has none). Go pads it as C does,
// to the msghdr's alignment: 64 bytes on 64-bit Linux, 32 on 32-bit (a
// fixed 4-byte pad made it 36 there, and the kernel read every message
// after the first from the wrong place; mmsg_linux_test.go checks it).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// newBatchConn returns the socket's batch reader and writer: rawBatch,
// or x/net's PacketConn if the socket gives no raw access.
func newBatchConn(conn *net.UDPConn, v6 bool) batchConn {
	rc, err := conn.SyscallConn()
	if err != nil {
		return newNetBatchConn(conn, v6)
	}
	return newRawBatch(rc, v6)
}

// newRawBatch is the batch of the socket rc is of; its rc may be set to
// another socket's of the same family between calls (queryBatch).
func newRawBatch(rc syscall.RawConn, v6 bool) *rawBatch {
	b := &rawBatch{rc: rc, v6: v6}
	b.recvFn, b.sendFn = b.recv, b.send
	return b
}

// recv is ReadBatch's system call (see rawBatch.recvFn).
func (b *rawBatch) recv(fd uintptr) bool { return b.mmsg(unix.SYS_RECVMMSG, fd) }

// send is WriteBatch's system call.
func (b *rawBatch) send(fd uintptr) bool { return b.mmsg(unix.SYS_SENDMMSG, fd) }

// mmsg makes recvmmsg or sendmmsg (trap) on the batch's headers, with the
// count and flags in the batch and its results stored there; false (wait
// on the netpoller, as x/net does) when the socket is empty or full.
func (b *rawBatch) mmsg(trap, fd uintptr) bool {
	r, _, e := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(b.count), uintptr(b.flags), 0, 0)
	for e == unix.EINTR { // a signal before any datagram moved: ask again, the edge may not come back
		r, _, e = unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(b.count), uintptr(b.flags), 0, 0)
	}
	if e == unix.EAGAIN {
		if b.wake != nil {
			b.wake.wake()
			b.wake = nil
		}
		return false
	}
	b.n, b.errno = int(r), e
	return true
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
	b.count, b.flags, b.n, b.errno = len(ms), flags, 0, 0
	err := b.rc.Read(b.recvFn)
	n, errno := b.n, b.errno
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
		ms[i].Addr = b.addr(&b.names[i])
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
	b.count, b.flags, b.n, b.errno = len(ms), flags, 0, 0
	err := b.rc.Write(b.sendFn)
	n, errno := b.n, b.errno
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
	if !ok || ua == nil {
		return 0, fmt.Errorf("%w: %T", errNotUDPAddr, a)
	}
	l, ok := putSockaddr(sa, ua.AddrPort(), b.v6, b.zoneIndex)
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
// if the socket cannot send to it. zoneIndex gives a scoped address's
// interface index (a batch's cached one, or lookupZoneIndex).
func putSockaddr(sa *unix.RawSockaddrAny, ap netip.AddrPort, v6 bool, zoneIndex func(string) int) (uint32, bool) {
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
		s.Scope_id = uint32(zoneIndex(z))
	}
	return unix.SizeofSockaddrInet6, true
}

// putPort stores port in network byte order.
func putPort(p *uint16, port int) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// udpAddr4 is a received IPv4 source address with its octets in the same
// allocation.
type udpAddr4 struct {
	net.UDPAddr
	ip [4]byte
}

// addr decodes a received source address: a *net.UDPAddr, or nil (no
// address, not a nil *net.UDPAddr) if of no IP family.
func (b *rawBatch) addr(sa *unix.RawSockaddrAny) net.Addr {
	switch sa.Addr.Family {
	case unix.AF_INET:
		s := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s.Port))
		// One allocation for the address and its 4 octets (net.IPv4 was a
		// second one, of 16 octets, per datagram).
		a := &udpAddr4{ip: s.Addr}
		a.UDPAddr = net.UDPAddr{IP: a.ip[:], Port: int(p[0])<<8 | int(p[1])}
		return &a.UDPAddr
	case unix.AF_INET6:
		s := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s.Port))
		a := &net.UDPAddr{IP: make(net.IP, net.IPv6len), Port: int(p[0])<<8 | int(p[1])}
		copy(a.IP, s.Addr[:])
		if s.Scope_id != 0 {
			a.Zone = b.zoneOf(int(s.Scope_id))
		}
		return a
	}
	return nil
}

// zoneOf is the name of interface index, or the index in decimal if no
// interface has it (as net and x/net name it).
func (b *rawBatch) zoneOf(index int) string {
	z := &b.zone
	if z.index == index && z.name != "" && time.Since(z.at) < zoneTTL {
		return z.name
	}
	name := strconv.Itoa(index)
	if ifi, err := net.InterfaceByIndex(index); err == nil {
		name = ifi.Name
	}
	*z = zoneName{index: index, name: name, at: time.Now()}
	return name
}

// zoneIndex is the index of the interface named zone, or zone read as a
// decimal index (net's and x/net's numeric zones); 0 if neither.
func (b *rawBatch) zoneIndex(zone string) int {
	z := &b.zone
	if z.name == zone && z.index != 0 && time.Since(z.at) < zoneTTL {
		return z.index
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		*z = zoneName{index: ifi.Index, name: zone, at: time.Now()}
		return ifi.Index
	}
	// Not cached: the cache keeps the names reads give (zoneOf), and a
	// read caches an unnamed index under its number already.
	return numericZone(zone)
}

// lookupZoneIndex is zoneIndex without a cache, for the single sends
// (handoff_linux.go): an upstream at a scoped address is rare and its
// address fixed.
func lookupZoneIndex(zone string) int {
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return ifi.Index
	}
	return numericZone(zone)
}

// numericZone reads zone as a decimal interface index (net's and x/net's
// numeric zones); 0 if it is not one.
func numericZone(zone string) int {
	if n, err := strconv.Atoi(zone); err == nil && n > 0 {
		return n
	}
	return 0
}
