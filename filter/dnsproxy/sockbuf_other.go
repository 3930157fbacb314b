//go:build !linux

package dnsproxy

import "net"

// setReadBuffer sizes the socket's receive buffer so that a burst of
// queries waits in the kernel instead of being dropped.
func setReadBuffer(c *net.UDPConn, n int) { _ = c.SetReadBuffer(n) }
