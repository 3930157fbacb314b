package dnsproxy

import (
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
)

// The handler is the general path of every query (TCP, and UDP datagrams
// the wire fast path does not answer): miekg/dns's server reads the
// message, checks its header (acceptQuery), unpacks it — answering FORMERR
// or NOTIMP itself for what it refuses — and calls ServeDNS, which runs the
// request chain of the package comment.

// acceptQuery is the server's MsgAcceptFunc, run on the raw header before
// the message is unpacked: responses are dropped (they may be reflection
// attempts); opcodes other than QUERY get NOTIMP; anything but exactly one
// question, or records in the answer/authority sections, or more than one
// additional record (the OPT; TSIG is not served) get FORMERR.
func acceptQuery(h dns.Header) dns.MsgAcceptAction {
	if h.Bits&(1<<15) != 0 { // QR
		return dns.MsgIgnore
	}
	if op := int(h.Bits>>11) & 0xF; op != dns.OpcodeQuery {
		return dns.MsgRejectNotImplemented
	}
	if h.Qdcount != 1 || h.Ancount != 0 || h.Nscount != 0 || h.Arcount > 1 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

func (p *Proxy) invalid(m []byte, err error) {
	p.stats.rejected.Add(1)
}

// UDP datagrams hold a slot from the read to the end of their goroutine.
// miekg/dns ends a datagram's life in exactly one of: MsgInvalidFunc (too
// short, bad header, or unpack failure), MsgAcceptFunc returning anything
// but MsgAccept, or the handler; each gives the slot back.
func (p *Proxy) invalidUDP(m []byte, err error) {
	p.invalid(m, err)
	p.release()
}

func (p *Proxy) acceptUDP(h dns.Header) dns.MsgAcceptAction {
	a := acceptQuery(h)
	if a != dns.MsgAccept {
		p.release()
	}
	return a
}

func (p *Proxy) release() {
	select {
	case <-p.slots:
	default: // never blocks, even if a path released twice
	}
}

// slotReader takes a slot before each UDP read (blocking while every slot
// is taken) and gives it back if the read fails. It is the reader of the
// servers on unspecified addresses; generalUDP takes slots the same way.
type slotReader struct {
	dns.Reader
	slots chan struct{}
}

func (r slotReader) ReadUDP(conn *net.UDPConn, timeout time.Duration) ([]byte, *dns.SessionUDP, error) {
	r.slots <- struct{}{}
	m, s, err := r.Reader.ReadUDP(conn, timeout)
	if err != nil {
		<-r.slots
	}
	return m, s, err
}

// handler is the miekg/dns Handler of every server.
type handler struct {
	p     *Proxy
	proto string
	// slotted: the datagram holds a slot taken by its server's reader
	// (slotReader), given back when the handler ends. (generalUDP's
	// goroutine gives its slot back itself.)
	slotted bool
	// worker: it runs on a general-path goroutine (generalWorker), which
	// is counted as fetching while it waits for an upstream.
	worker bool
}

func (h handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	h.serve(w, req)
}

// serve runs the request chain on req and writes the reply to w. For a
// general-path datagram of a fast-path socket (w a *udpWriter), a cache
// miss does not wait for the upstream: an asyncQuery takes the query over
// — its in-flight count, and the reply, written when the upstream answers
// (asyncQuery.fetched) — and serve reports true.
func (h handler) serve(w dns.ResponseWriter, req *dns.Msg) (handedOff bool) {
	p := h.p
	defer func() {
		// A bug while answering one query costs that query a SERVFAIL,
		// never the process: with capture on, a dead proxy would take the
		// owner tables, and so the protection, with it (issue 14).
		if v := recover(); v != nil {
			p.stats.panics.Add(1)
			p.cfg.Panics.Recovered("dns", v)
			if !handedOff {
				m := new(dns.Msg)
				m.SetRcode(req, dns.RcodeServerFailure)
				_ = w.WriteMsg(m)
			}
		}
	}()
	if h.slotted {
		defer p.release()
	}
	start := p.cfg.Now()
	p.stats.queries.Add(1)
	if len(req.Question) != 1 {
		// The header announced one question (acceptQuery checked it) but
		// the message ended before it: miekg/dns unpacks a short message
		// without error. RFC 1035 §4.1.1: a malformed query gets FORMERR.
		p.stats.rejected.Add(1)
		_ = w.WriteMsg(rcodeReply(req, dns.RcodeFormatError))
		return false
	}
	if p.stats.inFlight.Add(1) > int64(p.cfg.MaxInFlight) {
		p.stats.inFlight.Add(-1)
		p.stats.refused.Add(1)
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		_ = w.WriteMsg(m)
		return false
	}
	defer func() {
		if !handedOff {
			p.stats.inFlight.Add(-1)
		}
	}()
	var resp *dns.Msg
	var ede *dns.EDNS0_EDE
	if opt := req.IsEdns0(); opt != nil && opt.Version() != 0 {
		// RFC 6891 §6.1.3: an EDNS version we do not speak gets BADVERS.
		p.stats.rejected.Add(1)
		resp = rcodeReply(req, dns.RcodeBadVers)
	} else {
		var m *miss
		resp, ede, m = p.answerHead(req, addrPort(w.RemoteAddr()), h.proto)
		if uw, ok := w.(*udpWriter); ok && m != nil {
			aq := &asyncQuery{p: p, w: *uw, req: req, start: start, miss: *m}
			handedOff = true
			p.fetchAsync(m.key, m.id, m.q, m.now, aq, nil, nil)
			return true
		}
		if m != nil {
			v, err, shared := p.fetch(m.key, m.id, m.q, m.now, h.worker)
			resp, ede = p.answerTail(req, m, v, err, shared)
		}
	}
	p.finish(req, resp, ede, h.proto == "udp")
	_ = w.WriteMsg(resp)
	p.stats.observe(p.cfg.Now().Sub(start))
	return false
}

// asyncQuery is a general-path UDP query of a fast-path socket waiting for
// its upstream answer without a goroutine (serve hands it over): it holds
// its slot and its in-flight count until fetched answers the client.
type asyncQuery struct {
	p     *Proxy
	w     udpWriter
	req   *dns.Msg
	start time.Time
	miss  miss
	// raw, when set, is the query as received (a pooled copy): a miss sent
	// upstream by the fast path (fastMiss), which unpacked nothing and took
	// no slot. req is unpacked from it when the answer is there.
	raw *[]byte
}

// fetched finishes the query on the goroutine that received its upstream
// answer (or its failure): the rest of the request chain, the reply
// written, the slot (if it holds one) and the in-flight count given back.
// A panic costs the query a SERVFAIL.
//
// out, when set, takes the reply to send at the end of the upstream read
// batch it came in (replyBatch); the rare replies of a failure or a panic
// leave at once.
func (a *asyncQuery) fetched(e *cached, err error, shared bool, out *replyBatch) {
	p := a.p
	if a.raw != nil {
		defer p.putBuf(a.raw)
	} else {
		defer p.release()
	}
	defer p.stats.inFlight.Add(-1)
	defer func() {
		if v := recover(); v != nil {
			p.stats.panics.Add(1)
			p.cfg.Panics.Recovered("dns", v)
			if a.req == nil {
				p.writeHeaderReply(a.w.conn, *a.raw, dns.RcodeServerFailure, a.w.to)
				return
			}
			m := new(dns.Msg)
			m.SetRcode(a.req, dns.RcodeServerFailure)
			_ = a.w.WriteMsg(m)
		}
	}()
	if a.req == nil {
		req := new(dns.Msg)
		if err := p.unpack(req, *a.raw); err != nil || len(req.Question) != 1 {
			// parseQuery accepted it, so miekg/dns should too; if it does
			// not, the query still gets an answer (RFC 1035 §4.1.1).
			p.stats.rejected.Add(1)
			p.writeHeaderReply(a.w.conn, *a.raw, dns.RcodeFormatError, a.w.to)
			return
		}
		a.req = req
	}
	resp, ede := p.answerTail(a.req, &a.miss, e, err, shared)
	p.finish(a.req, resp, ede, true)
	_ = a.w.writeMsgTo(resp, out)
	p.stats.observe(p.cfg.Now().Sub(a.start))
}

// finish adds the client-facing OPT record (only if the client sent one:
// RFC 6891 §7), the Extended DNS Error, and truncates a UDP answer to the
// client's buffer size (512 without EDNS0, RFC 1035; never above 1232).
func (p *Proxy) finish(req, resp *dns.Msg, ede *dns.EDNS0_EDE, udp bool) {
	size := 512
	if opt := req.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), 512), upstreamUDPSize)
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(upstreamUDPSize)
		o.SetDo(opt.Do())
		if ede != nil {
			o.Option = append(o.Option, ede)
		}
		resp.Extra = append(resp.Extra, o)
	}
	if udp {
		resp.Truncate(size)
	} else {
		resp.Compress = true
	}
}

// answer produces the reply for one accepted query, without the OPT record,
// waiting for the upstream on a cache miss.
func (p *Proxy) answer(req *dns.Msg, client netip.AddrPort, proto string, worker bool) (*dns.Msg, *dns.EDNS0_EDE) {
	resp, ede, m := p.answerHead(req, client, proto)
	if m == nil {
		return resp, ede
	}
	v, err, shared := p.fetch(m.key, m.id, m.q, m.now, worker)
	return p.answerTail(req, m, v, err, shared)
}

// miss is what the rest of the request chain needs of a query after its
// cache miss, while the upstream is asked.
type miss struct {
	d    filter.Decision
	name string
	ev   evCtx
	key  cacheKey
	id   string
	q    dns.Question
	now  time.Time
}

// answerHead is the request chain up to the cache: the reply (without the
// OPT record), or, on a cache miss, no reply and what answerTail needs once
// the upstream has answered.
func (p *Proxy) answerHead(req *dns.Msg, client netip.AddrPort, proto string) (*dns.Msg, *dns.EDNS0_EDE, *miss) {
	q := req.Question[0]
	switch {
	case q.Qclass != dns.ClassINET:
		// CHAOS (version.bind), HESIOD, ANY: the proxy serves the Internet class only.
		p.stats.rejected.Add(1)
		return rcodeReply(req, dns.RcodeRefused), nil, nil
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR || q.Qtype == dns.TypeOPT || q.Qtype == dns.TypeTSIG:
		p.stats.rejected.Add(1)
		return rcodeReply(req, dns.RcodeRefused), nil, nil
	}
	name := canonical(q.Name)
	if p.special(name) {
		p.stats.special.Add(1)
		return negative(req, dns.RcodeNameError, uint32(p.cfg.SyntheticTTL.Seconds())), nil, nil
	}
	ev := evCtx{qname: name, qtype: q.Qtype, client: client, proto: proto}
	d := p.cfg.Decider.DecideName(name)
	if d.Verdict.Blocks() {
		resp, ede := p.refuse(req, d, name, ev)
		return resp, ede, nil
	}

	do, cd := false, req.CheckingDisabled
	if opt := req.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	key := cacheKey{name: dns.CanonicalName(q.Name), qtype: q.Qtype, do: do, cd: cd}
	id := key.id()
	now := p.cfg.Now()
	if e := p.cache.get(id, now); e != nil {
		p.stats.cacheHits.Add(1)
		resp, ede := p.answerFrom(req, e, d, name, ev, now, false)
		return resp, ede, nil
	}
	p.stats.cacheMisses.Add(1)
	return nil, nil, &miss{d: d, name: name, ev: ev, key: key, id: id, q: q, now: now}
}

// answerTail is the request chain after a cache miss: e is the upstream's
// answer (or err), shared whether other queries waited for the same one.
func (p *Proxy) answerTail(req *dns.Msg, m *miss, e *cached, err error, shared bool) (*dns.Msg, *dns.EDNS0_EDE) {
	if err != nil {
		p.stats.verdict(m.d.Verdict)
		// An audit's Event still; but a SERVFAIL is no answer, so a
		// plain allow is not handed to OnAnswer (discovery records).
		if !plainAllow(m.d) {
			p.report(m.d, m.name, m.ev)
		}
		return rcodeReply(req, dns.RcodeServerFailure), nil
	}
	// Records are ours alone if no other query waited on this fetch and
	// the cache did not take them.
	return p.answerFrom(req, e, m.d, m.name, m.ev, m.now, !shared && !e.shared)
}

// answerFrom is the reply from the answer e (cached, or just fetched and
// owned): through the decisions on its CNAME targets, else relayed.
func (p *Proxy) answerFrom(req *dns.Msg, e *cached, d filter.Decision, name string, ev evCtx, now time.Time, owned bool) (*dns.Msg, *dns.EDNS0_EDE) {
	if len(e.chain) > 0 {
		return p.answerChain(req, e, d, name, ev, now, owned)
	}
	p.relayed(d, name, nil, nil, ev)
	return p.relay(req, e, now, owned), nil
}

// fetch resolves a cache miss, coalesced with identical ones in flight,
// waiting for the outcome (TCP, and the servers of unspecified addresses).
// A general-path goroutine (worker) counts as fetching while it waits, and
// as it leaves the CPU starts another for the datagrams queued behind it if
// there is room (spawn).
func (p *Proxy) fetch(key cacheKey, id string, q dns.Question, now time.Time, worker bool) (e *cached, err error, shared bool) {
	if worker {
		p.fetching.Add(1)
		defer p.fetching.Add(-1)
		p.spawn()
	}
	w := &waitFetch{ch: make(chan struct{})}
	p.fetchAsync(key, id, q, now, w, nil, nil)
	<-w.ch
	return w.e, w.err, w.shared
}

// answerChain is the end of answer for an answer with CNAME targets: each is
// decided like the question (CONTRACT §7), and the first that refuses
// decides the reply.
func (p *Proxy) answerChain(req *dns.Msg, e *cached, d filter.Decision, name string, ev evCtx, now time.Time, owned bool) (*dns.Msg, *dns.EDNS0_EDE) {
	var buf [maxFastChain]filter.Decision
	targets := buf[:0]
	if len(e.chain) > len(buf) {
		targets = make([]filter.Decision, 0, len(e.chain))
	}
	targets = targets[:len(e.chain)]
	if i := p.decideTargets(e.chain, targets); i >= 0 {
		p.reportTargets(e.chain[:i], targets[:i], ev)
		return p.refuse(req, targets[i], e.chain[i], ev)
	}
	p.relayed(d, name, e.chain, targets, ev)
	return p.relay(req, e, now, owned), nil
}
