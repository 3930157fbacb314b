package dnsproxy

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netward/netward/internal/e2e"
)

// TestReadBufferForced: with the capability the agent runs with, the
// listening socket's buffer goes past net.core.rmem_max.
func TestReadBufferForced(t *testing.T) {
	e2e.Require(t) // root
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const want = 16 << 20 // beyond the default rmem_max of every distribution
	setReadBuffer(c, want)
	raw, _ := c.SyscallConn()
	var got int
	var gerr error
	_ = raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	if got < want { // the kernel reports double what was set (socket(7))
		t.Errorf("SO_RCVBUF = %d, want at least %d", got, want)
	}
}
