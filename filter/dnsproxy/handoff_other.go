//go:build !linux

package dnsproxy

import (
	"net"
	"net/netip"
)

// writeWaking writes b on the connected UDP socket c. Here every reader
// of a group reads its socket (readerGroup.every): none needs waking.
func writeWaking(c *net.UDPConn, b []byte, _ *readerGroup) error {
	_, err := c.Write(b)
	return err
}

// writeToUDP sends b to the client to from the socket c (raw on Linux,
// handoff_linux.go).
func writeToUDP(c *net.UDPConn, b []byte, to netip.AddrPort) error {
	_, err := c.WriteToUDPAddrPort(b, to)
	return err
}
