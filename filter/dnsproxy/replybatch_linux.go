package dnsproxy

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// replyBatch collects the replies to clients that one read batch of an
// upstream socket produces (upSock.read), and sends them at the end of the
// batch with one sendmmsg per listening socket instead of one sendto each
// (issue 21: the forwarded path's two sends per query were 36 % of its
// CPU). It is its reader's own: one goroutine uses it.
//
// Its sockets are kept from batch to batch (a rawBatch each, with its
// headers): a reader's upstream socket is retired after socketUses
// queries, so what it keeps of a listening socket closed meanwhile is
// bounded and short-lived.
type replyBatch struct {
	socks []replySock
}

// replySock is what waits to leave one listening socket.
type replySock struct {
	conn  *net.UDPConn
	batch batchConn
	ms    []ipv4.Message // [:n] wait; each slot's Buffers and Addr reused
	addrs []replyAddr
	bufs  []replyBuf
	n     int
}

// replyAddr is a slot's destination, the *net.UDPAddr WriteBatch takes,
// with its octets in the same place: no allocation per reply.
type replyAddr struct {
	ua net.UDPAddr
	ip [16]byte
}

// replyBuf is a reply's pooled buffer, given back to its proxy once sent.
type replyBuf struct {
	p  *Proxy
	bp *[]byte
}

func newReplyBatch() *replyBatch { return &replyBatch{} }

// add queues b (packed in bp, of p's pool) to leave conn for to at the
// next flush.
func (r *replyBatch) add(p *Proxy, conn *net.UDPConn, bp *[]byte, b []byte, to netip.AddrPort) {
	var s *replySock
	for i := range r.socks {
		if r.socks[i].conn == conn {
			s = &r.socks[i]
			break
		}
	}
	if s == nil {
		la, _ := conn.LocalAddr().(*net.UDPAddr)
		r.socks = append(r.socks, replySock{conn: conn, batch: newBatchConn(conn, la != nil && la.IP.To4() == nil)})
		s = &r.socks[len(r.socks)-1]
	}
	if s.n == len(s.ms) {
		s.ms = append(s.ms, ipv4.Message{Buffers: make([][]byte, 1)})
		s.addrs = append(s.addrs, replyAddr{})
		s.bufs = append(s.bufs, replyBuf{})
		// addrs may have moved: point every slot at its own again.
		for k := range s.ms {
			s.ms[k].Addr = &s.addrs[k].ua
		}
	}
	k := s.n
	s.n++
	s.ms[k].Buffers[0] = b
	s.bufs[k] = replyBuf{p: p, bp: bp}
	a := &s.addrs[k]
	ip := to.Addr()
	switch {
	case !ip.IsValid():
		a.ua.IP = nil // no destination: WriteBatch skips it, as writeToUDP fails it
	case ip.Is4():
		v := ip.As4()
		copy(a.ip[:], v[:])
		a.ua.IP = a.ip[:4]
	default:
		a.ip = ip.As16()
		a.ua.IP = a.ip[:16]
	}
	a.ua.Port = int(to.Port())
	a.ua.Zone = ip.Zone()
}

// flush sends what waits, in the order added, as many per sendmmsg as the
// kernel takes. A reply that cannot be sent is dropped, as writeToUDP's
// error is (a UDP reply may be lost anyway), and the next goes on: one
// bad destination does not keep the others. A nil batch has none.
func (r *replyBatch) flush() {
	if r == nil {
		return
	}
	for i := range r.socks {
		s := &r.socks[i]
		ms := s.ms[:s.n]
		for len(ms) > 0 {
			n, err := s.batch.WriteBatch(ms, 0)
			if err != nil {
				n = max(n, 1) // skip the one that failed
			}
			ms = ms[n:]
		}
		for k := range s.n {
			s.ms[k].Buffers[0] = nil
			s.bufs[k].p.putBuf(s.bufs[k].bp)
			s.bufs[k] = replyBuf{}
		}
		s.n = 0
	}
}
