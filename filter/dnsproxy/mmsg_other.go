//go:build !linux

package dnsproxy

import "net"

// newBatchConn returns x/net's PacketConn: the raw recvmmsg/sendmmsg
// batches are Linux's (mmsg_linux.go).
func newBatchConn(conn *net.UDPConn, v6 bool) batchConn { return newNetBatchConn(conn, v6) }
