//go:build !linux

package dnsproxy

import "net"

// setReadBuffer sizes the socket's receive buffer so that a burst of
// queries waits in the kernel instead of being dropped.
func setReadBuffer(c *net.UDPConn, n int) { _ = c.SetReadBuffer(n) }

// msgTrunc: elsewhere ReadBatch reads one datagram at a time and a longer
// one fails the read (it is logged and skipped).
const msgTrunc = 0
