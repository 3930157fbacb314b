package dnsproxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A forwarded query's round trip through the raw writes: the query leaves
// a connected socket (writeWaking), the upstream answers from its
// listening socket to the query's source (writeToUDP), on both families
// and from a dual-stack IPv6 socket to an IPv4 client (a mapped address).
func TestRawWriteRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, lnet, laddr, cnet, caddr string }{
		{"udp4", "udp4", "127.0.0.1", "udp4", "127.0.0.1"},
		{"udp6", "udp6", "::1", "udp6", "::1"},
		{"v4 client of a dual-stack socket", "udp", "::", "udp4", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, err := net.ListenUDP(tc.lnet, &net.UDPAddr{IP: net.ParseIP(tc.laddr)})
			if err != nil {
				t.Skipf("no %s socket: %v", tc.lnet, err)
			}
			defer up.Close()
			port := up.LocalAddr().(*net.UDPAddr).Port
			c, err := net.DialUDP(tc.cnet, nil, &net.UDPAddr{IP: net.ParseIP(tc.caddr), Port: port})
			if err != nil {
				t.Skipf("no %s socket: %v", tc.cnet, err)
			}
			defer c.Close()
			g := newReaderGroup()
			if err := writeWaking(c, []byte("query"), g); err != nil {
				t.Fatalf("writeWaking: %v", err)
			}
			if len(g.more) != 0 {
				t.Errorf("a write that did not wait woke a helper")
			}
			buf := make([]byte, 64)
			_ = up.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := up.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:n]) != "query" {
				t.Fatalf("upstream read %q, %v", buf[:n], err)
			}
			if from.Port() != uint16(c.LocalAddr().(*net.UDPAddr).Port) {
				t.Fatalf("query from %v, want the client's port %v", from, c.LocalAddr())
			}
			if err := writeToUDP(up, []byte("answer"), from); err != nil {
				t.Fatalf("writeToUDP(%v): %v", from, err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err = c.Read(buf)
			if err != nil || string(buf[:n]) != "answer" {
				t.Fatalf("client read %q, %v", buf[:n], err)
			}
		})
	}
}

// What the socket cannot send to, or a closed socket, is an error, never a
// panic or a wait.
func TestRawWriteErrors(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeToUDP(c, []byte("x"), netip.MustParseAddrPort("[2001:db8::1]:53")); !errors.Is(err, errNotUDPAddr) {
		t.Errorf("writeToUDP(IPv6 address on an IPv4 socket) = %v, want errNotUDPAddr", err)
	}
	if err := writeToUDP(c, []byte("x"), netip.AddrPort{}); !errors.Is(err, errNotUDPAddr) {
		t.Errorf("writeToUDP(no address) = %v, want errNotUDPAddr", err)
	}
	c.Close()
	if err := writeToUDP(c, []byte("x"), netip.MustParseAddrPort("127.0.0.1:53")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("writeToUDP on a closed socket = %v, want net.ErrClosed", err)
	}
	d, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := writeWaking(d, []byte("x"), nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("writeWaking on a closed socket = %v, want net.ErrClosed", err)
	}
}

// A connected socket whose upstream port is closed: the ICMP error comes
// back from the next write as ECONNREFUSED (upSock.unreachable depends on
// it), not swallowed by the raw call.
func TestRawWriteRefused(t *testing.T) {
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.LocalAddr().(*net.UDPAddr)
	l.Close() // nothing listens there now
	c, err := net.DialUDP("udp4", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := writeWaking(c, []byte("x"), nil)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if err != nil {
			t.Fatalf("writeWaking = %v, want nil or ECONNREFUSED", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no ECONNREFUSED from writes to a closed port")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A full socket (EAGAIN): the raw send wakes the reader group's helper
// once, waits on the netpoller — not spinning, not failing — and sends as
// soon as the peer makes room. A unix datagram pair stands in for the UDP
// socket: its queue fills when the peer does not read, which a loopback
// UDP socket's does not (the kernel drops at the receiver instead).
func TestSendRawWaitsOnEAGAIN(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "dgram")
		defer f.Close()
		c, err := net.FilePacketConn(f) // a non-blocking duplicate on the netpoller
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	w, r := conn(fds[0]), conn(fds[1])
	rc, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	// Fill the queue until the socket refuses (non-blocking: EAGAIN).
	filled := 0
	_ = rc.Write(func(fd uintptr) bool {
		for filled < 100000 {
			if _, err := unix.Write(int(fd), []byte("fill")); err != nil {
				if !errors.Is(err, unix.EAGAIN) {
					t.Errorf("filling: %v", err)
				}
				break
			}
			filled++
		}
		return true
	})
	if filled == 0 || filled == 100000 {
		t.Fatalf("filled %d datagrams before EAGAIN", filled)
	}
	g := newReaderGroup()
	done := make(chan error, 1)
	go func() {
		errno, err := sendRaw(rc, []byte("last"), nil, 0, g)
		if err == nil && errno != 0 {
			err = errno
		}
		done <- err
	}()
	select {
	case <-g.more: // woken at the EAGAIN, before waiting
	case err := <-done:
		t.Fatalf("sendRaw returned %v on a full socket before any room was made", err)
	case <-time.After(5 * time.Second):
		t.Fatal("sendRaw on a full socket woke no helper")
	}
	select {
	case err := <-done:
		t.Fatalf("sendRaw returned %v on a full socket", err)
	case <-time.After(50 * time.Millisecond):
	}
	buf := make([]byte, 16)
	got := 0
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatalf("reading the queue after %d: %v", got, err)
		}
		got++
		if string(buf[:n]) == "last" {
			break
		}
	}
	if got != filled+1 {
		t.Errorf("read %d datagrams, want the %d that filled the queue and the last", got, filled+1)
	}
	if err := <-done; err != nil {
		t.Fatalf("sendRaw after room was made: %v", err)
	}
	if len(g.more) != 0 {
		t.Errorf("woken more than once")
	}
}
