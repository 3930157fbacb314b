package dnsproxy

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/netward/netward/filter"
)

// The wire fast path. A socket bound to one address is read by several
// goroutines at once (udpWorker), each answering the most common queries —
// cached and allowed, or refused by the policy — inline from bytes, without
// a goroutine or a dns.Msg, in the common form of wire.go. Every other
// datagram (cache misses, malformed or unusual queries) takes the general
// path (generalUDP): the header check, FORMERR and NOTIMP, then unpacking
// and the handler on a general-path goroutine, under a recover; a cache
// miss there is handed to the event-driven forwarded path (upstream.go) and
// the goroutine moves on: the reply is sent by the upstream socket's reader
// when the answer comes (asyncQuery). The fast path decides through the
// same chain steps as the general path (chain.go).
//
// A socket bound to an unspecified address (0.0.0.0, ::) is served by
// miekg's own reader: a reply there must leave from the address the query
// came to, which needs per-datagram control messages.

// udpWorker is one reader of a fast-path socket. Its buffers are its own:
// each worker reads from one goroutine.
type udpWorker struct {
	p      *Proxy
	conn   *net.UDPConn
	served *atomic.Uint64 // datagrams read from conn (Proxy.served)

	// One recvmmsg reads up to udpBatch datagrams and one sendmmsg sends
	// the replies the fast path built for them (golang.org/x/net ipv4 and
	// ipv6 ReadBatch/WriteBatch): under load the socket holds several.
	batch      batchConn
	in, out    []ipv4.Message
	inBuf      [][]byte
	outBuf     [][]byte
	name       []byte
	q          wireQuery
	failures   int
	lastWarn   time.Time
	batchError time.Time

	// answers are the cached answers' OnAnswer calls, made once the
	// batch's replies have left (fastAnswer).
	answers []Answer

	// queries collects the upstream queries of a read batch's cache
	// misses, sent at its end (queryBatch; nil where there is none).
	queries *queryBatch

	// group is shared by the readers of one socket; helper says this one
	// reads only while the socket is busy (see run).
	group  *readerGroup
	helper bool
}

// readerGroup ties the readers of one socket. Only one of them (the
// first) waits on the socket when it is quiet: readers parked on one
// socket take turns on its read lock, and every datagram read handed the
// lock to the next one — a goroutine woken, and a thread for it, on every
// query of an idle agent, before its answer left (issue 21: sequential
// queries). A reader that reads a busy batch (busyBatch datagrams or
// more: others are likely queued behind them) wakes a helper through more,
// which reads beside it until it reads a batch that is not busy, then waits
// on more again; so a loaded socket is still read while a batch is being
// answered (two readers per socket: docs/dns.md). Busy is two datagrams:
// with 8 (half a batch) the helper went to sleep and was woken again so
// often under dnsperf's load that blocked and cached answers cost 1.2× the
// CPU of main's (A/B, docs/dns.md seventh part); a sequential client's
// batches are single datagrams. stop is closed when the first reader ends (the
// socket closed).
//
// A reader about to wait on anything but its socket — a general-path slot
// (generalUDP), an upstream socket's dial or a write that would block
// (fastMiss) — wakes a helper first (wake), or nobody would read the
// socket meanwhile and its cached and blocked answers would stop. It
// wakes none when it does not wait: a sequential client's queries still
// wake no other goroutine.
//
// Where ReadBatch reads one datagram per call (x/net: every system but
// Linux), no batch is ever busy: every reader of such a group reads the
// socket (every), as each did before the groups.
type readerGroup struct {
	more  chan struct{}
	stop  chan struct{}
	every bool
}

// busyBatch is the batch size from which a reader wakes a helper.
const busyBatch = 2

// readsBatches reports whether x/net's ReadBatch takes several datagrams
// per call (recvmmsg) here; elsewhere it reads one (ipv4/batch.go).
const readsBatches = runtime.GOOS == "linux"

// newReaderGroup starts nothing; Run starts its readers.
func newReaderGroup() *readerGroup {
	return &readerGroup{more: make(chan struct{}, 1), stop: make(chan struct{}), every: !readsBatches}
}

// wake wakes a helper unless one is woken already; a nil group (a socket
// with one reader, or no socket reader at all) has none.
func (g *readerGroup) wake() {
	if g == nil {
		return
	}
	select {
	case g.more <- struct{}{}:
	default: // a helper is woken already
	}
}

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share (their
// Message is the same type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpBatch is how many datagrams one read takes at most; udpReadSize is the
// largest query read (a longer datagram, flagged MSG_TRUNC, is answered
// FORMERR: a query is one question and an OPT record, a few hundred octets
// even padded to RFC 8467's 468-octet blocks). Every reader holds udpBatch
// of them: at 4 KiB the readers of the agent's sockets held 2 MB, half of
// it for octets no query has (issue 21).
const (
	udpBatch    = 16
	udpReadSize = 2048
)

func newUDPWorker(p *Proxy, conn *net.UDPConn) *udpWorker {
	w := &udpWorker{p: p, conn: conn, name: make([]byte, 0, 256), answers: make([]Answer, 0, udpBatch),
		in: make([]ipv4.Message, udpBatch), out: make([]ipv4.Message, udpBatch), queries: newQueryBatch()}
	a, ok := conn.LocalAddr().(*net.UDPAddr)
	w.batch = newBatchConn(conn, ok && a.IP.To4() == nil)
	for i := range udpBatch {
		w.inBuf = append(w.inBuf, make([]byte, udpReadSize))
		w.outBuf = append(w.outBuf, make([]byte, 0, upstreamUDPSize+optLen))
		w.in[i].Buffers = [][]byte{w.inBuf[i]}
		w.out[i].Buffers = make([][]byte, 1)
	}
	return w
}

// run serves datagrams until the socket is closed: the first reader of a
// group (or a reader without one) always, a helper while the socket is
// busy (readerGroup).
func (w *udpWorker) run() {
	g := w.group
	if !w.helper || g.every {
		if g != nil && !w.helper {
			defer close(g.stop)
		}
		for {
			if _, ok := w.step(); !ok {
				return
			}
		}
	}
	for {
		select {
		case <-g.more:
		case <-g.stop:
			return
		}
		for {
			busy, ok := w.step()
			if !ok {
				return
			}
			if !busy {
				break
			}
		}
	}
}

// step reads one batch and answers it; busy reports a batch of busyBatch
// datagrams or more, ok false that the socket is closed. Other read errors
// are logged (rate-limited) and reading goes on, never spinning.
func (w *udpWorker) step() (busy, ok bool) {
	n, err := w.batch.ReadBatch(w.in, 0)
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return false, false
		}
		w.failures++
		if time.Since(w.lastWarn) >= 10*time.Second {
			w.p.cfg.Log.Error("dns: cannot read the UDP socket", "addr", w.conn.LocalAddr().String(), "err", err, "failures", w.failures)
			w.lastWarn = time.Now()
		}
		time.Sleep(time.Millisecond)
		return false, true
	}
	if w.served != nil {
		w.served.Add(uint64(n))
	}
	busy = n >= busyBatch
	if busy {
		w.group.wake()
	}
	// The upstream queries of several cache misses leave together at the
	// end of the batch, one sendmmsg per upstream socket, not one sendto
	// each (issue 21: the upstream query's send was 23 % of the forwarded
	// path's CPU). A batch of one datagram — a sequential client — sends
	// its query at once: nothing waits for a batch that is not there.
	var qb *queryBatch
	if n > 1 {
		qb = w.queries
	}
	replies := 0
	for i := range n {
		m := &w.in[i]
		from := addrPort(m.Addr)
		pkt := w.inBuf[i][:m.N]
		if msgTrunc != 0 && m.Flags&msgTrunc != 0 {
			w.p.stats.rejected.Add(1)
			w.p.writeHeaderReply(w.conn, pkt, dns.RcodeFormatError, from)
			continue
		}
		if out, done := w.fast(pkt, from, w.outBuf[replies][:0], qb); done {
			if out != nil {
				w.outBuf[replies] = out
				w.out[replies].Buffers[0] = out
				w.out[replies].Addr = m.Addr
				replies++
			}
			continue
		}
		w.p.generalUDP(w.conn, pkt, from, w.group, qb)
	}
	// The queries first: their answers are a round trip away.
	qb.flush(w.group)
	w.send(w.out[:replies])
	for i := range w.answers {
		w.answered(&w.answers[i])
	}
	clear(w.answers)
	w.answers = w.answers[:0]
	return busy, true
}

// answered hands a to OnAnswer; a panic there is recovered and counted
// (the reply has left already), and the reader goes on.
func (w *udpWorker) answered(a *Answer) {
	defer func() {
		if v := recover(); v != nil {
			w.p.stats.panics.Add(1)
			w.p.cfg.Panics.Recovered("dns", v)
		}
	}()
	w.p.cfg.OnAnswer(*a)
}

// send writes the fast path's replies, as many per sendmmsg as the kernel
// takes. A failed send is dropped (a UDP reply may be lost anyway) and
// logged at most every 10 s.
func (w *udpWorker) send(ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := w.batch.WriteBatch(ms, 0)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && time.Since(w.batchError) >= 10*time.Second {
				w.p.cfg.Log.Warn("dns: cannot send replies", "addr", w.conn.LocalAddr().String(), "err", err)
				w.batchError = time.Now()
			}
			n = max(n, 1) // skip the reply that failed
		}
		ms = ms[n:]
	}
}

// fast builds in out the reply to pkt from the wire if it is a common-form
// query that is refused by the policy or whose answer is cached and
// allowed, and reports whether it did. A panic in it is recovered, counted
// and answered SERVFAIL (written at once; done with no reply to send), so
// the worker (and the process) goes on with the next datagram. A cache
// miss's upstream query goes to qb if set (see step).
func (w *udpWorker) fast(pkt []byte, from netip.AddrPort, out []byte, qb *queryBatch) (reply []byte, done bool) {
	p := w.p
	defer func() {
		if v := recover(); v != nil {
			p.stats.panics.Add(1)
			p.cfg.Panics.Recovered("dns", v)
			p.writeHeaderReply(w.conn, pkt, dns.RcodeServerFailure, from)
			reply, done = nil, true // answered: not the general path's
		}
	}()
	var ok bool
	if w.name, ok = parseQuery(pkt, &w.q, w.name[:0]); !ok {
		return nil, false
	}
	now := p.cfg.Now()
	out, ok, m := p.fastDecide(&w.q, &w.name, now, from, out, &w.answers)
	if m != nil {
		return nil, p.fastMiss(w.conn, pkt, &w.q, m, from, w.group, qb)
	}
	if !ok {
		return nil, false
	}
	p.stats.observe(since(now, p.cfg.Now))
	return out, true
}

// since is the time elapsed from t, read from clock. A t with a monotonic
// reading (a real clock's) is subtracted from the monotonic clock alone:
// time.Since reads one clock where time.Now reads two, and under a flood
// of blocked answers each read was ~0.1 µs of the ~11 µs a query costs
// (issue 21). A test's clock (no monotonic reading) is asked instead.
func since(t time.Time, clock func() time.Time) time.Duration {
	if t != t.Round(0) { // Round(0) strips only the monotonic reading
		return time.Since(t)
	}
	return clock().Sub(t)
}

// fastReply is fastDecide for a caller that leaves a cache miss to the
// general path (tests).
func (p *Proxy) fastReply(q *wireQuery, name *[]byte, now time.Time, from netip.AddrPort, out []byte) ([]byte, bool) {
	out, ok, _ := p.fastDecide(q, name, now, from, out, nil)
	return out, ok
}

// fastReply is the fast path's answer to q: refused by the policy (built
// from bytes, fastRefusal), else allowed and cached (fastAnswer); false
// leaves q to the general path. name holds q's name in the cache's form
// (parseQuery). The question name is decided once, after the cache lookup
// (which needs no allocation): a blocked name is never in the cache, so only
// misses and refusals convert the name to a string.
func (p *Proxy) fastDecide(q *wireQuery, name *[]byte, now time.Time, from netip.AddrPort, out []byte, later *[]Answer) ([]byte, bool, *miss) {
	hostLen := len(*name) - 1
	// Decided first, on a view of the name's bytes (the Decider keeps no
	// name): a refused name costs no cache lookup, which it would always
	// miss (issue 21: ~2 % of the agent under a flood of blocked names).
	// The view is not used once the name's buffer is appended to below.
	view := unsafe.String(unsafe.SliceData(*name), hostLen)
	if p.special(view) {
		return nil, false, nil
	}
	d := p.cfg.Decider.DecideName(view)
	if d.Verdict.Blocks() {
		out, ok := p.fastRefusal(q, d, strings.Clone(view), now, from, out) // the event keeps it
		return out, ok, nil
	}
	var e *cached
	if p.cache != nil && p.cache.max > 0 {
		*name = appendID(*name, q.qtype, q.do, q.flags&flagCD != 0)
		e = p.cache.getBytes(*name, now)
	}
	var host string
	if e != nil {
		host = e.key.name[:len(e.key.name)-1]
	} else {
		host = string((*name)[:hostLen])
	}
	if e == nil {
		// A miss: what the rest of the request chain needs once the
		// upstream has answered (the general path's answerHead).
		key := cacheKey{name: host + ".", qtype: q.qtype, do: q.do, cd: q.flags&flagCD != 0}
		return nil, false, &miss{d: d, name: host, ev: evCtx{qname: host, qtype: q.qtype, client: from, proto: "udp"},
			key: key, id: key.id(), q: dns.Question{Name: presentationName(q.qname), Qtype: q.qtype, Qclass: dns.ClassINET}, now: now}
	}
	out, ok := p.fastAnswer(q, e, d, host, now, from, out, later)
	return out, ok, nil
}

// presentationName is the presentation form (with the trailing dot) of a
// wire name parseQuery accepted: uncompressed labels of letters, digits,
// '-' and '_', the client's case kept (the upstream is asked as the
// general path asks it: in the client's spelling).
func presentationName(wire []byte) string {
	b := make([]byte, 0, len(wire))
	for off := 0; off < len(wire); {
		l := int(wire[off])
		if l == 0 {
			break
		}
		b = append(b, wire[off+1:off+1+l]...)
		b = append(b, '.')
		off += 1 + l
	}
	return string(b)
}

// fastMiss sends the upstream query of a cache miss (m, from the common
// form query q in pkt) straight from the socket's reader, as the general
// path's goroutine would (handler.serve, fetchAsync): no handoff to
// another goroutine, which costs a wakeup of one (and of a thread for it)
// on every forwarded query of an idle agent (issue 21: sequential
// forwarded queries). The query is kept (a pooled copy) for the reply,
// built when the upstream answers, on the goroutine that receives it
// (asyncQuery.fetched). Beyond MaxInFlight it reports false: the general
// path answers REFUSED. The reader's group g is woken before the query
// waits for an upstream socket's dial or write (readerGroup). qb, when
// set, takes the upstream query to leave with the rest of the reader's
// batch (queryBatch).
func (p *Proxy) fastMiss(conn *net.UDPConn, pkt []byte, q *wireQuery, m *miss, from netip.AddrPort, g *readerGroup, qb *queryBatch) bool {
	if p.stats.inFlight.Add(1) > int64(p.cfg.MaxInFlight) {
		p.stats.inFlight.Add(-1)
		return false
	}
	p.stats.queries.Add(1)
	p.stats.cacheMisses.Add(1)
	raw := p.getBuf()
	*raw = append((*raw)[:0], pkt...)
	aq := &asyncQuery{p: p, w: udpWriter{p: p, conn: conn, to: from}, raw: raw, start: m.now, miss: *m}
	p.fetchAsync(m.key, m.id, m.q, m.now, aq, g, qb)
	return true
}

// fastRefusal builds the refusal of q (d refuses host, the question name)
// from bytes: the general path's blockedReply, finished (OPT and Extended
// DNS Error for an EDNS0 client), packed the same way — uncompressed, as a
// UDP reply that fits. A reply larger than the client's buffer, or a shape
// it does not build, is left to the general path (which truncates).
func (p *Proxy) fastRefusal(q *wireQuery, d filter.Decision, host string, now time.Time, from netip.AddrPort, out []byte) ([]byte, bool) {
	ip, rcode := p.refusalShape(q.qtype, d.Verdict)
	out = appendRefusal(out, q, ip, rcode, uint32(p.cfg.SyntheticTTL.Seconds()), d, host)
	if len(out) > q.maxReply() {
		return nil, false
	}
	p.stats.queries.Add(1)
	p.refused(d, host, evCtx{qname: host, qtype: q.qtype, client: from, proto: "udp", at: now})
	return out, true
}

// fastAnswer builds the reply to q from the cached answer e, through the
// chain's decisions (d decided the question name host; then every CNAME
// target), or returns false for the general path to answer: a refusing
// target, a chain longer than maxFastChain, a reply too large for the
// client. It changes no counter and reports nothing unless it answers.
//
// With later set, a plain allow's Answer is appended there instead of
// handed to OnAnswer: the reader hands them over once the batch's replies
// have left (udpWorker.step). OnAnswer queues and wakes the recorder's
// worker (a goroutine, and a thread for it in an idle agent), which took
// its share of every cached answer's time before the reply left (issue 21:
// sequential cached queries); a cached answer is attributed by that worker
// anyway, after the fact.
func (p *Proxy) fastAnswer(q *wireQuery, e *cached, d filter.Decision, host string, now time.Time, from netip.AddrPort, out []byte, later *[]Answer) ([]byte, bool) {
	if e.wire == nil || e.wire.replyLen(q) > q.maxReply() || len(e.chain) > maxFastChain {
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
	ev := evCtx{qname: host, qtype: q.qtype, client: from, proto: "udp", cached: true, at: now}
	if later != nil && p.cfg.OnAnswer != nil && plainAllow(d) {
		p.reportTargets(e.chain, targets, ev)
		p.stats.verdict(d.Verdict)
		*later = append(*later, answerOf(d, host, ev))
		return out, true
	}
	p.relayed(d, host, e.chain, targets, ev)
	return out, true
}

// generalUDP is the general path of a datagram the fast path did not
// answer: no reply to what has no header or is a response (any reply could
// be used for amplification), FORMERR or NOTIMP from the header check
// (acceptQuery), else the handler in a goroutine of its own, holding a slot
// (taken here: past 2 × MaxInFlight the worker waits and the kernel's
// socket buffer absorbs the burst or drops). A reader that must wait for
// its slot wakes a helper of its group g first (readerGroup), and sends
// the upstream queries waiting in its batch qb: a slot may be held by a
// query waiting for the answer to one of them (coalesced, fetchAsync).
func (p *Proxy) generalUDP(conn *net.UDPConn, pkt []byte, from netip.AddrPort, g *readerGroup, qb *queryBatch) {
	if len(pkt) < 12 {
		p.stats.rejected.Add(1)
		return
	}
	h := dns.Header{Id: binary.BigEndian.Uint16(pkt), Bits: binary.BigEndian.Uint16(pkt[2:]),
		Qdcount: binary.BigEndian.Uint16(pkt[4:]), Ancount: binary.BigEndian.Uint16(pkt[6:]),
		Nscount: binary.BigEndian.Uint16(pkt[8:]), Arcount: binary.BigEndian.Uint16(pkt[10:])}
	switch acceptQuery(h) {
	case dns.MsgIgnore:
		return
	case dns.MsgReject:
		p.stats.rejected.Add(1)
		p.writeHeaderReply(conn, pkt, dns.RcodeFormatError, from)
		return
	case dns.MsgRejectNotImplemented:
		p.stats.rejected.Add(1)
		p.writeHeaderReply(conn, pkt, dns.RcodeNotImplemented, from)
		return
	}
	select {
	case p.slots <- struct{}{}:
	default:
		g.wake()
		qb.flush(g)
		p.slots <- struct{}{}
	}
	d := datagram{conn, p.getBuf(), from}
	*d.m = append((*d.m)[:0], pkt...)
	p.work <- d // never blocks: the queue has a place per slot
	p.spawn()
}

// spawn starts a general-path goroutine if datagrams are queued beyond
// those waiting for work and fewer than runnable goroutines are on the CPU
// (or about to be). A cache miss does not keep its goroutine waiting for
// the upstream (asyncQuery); one that waits anyway (fetch: not on this
// path since the event-driven forwarded path, kept for safety) does not
// count, and calls spawn as it starts to wait. A goroutine per datagram in
// flight (~540 under dnsperf -q 500) only added stacks, buffers held by
// each and scheduling to the heap the collector doubles (issue 21). A
// queued datagram is otherwise taken by one of those running when it is
// done.
func (p *Proxy) spawn() {
	if int64(len(p.work)) <= p.idleWorkers.Load() {
		return // the goroutines waiting for work take them
	}
	if p.workers.Load()-p.fetching.Load() < p.runnable {
		p.workers.Add(1)
		p.datagrams.Add(1)
		go p.generalWorker()
	}
}

// datagram is one query for the general path, holding a slot and a
// pooled buffer (getBuf).
type datagram struct {
	conn *net.UDPConn
	m    *[]byte
	from netip.AddrPort
}

// pktBufSize is the capacity of the general path's pooled buffers: a query
// copied off the reader's batch, a UDP reply packed (at most 1232 octets
// and the OPT: finish truncates to it). A larger one grows its buffer,
// which is then not pooled.
const pktBufSize = 1536

// getBuf and putBuf pool the general path's packet buffers: a copy of every
// forwarded query and its packed reply were two allocations per query.
func (p *Proxy) getBuf() *[]byte {
	if b, ok := p.pktBufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, pktBufSize)
	return &b
}

func (p *Proxy) putBuf(b *[]byte) {
	if cap(*b) == pktBufSize {
		*b = (*b)[:0]
		p.pktBufs.Put(b)
	}
}

// generalIdle is how long a general-path goroutine waits for another
// datagram before it ends.
const generalIdle = 5 * time.Second

// generalWorker serves queued datagrams until none comes for generalIdle
// or the proxy stops. Reusing goroutines keeps their grown stacks: a new one
// starts at 2 KiB and grew it by copying on every forwarded query (issue 21:
// 8 % of the agent's CPU).
func (p *Proxy) generalWorker() {
	defer p.datagrams.Done()
	t := time.NewTimer(generalIdle)
	defer t.Stop()
	for {
		p.idleWorkers.Add(1)
		var d datagram
		select {
		case d = <-p.work:
			p.idleWorkers.Add(-1)
		case <-t.C:
			// Leaving: counted out first, then the queue looked at once
			// more. A datagram queued before that is served here; one
			// queued after it saw the counts without this goroutine and
			// started another if it had to (generalUDP).
			p.workers.Add(-1)
			p.idleWorkers.Add(-1)
			if len(p.work) > 0 {
				p.workers.Add(1)
				t.Reset(generalIdle)
				continue
			}
			return
		case <-p.stopping:
			p.workers.Add(-1)
			p.idleWorkers.Add(-1)
			return
		}
		p.serveDatagram(d.conn, *d.m, d.from)
		p.putBuf(d.m)
		t.Reset(generalIdle)
	}
}

// serveDatagram unpacks one accepted datagram and runs the handler on it.
// Unpacking is miekg/dns's and runs here under a recover too (its own UDP
// server has none): a panic costs the query a SERVFAIL, is counted and
// logged, and the process goes on (issue 14).
func (p *Proxy) serveDatagram(conn *net.UDPConn, m []byte, from netip.AddrPort) {
	handedOff := false // the slot goes with the query (asyncQuery)
	defer func() {
		if !handedOff {
			p.release()
		}
	}()
	defer func() {
		if v := recover(); v != nil {
			p.stats.panics.Add(1)
			p.cfg.Panics.Recovered("dns", v)
			p.writeHeaderReply(conn, m, dns.RcodeServerFailure, from)
		}
	}()
	req := new(dns.Msg)
	if err := p.unpack(req, m); err != nil {
		// RFC 1035 §4.1.1: a query the server cannot interpret gets FORMERR.
		p.stats.rejected.Add(1)
		p.writeHeaderReply(conn, m, dns.RcodeFormatError, from)
		return
	}
	handedOff = handler{p: p, proto: "udp", worker: true}.serve(&udpWriter{p: p, conn: conn, to: from}, req)
}

// unpack is req.Unpack(m); tests set Proxy.unpackHook to reach the recover
// around it.
func (p *Proxy) unpack(req *dns.Msg, m []byte) error {
	if p.unpackHook != nil {
		return p.unpackHook(req, m)
	}
	return req.Unpack(m)
}

func (p *Proxy) writeHeaderReply(conn *net.UDPConn, pkt []byte, rcode int, to netip.AddrPort) {
	if reply, ok := headerReply(pkt, rcode); ok {
		_ = writeToUDP(conn, reply, to)
	}
}

// udpWriter is the dns.ResponseWriter of a general-path datagram of a
// fast-path socket: the reply leaves from the socket the query came to.
type udpWriter struct {
	p    *Proxy
	conn *net.UDPConn
	to   netip.AddrPort
}

func (w *udpWriter) LocalAddr() net.Addr  { return w.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.to) }
func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	bp := w.p.getBuf()
	defer w.p.putBuf(bp)
	b, err := m.PackBuffer((*bp)[:cap(*bp)])
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// writeMsgTo is WriteMsg, or, when out is set, the packed reply handed to
// out to leave with the rest of its batch (replyBatch.add).
func (w *udpWriter) writeMsgTo(m *dns.Msg, out *replyBatch) error {
	if out == nil {
		return w.WriteMsg(m)
	}
	bp := w.p.getBuf()
	b, err := m.PackBuffer((*bp)[:cap(*bp)])
	if err != nil {
		w.p.putBuf(bp)
		return err
	}
	out.add(w.p, w.conn, bp, b, w.to)
	return nil
}

func (w *udpWriter) Write(b []byte) (int, error) {
	if err := writeToUDP(w.conn, b, w.to); err != nil {
		return 0, err
	}
	return len(b), nil
}
func (w *udpWriter) Close() error        { return nil }
func (w *udpWriter) TsigStatus() error   { return nil }
func (w *udpWriter) TsigTimersOnly(bool) {}
func (w *udpWriter) Hijack()             {}

// headerReply is a reply with rcode to the query pkt carrying only a
// header: what failed or was refused is not repeated. Its flags are QR, the
// query's opcode, RD and CD copied (RFC 1035 §4.1.1; RFC 4035 §3.2.2), RA,
// and the rcode — never the query's AA, TC, AD or Z bits (RFC 6840 §5.8: AD
// only for data the server vouches for). ok is false for what has no header
// or is a response.
func headerReply(pkt []byte, rcode int) ([]byte, bool) {
	if len(pkt) < 12 {
		return nil, false
	}
	bits := binary.BigEndian.Uint16(pkt[2:])
	if bits&flagQR != 0 {
		return nil, false
	}
	b := make([]byte, 12)
	copy(b, pkt[:2])
	binary.BigEndian.PutUint16(b[2:], rejectBits(bits, rcode))
	return b, true
}

// rejectBits are the header flags of an error reply to a query with flags
// bits: see headerReply.
func rejectBits(bits uint16, rcode int) uint16 {
	return flagQR | flagRA | bits&(0xF<<11|flagRD|flagCD) | uint16(rcode&0xF)
}

// newNetBatchConn is x/net's batch reader and writer for conn.
func newNetBatchConn(conn *net.UDPConn, v6 bool) batchConn {
	if v6 {
		return ipv6.NewPacketConn(conn)
	}
	return ipv4.NewPacketConn(conn)
}
