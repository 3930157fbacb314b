//go:build !linux

package dnsproxy

import (
	"net"
	"net/netip"
)

// replyBatch sends the forwarded replies of an upstream read batch
// together on Linux (replybatch_linux.go); here there is none
// (newReplyBatch is nil) and each reply leaves at once.
type replyBatch struct{}

func newReplyBatch() *replyBatch { return nil }

// add sends b at once (never reached: there is no batch here).
func (r *replyBatch) add(p *Proxy, conn *net.UDPConn, bp *[]byte, b []byte, to netip.AddrPort) {
	_ = writeToUDP(conn, b, to)
	p.putBuf(bp)
}

func (r *replyBatch) flush() {}
