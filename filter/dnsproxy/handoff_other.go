//go:build !linux

package dnsproxy

import "net"

// writeWaking writes b on the connected UDP socket c. Here every reader
// of a group reads its socket (readerGroup.every): none needs waking.
func writeWaking(c *net.UDPConn, b []byte, _ *readerGroup) error {
	_, err := c.Write(b)
	return err
}
