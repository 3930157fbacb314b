package dnsproxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

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
