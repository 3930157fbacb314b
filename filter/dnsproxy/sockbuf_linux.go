package dnsproxy

import (
	"net"

	"golang.org/x/sys/unix"
)

// setReadBuffer sizes the socket's receive buffer so that a burst of
// queries waits in the kernel instead of being dropped. SO_RCVBUF is capped
// by net.core.rmem_max (208 KiB on many hosts, a few hundred datagrams);
// the agent runs with CAP_NET_ADMIN, which lets SO_RCVBUFFORCE go past it.
func setReadBuffer(c *net.UDPConn, n int) {
	raw, err := c.SyscallConn()
	if err == nil {
		var serr error
		err = raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) })
		if err == nil && serr == nil {
			return
		}
	}
	_ = c.SetReadBuffer(n) // without the capability: as much as rmem_max allows
}

// msgTrunc is the recvmmsg flag of a datagram longer than the buffer.
const msgTrunc = unix.MSG_TRUNC
