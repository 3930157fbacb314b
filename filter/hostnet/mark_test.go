//go:build linux

package hostnet

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netward/netward/internal/e2e"
)

func TestMarkControlSetsSOMark(t *testing.T) {
	e2e.Require(t) // SO_MARK needs CAP_NET_ADMIN
	lc := net.ListenConfig{Control: MarkControl(AgentMark)}
	pc, err := lc.ListenPacket(t.Context(), "udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	raw, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	if uint32(got) != AgentMark {
		t.Fatalf("SO_MARK = %#x, want %#x", got, AgentMark)
	}
}
