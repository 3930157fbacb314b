package dnsproxy

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
)

// The wire fast path. A socket bound to one address is read by several
// miekg/dns servers at once, each through a fastReader: the reader answers
// the most common query — cached, allowed, in the common form of wire.go —
// inline from bytes, without a goroutine or a dns.Msg, and hands every other
// datagram (cache misses, blocked names, malformed or unusual queries) to
// its server, which runs the general path in a goroutine: the header check,
// FORMERR and NOTIMP, unpacking, the handler. The fast path decides through
// the same chain steps as the general path (chain.go).
//
// A socket bound to an unspecified address (0.0.0.0, ::) is served by
// miekg's own reader: a reply there must leave from the address the query
// came to, which needs per-datagram control messages.

// fastConn is a fast-path socket as its servers see it: not a
// *net.UDPConn, so miekg/dns reads it through fastReader.ReadPacketConn and
// writes the general path's replies with WriteTo, instead of with the
// per-datagram session its own reader keeps (which a socket bound to one
// address does not need).
type fastConn struct{ *net.UDPConn }

// fastReader is the reader of one server of a fast-path socket. Its
// buffers are its own: each server reads from one goroutine.
type fastReader struct {
	dns.Reader
	p    *Proxy
	conn *net.UDPConn

	buf, out, name []byte
	q              wireQuery

	failures int
	lastWarn time.Time
}

func newFastReader(p *Proxy, conn *net.UDPConn, r dns.Reader) *fastReader {
	return &fastReader{Reader: r, p: p, conn: conn, buf: make([]byte, 65535),
		out: make([]byte, 0, upstreamUDPSize), name: make([]byte, 0, 256)}
}

// ReadPacketConn answers datagrams on the fast path until one needs the
// general path, and returns that one (a copy, holding a slot: the socket
// buffer absorbs a burst while every slot is taken). It returns an error
// only when the socket is closed; other read errors are logged
// (rate-limited) and reading goes on, never spinning.
func (r *fastReader) ReadPacketConn(net.PacketConn, time.Duration) ([]byte, net.Addr, error) {
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(r.buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, nil, err
			}
			r.failures++
			if time.Since(r.lastWarn) >= 10*time.Second {
				r.p.cfg.Log.Error("dns: cannot read the UDP socket", "addr", r.conn.LocalAddr().String(), "err", err, "failures", r.failures)
				r.lastWarn = time.Now()
			}
			time.Sleep(time.Millisecond)
			continue
		}
		pkt := r.buf[:n]
		if r.fast(pkt, from) {
			continue
		}
		r.p.slots <- struct{}{}
		return append([]byte(nil), pkt...), net.UDPAddrFromAddrPort(from), nil
	}
}

// fast answers pkt from the wire if it is a common-form query whose answer
// is cached and allowed, and reports whether it did. A panic in it is
// recovered, counted and answered SERVFAIL, so the reader (and the process)
// goes on with the next datagram.
func (r *fastReader) fast(pkt []byte, from netip.AddrPort) (done bool) {
	p := r.p
	defer func() {
		if v := recover(); v != nil {
			p.stats.panics.Add(1)
			p.cfg.Panics.Recovered("dns", v)
			if reply, ok := servFail(pkt); ok {
				_, _ = r.conn.WriteToUDPAddrPort(reply, from)
			}
			done = true
		}
	}()
	if p.cache == nil || p.cache.max == 0 {
		return false
	}
	var ok bool
	if r.name, ok = parseQuery(pkt, &r.q, r.name[:0]); !ok {
		return false
	}
	now := p.cfg.Now()
	out, ok := p.fastAnswer(&r.q, &r.name, now, from, r.out[:0])
	if !ok {
		return false
	}
	r.out = out
	_, _ = r.conn.WriteToUDPAddrPort(out, from)
	p.stats.observe(p.cfg.Now().Sub(now))
	return true
}

// fastAnswer builds the reply to q from the cache, through the chain's
// decisions (the question name, then every CNAME target), or returns false
// for the general path to answer: a miss, a special name, a refusal, a
// chain longer than maxFastChain, a reply too large for the client. It
// changes no counter and reports nothing unless it answers.
func (p *Proxy) fastAnswer(q *wireQuery, name *[]byte, now time.Time, from netip.AddrPort, out []byte) ([]byte, bool) {
	*name = appendID(*name, q.qtype, q.do, q.flags&flagCD != 0)
	e := p.cache.getBytes(*name, now)
	if e == nil || e.wire == nil || e.wire.replyLen(q) > q.maxReply() {
		return nil, false
	}
	host := e.key.name[:len(e.key.name)-1]
	if p.special(host) {
		return nil, false
	}
	d := p.cfg.Decider.DecideName(host)
	if d.Verdict.Blocks() || len(e.chain) > maxFastChain {
		return nil, false
	}
	var buf [maxFastChain]filter.Decision
	targets := buf[:len(e.chain)]
	if len(targets) > 0 && p.decideTargets(e.chain, targets) >= 0 {
		return nil, false
	}
	elapsed := uint32(max(now.Sub(e.stored), 0) / time.Second)
	remaining := uint32(max(e.expires.Sub(now), 0) / time.Second)
	out = e.wire.reply(out, q, elapsed, remaining)

	p.stats.queries.Add(1)
	p.stats.cacheHits.Add(1)
	p.relayed(d, host, e.chain, targets, evCtx{qname: host, qtype: q.qtype, client: from, proto: "udp", cached: true})
	return out, true
}

// servFail is a SERVFAIL reply to the query pkt carrying only a header
// (RFC 1035 §4.1.1: RD copied; RFC 4035 §3.2.2: CD too): what failed to
// answer is not repeated. ok is false for what has no header or is a
// response.
func servFail(pkt []byte) ([]byte, bool) {
	if len(pkt) < 12 {
		return nil, false
	}
	bits := binary.BigEndian.Uint16(pkt[2:])
	if bits&flagQR != 0 {
		return nil, false
	}
	m := new(dns.Msg)
	m.Id = binary.BigEndian.Uint16(pkt)
	m.Response = true
	m.Opcode = int(bits>>11) & 0xF
	m.RecursionDesired = bits&flagRD != 0
	m.CheckingDisabled = bits&flagCD != 0
	m.Rcode = dns.RcodeServerFailure
	b, err := m.Pack()
	return b, err == nil
}
