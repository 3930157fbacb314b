package dnsproxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func listenBatch(t *testing.T, network, addr string) (*net.UDPConn, *rawBatch) {
	t.Helper()
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(addr)})
	if err != nil {
		t.Skipf("no %s socket: %v", network, err)
	}
	t.Cleanup(func() { c.Close() })
	b, ok := newBatchConn(c, network == "udp6").(*rawBatch)
	if !ok {
		t.Fatalf("newBatchConn on Linux is not the raw one")
	}
	return c, b
}

func messages(n, size int) []ipv4.Message {
	ms := make([]ipv4.Message, n)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, size)}
	}
	return ms
}

// A batch written with one sendmmsg arrives whole, and one recvmmsg reads
// it with each datagram's length, contents and source, on both families.
func TestRawBatchRoundTrip(t *testing.T) {
	for _, fam := range []struct{ network, addr string }{{"udp4", "127.0.0.1"}, {"udp6", "::1"}} {
		t.Run(fam.network, func(t *testing.T) {
			sc, sb := listenBatch(t, fam.network, fam.addr)
			rc, rb := listenBatch(t, fam.network, fam.addr)
			out := make([]ipv4.Message, 3)
			for i := range out {
				out[i].Buffers = [][]byte{[]byte(fmt.Sprintf("reply %d", i))}
				out[i].Addr = rc.LocalAddr()
			}
			n, err := sb.WriteBatch(out, 0)
			if err != nil || n != 3 {
				t.Fatalf("WriteBatch = %d, %v; want 3 sent", n, err)
			}
			in := messages(16, 64)
			if err := rc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			got := 0
			for got < 3 {
				n, err := rb.ReadBatch(in[got:], 0)
				if err != nil {
					t.Fatalf("ReadBatch: %v", err)
				}
				got += n
			}
			from := sc.LocalAddr().(*net.UDPAddr)
			for i := range 3 {
				m := in[i]
				if want := fmt.Sprintf("reply %d", i); string(m.Buffers[0][:m.N]) != want {
					t.Errorf("datagram %d = %q, want %q", i, m.Buffers[0][:m.N], want)
				}
				a, ok := m.Addr.(*net.UDPAddr)
				if !ok || !a.IP.Equal(from.IP) || a.Port != from.Port {
					t.Errorf("datagram %d from %v, want %v", i, m.Addr, from)
				}
			}
		})
	}
}

// A datagram longer than its buffer is flagged MSG_TRUNC (the reader
// answers it FORMERR), and reading a closed socket reports net.ErrClosed.
func TestRawBatchTruncatedAndClosed(t *testing.T) {
	rc, rb := listenBatch(t, "udp4", "127.0.0.1")
	s, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write(bytes.Repeat([]byte{'x'}, 100)); err != nil {
		t.Fatal(err)
	}
	in := messages(4, 10)
	if err := rc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := rb.ReadBatch(in, 0)
	if err != nil || n != 1 {
		t.Fatalf("ReadBatch = %d, %v", n, err)
	}
	if in[0].N != 10 || in[0].Flags&unix.MSG_TRUNC == 0 {
		t.Errorf("N = %d, flags %#x: want 10 and MSG_TRUNC", in[0].N, in[0].Flags)
	}
	rc.Close()
	if _, err := rb.ReadBatch(in, 0); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadBatch on a closed socket: %v, want net.ErrClosed", err)
	}
}

// A reply whose address the socket cannot take is refused without
// panicking, and the replies before it in the batch still leave.
func TestRawBatchBadAddress(t *testing.T) {
	_, sb := listenBatch(t, "udp4", "127.0.0.1")
	rc, rb := listenBatch(t, "udp4", "127.0.0.1")
	out := make([]ipv4.Message, 3)
	for i := range out {
		out[i].Buffers = [][]byte{[]byte("ok")}
		out[i].Addr = rc.LocalAddr()
	}
	out[1].Addr = &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 53}
	out[2].Addr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	n, err := sb.WriteBatch(out, 0)
	if err != nil || n != 1 {
		t.Fatalf("WriteBatch = %d, %v; want the first sent", n, err)
	}
	if n, err := sb.WriteBatch(out[1:], 0); n != 0 || !errors.Is(err, errNotUDPAddr) {
		t.Errorf("WriteBatch(IPv6 address on an IPv4 socket) = %d, %v", n, err)
	}
	if n, err := sb.WriteBatch(out[2:], 0); n != 0 || !errors.Is(err, errNotUDPAddr) {
		t.Errorf("WriteBatch(TCP address) = %d, %v", n, err)
	}
	in := messages(4, 16)
	if err := rc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := rb.ReadBatch(in, 0); err != nil || n != 1 || string(in[0].Buffers[0][:in[0].N]) != "ok" {
		t.Errorf("ReadBatch = %d, %v", n, err)
	}
}

// A scoped (link-local) IPv6 address keeps its zone both ways as net and
// x/net keep it: by name, or by number when no interface has that index or
// name (a numeric zone is how Go spells an index it cannot name); and the
// index→name lookup, a netlink dump of every interface, is not made again
// for every datagram of a link-local client (x/net caches it too).
func TestRawBatchZones(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo: %v", err)
	}
	b := &rawBatch{v6: true}
	var sa unix.RawSockaddrAny
	s6 := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa))
	for _, zone := range []string{"lo", strconv.Itoa(lo.Index)} {
		if _, err := b.sockaddr(&sa, &net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 53, Zone: zone}); err != nil {
			t.Fatal(err)
		}
		if int(s6.Scope_id) != lo.Index {
			t.Errorf("zone %q: scope %d, want %d", zone, s6.Scope_id, lo.Index)
		}
	}
	s6.Scope_id = 1 << 30 // no such interface
	if a, ok := b.addr(&sa).(*net.UDPAddr); !ok || a.Zone != strconv.Itoa(1<<30) {
		t.Errorf("unknown index read as %v, want zone %d", a, 1<<30)
	}
	s6.Scope_id = uint32(lo.Index)
	if a, ok := b.addr(&sa).(*net.UDPAddr); !ok || a.Zone != "lo" {
		t.Errorf("lo's index read as %v, want zone lo", a)
	}
	// The address and its IP: nothing more per datagram.
	if n := testing.AllocsPerRun(100, func() { _ = b.addr(&sa) }); n > 2 {
		t.Errorf("reading a scoped address allocates %.0f times, want at most 2 (no interface lookup per datagram)", n)
	}
}

// A source address of no IP family reads as no address (a nil net.Addr,
// as x/net gives), not as a nil *net.UDPAddr inside a non-nil interface; and
// a nil *net.UDPAddr given to WriteBatch is refused, not dereferenced.
func TestRawBatchNoAddress(t *testing.T) {
	_, b := listenBatch(t, "udp4", "127.0.0.1")
	var sa unix.RawSockaddrAny
	sa.Addr.Family = unix.AF_UNIX
	if a := b.addr(&sa); a != nil {
		t.Errorf("address of family AF_UNIX = %#v, want nil", a)
	}
	out := []ipv4.Message{{Buffers: [][]byte{[]byte("x")}, Addr: (*net.UDPAddr)(nil)}}
	if n, err := b.WriteBatch(out, 0); n != 0 || !errors.Is(err, errNotUDPAddr) {
		t.Errorf("WriteBatch(nil *UDPAddr) = %d, %v; want errNotUDPAddr", n, err)
	}
}

// kernelMmsghdr is the size of the kernel's struct mmsghdr on this
// architecture: msg_len right after the msghdr, the whole padded to the
// msghdr's alignment (32 bytes on 386 and arm, 64 on amd64 and arm64).
const kernelMmsghdr = (unsafe.Sizeof(unix.Msghdr{}) + 4 + unsafe.Alignof(unix.Msghdr{}) - 1) &^ (unsafe.Alignof(unix.Msghdr{}) - 1)

// A wrong stride fails to compile (a negative array length), on any
// GOARCH the tests are built for: GOARCH=arm go vet ./filter/dnsproxy runs
// it on a 64-bit machine. With another stride the kernel reads every
// message after the first from the wrong place (on 32-bit Linux, a fixed
// 4-byte pad made it 36 bytes, not 32).
var (
	_ [kernelMmsghdr - unsafe.Sizeof(mmsghdr{})]byte
	_ [unsafe.Sizeof(mmsghdr{}) - kernelMmsghdr]byte
	_ [unsafe.Offsetof(mmsghdr{}.len) - unsafe.Sizeof(unix.Msghdr{})]byte
)

// A batch costs no allocation but each datagram's source address (one
// each, octets included): the system calls' state is the batch's, not a
// closure's (issue 21: three allocations per batch before, and two per
// IPv4 source).
func TestRawBatchAllocations(t *testing.T) {
	sc, sb := listenBatch(t, "udp4", "127.0.0.1")
	rc, rb := listenBatch(t, "udp4", "127.0.0.1")
	out := make([]ipv4.Message, 4)
	for i := range out {
		out[i].Buffers = [][]byte{[]byte("query")}
		out[i].Addr = rc.LocalAddr()
	}
	in := messages(16, 64)
	if err := rc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	roundTrip := func() {
		if n, err := sb.WriteBatch(out, 0); err != nil || n != len(out) {
			t.Fatalf("WriteBatch = %d, %v", n, err)
		}
		for got := 0; got < len(out); {
			n, err := rb.ReadBatch(in[got:], 0)
			if err != nil {
				t.Fatalf("ReadBatch: %v", err)
			}
			got += n
		}
	}
	roundTrip()
	if a, ok := in[0].Addr.(*net.UDPAddr); !ok || a.Port != sc.LocalAddr().(*net.UDPAddr).Port || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || len(a.IP) != net.IPv4len {
		t.Fatalf("source %#v, want 127.0.0.1 as 4 octets and the sender's port", in[0].Addr)
	}
	if n := testing.AllocsPerRun(20, roundTrip); n > float64(len(out)) {
		t.Errorf("%.1f allocations to send and read %d datagrams, want at most %d (their sources)", n, len(out), len(out))
	}
}
