package dnsproxy

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
)

// udpServer serves one UDP socket bound to a specific address. Instead of
// miekg/dns's server, which starts a goroutine and unpacks a dns.Msg for
// every datagram, a few readers answer cached queries inline from the wire
// (see wire.go) and hand everything else — cache misses, blocked names,
// malformed or unusual queries — to a goroutine running the general path.
// Those goroutines are bounded by the proxy's slots, as with miekg's server.
//
// A socket bound to an unspecified address (0.0.0.0, ::) stays with miekg's
// server: a reply there must leave from the address the query came to,
// which needs per-datagram control messages.
type udpServer struct {
	p    *Proxy
	conn *net.UDPConn
	h    handler
	wg   sync.WaitGroup // general-path goroutines
}

func newUDPServer(p *Proxy, conn *net.UDPConn) *udpServer {
	return &udpServer{p: p, conn: conn, h: handler{p: p, proto: "udp"}}
}

// serve reads until the socket is closed, then waits for the general-path
// goroutines (each bounded by the upstream timeout).
func (s *udpServer) serve() error {
	readers := max(runtime.GOMAXPROCS(0), 2)
	errc := make(chan error, readers)
	var rw sync.WaitGroup
	for range readers {
		rw.Go(func() { errc <- s.read() })
	}
	rw.Wait()
	s.wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}

// read is one reader's loop.
func (s *udpServer) read() error {
	p := s.p
	buf := make([]byte, 65535)
	out := make([]byte, 0, upstreamUDPSize)
	name := make([]byte, 0, 256)
	var q wireQuery
	var failures int
	var lastWarn time.Time
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Never spin on a broken socket, and say so (rate-limited).
			failures++
			if time.Since(lastWarn) >= 10*time.Second {
				p.cfg.Log.Error("dns: cannot read the UDP socket", "addr", s.conn.LocalAddr().String(), "err", err, "failures", failures)
				lastWarn = time.Now()
			}
			time.Sleep(time.Millisecond)
			continue
		}
		pkt := buf[:n]
		if s.fast(pkt, from, &q, &out, &name) {
			continue
		}
		p.slots <- struct{}{} // wait for a slot: the socket buffer absorbs the burst
		b := append([]byte(nil), pkt...)
		s.wg.Go(func() {
			defer p.release()
			s.general(b, from)
		})
	}
}

// fast is fastUDP for one datagram of the reader's loop: a panic in it is
// recovered, counted and answered SERVFAIL, so the reader (and the process)
// goes on with the next datagram.
func (s *udpServer) fast(pkt []byte, from netip.AddrPort, q *wireQuery, out, name *[]byte) (done bool) {
	p := s.p
	defer func() {
		if v := recover(); v != nil {
			p.stats.panics.Add(1)
			p.cfg.Panics.Recovered("dns", v)
			if h, ok := wireHeader(pkt); ok && h.Bits&flagQR == 0 {
				w := &udpWriter{conn: s.conn, to: from}
				_ = w.WriteMsg(headerReply(h, dns.RcodeServerFailure))
			}
			done = true
		}
	}()
	return p.fastUDP(s.conn, pkt, from, q, out, name)
}

// fastUDP answers pkt from the wire if it is a common-form query whose
// answer is cached and allowed, and reports whether it did; out and name
// are the reader's scratch buffers.
func (p *Proxy) fastUDP(conn *net.UDPConn, pkt []byte, from netip.AddrPort, q *wireQuery, out, name *[]byte) bool {
	if p.cache == nil || p.cache.max == 0 {
		return false
	}
	var ok bool
	if *name, ok = parseQuery(pkt, q, (*name)[:0]); !ok {
		return false
	}
	now := p.cfg.Now()
	r, ok := p.fastAnswer(q, name, now, from, (*out)[:0])
	if !ok {
		return false
	}
	*out = r
	_, _ = conn.WriteToUDPAddrPort(r, from)
	p.stats.observe(p.cfg.Now().Sub(now))
	return true
}

// fastAnswer builds the reply to q from the cache, deciding the question
// name and every CNAME target like answer does, or returns false. It
// changes no counter and reports nothing unless it answers.
func (p *Proxy) fastAnswer(q *wireQuery, name *[]byte, now time.Time, from netip.AddrPort, out []byte) ([]byte, bool) {
	*name = appendID(*name, q.qtype, q.do, q.flags&flagCD != 0)
	e := p.cache.getBytes(*name, now)
	if e == nil || e.wire == nil || e.wire.replyLen(q) > q.maxReply() {
		return nil, false
	}
	host := e.key.name[:len(e.key.name)-1]
	if host == canaryName || (p.cfg.Capture && relayNames[host]) {
		return nil, false
	}
	d := p.cfg.Decider.DecideName(host)
	if d.Verdict.Blocks() || len(e.chain) > maxFastChain {
		return nil, false
	}
	var chain [maxFastChain]filter.Decision
	for i, target := range e.chain {
		if chain[i] = p.cfg.Decider.DecideName(target); chain[i].Verdict.Blocks() {
			return nil, false
		}
	}
	elapsed := uint32(max(now.Sub(e.stored), 0) / time.Second)
	remaining := uint32(max(e.expires.Sub(now), 0) / time.Second)
	out = e.wire.reply(out, q, elapsed, remaining)

	p.stats.queries.Add(1)
	p.stats.cacheHits.Add(1)
	ev := evCtx{qname: host, qtype: q.qtype, client: from, proto: "udp"}
	for i, target := range e.chain {
		p.report(chain[i], target, ev)
	}
	p.stats.verdict(d.Verdict)
	p.report(d, host, ev)
	return out, true
}

// general answers one datagram the way miekg/dns's server would: no reply
// to what has no header or is a response; FORMERR or NOTIMP from the header
// for what the accept check refuses or cannot be unpacked; the handler for
// the rest.
func (s *udpServer) general(b []byte, from netip.AddrPort) {
	p := s.p
	w := &udpWriter{conn: s.conn, to: from}
	h, ok := wireHeader(b)
	if !ok {
		p.invalid(b, errors.New("no header"))
		return
	}
	defer func() {
		// The handler recovers its own panics; this covers the unpacking.
		if v := recover(); v != nil {
			p.stats.panics.Add(1)
			p.cfg.Panics.Recovered("dns", v)
			_ = w.WriteMsg(headerReply(h, dns.RcodeServerFailure))
		}
	}()
	action := acceptQuery(h)
	req := new(dns.Msg)
	if action == dns.MsgAccept {
		err := req.Unpack(b)
		if err == nil {
			s.h.ServeDNS(w, req)
			return
		}
		p.invalid(b, err)
		action = dns.MsgReject
	}
	if action == dns.MsgIgnore {
		return
	}
	rcode := dns.RcodeFormatError
	if action == dns.MsgRejectNotImplemented {
		rcode = dns.RcodeNotImplemented
	}
	_ = w.WriteMsg(headerReply(h, rcode))
}

// wireHeader reads the 12-byte DNS header at the start of b (RFC 1035 §4.1.1).
func wireHeader(b []byte) (dns.Header, bool) {
	if len(b) < 12 {
		return dns.Header{}, false
	}
	return dns.Header{
		Id:      binary.BigEndian.Uint16(b),
		Bits:    binary.BigEndian.Uint16(b[2:]),
		Qdcount: binary.BigEndian.Uint16(b[4:]),
		Ancount: binary.BigEndian.Uint16(b[6:]),
		Nscount: binary.BigEndian.Uint16(b[8:]),
		Arcount: binary.BigEndian.Uint16(b[10:]),
	}, true
}

// headerReply is a reply to the query with header h that carries only a
// header: what failed to unpack (or to answer) is not repeated.
func headerReply(h dns.Header, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.Id = h.Id
	m.Response = true
	m.Opcode = int(h.Bits>>11) & 0xF
	// RD is copied into every response (RFC 1035 §4.1.1), CD too (RFC 4035 §3.2.2).
	m.RecursionDesired = h.Bits&flagRD != 0
	m.CheckingDisabled = h.Bits&flagCD != 0
	m.Rcode = rcode
	return m
}

// udpWriter is the dns.ResponseWriter of a general-path datagram.
type udpWriter struct {
	conn *net.UDPConn
	to   netip.AddrPort
}

func (w *udpWriter) LocalAddr() net.Addr  { return w.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.to) }
func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.conn.WriteToUDPAddrPort(b, w.to)
	return err
}
func (w *udpWriter) Write(b []byte) (int, error) { return w.conn.WriteToUDPAddrPort(b, w.to) }
func (w *udpWriter) Close() error                { return nil }
func (w *udpWriter) TsigStatus() error           { return nil }
func (w *udpWriter) TsigTimersOnly(bool)         {}
func (w *udpWriter) Hijack()                     {}
