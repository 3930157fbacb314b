package dnsproxy

import (
	"errors"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// downAfter consecutive all-upstreams failures mark the upstreams down for
// downFor, during which queries get SERVFAIL at once.
const (
	downAfter = 3
	downFor   = time.Second
)

// fetchCall is one upstream exchange for a cache miss and the queries
// waiting for it: identical misses in flight are coalesced into one
// (Proxy.calls, keyed by the cache key's id).
type fetchCall struct {
	p   *Proxy
	key cacheKey
	id  string
	q   dns.Question
	now time.Time
	ups *upstreams
	// waiters, under Proxy.callsMu until the call completes.
	waiters []fetchWaiter
}

// fetchWaiter is a query waiting for a fetchCall: fetched gets the cached
// answer or the error, and whether other queries shared it. It must not
// panic (it recovers its own).
type fetchWaiter interface {
	fetched(e *cached, err error, shared bool, out *replyBatch)
}

// fetchAsync resolves a cache miss, coalesced with identical ones in
// flight, and hands the outcome to w — on this goroutine if every upstream
// is known to be failing (SERVFAIL at once), else on the goroutine that
// receives the upstream's answer (or its timeout): no goroutine waits.
// g is the group of the fast-path socket reader calling, if one is: woken
// before the upstream query waits to be sent (readerGroup); qb, when set,
// is its batch, where the upstream query waits for the end of the reader's
// read batch (queryBatch).
//
// A panic while the call is begun (the upstream query sent) is recovered
// here, counted, and ends the call: its waiters get SERVFAIL, and the next
// identical query starts a new call instead of joining one that would
// never complete.
func (p *Proxy) fetchAsync(key cacheKey, id string, q dns.Question, now time.Time, w fetchWaiter, g *readerGroup, qb *queryBatch) {
	p.callsMu.Lock()
	if c, ok := p.calls[id]; ok {
		c.waiters = append(c.waiters, w)
		p.callsMu.Unlock()
		return
	}
	c := &fetchCall{p: p, key: key, id: id, q: q, now: now, waiters: []fetchWaiter{w}}
	p.calls[id] = c
	p.callsMu.Unlock()
	defer func() {
		if v := recover(); v != nil {
			p.stats.panics.Add(1)
			p.cfg.Panics.Recovered("dns", v)
			c.complete(nil, errPanic, nil)
		}
	}()
	if until := p.downUntil.Load(); until != 0 && now.UnixNano() < until {
		p.stats.srvFail.Add(1)
		c.complete(nil, errAllFailed, nil)
		return
	}
	c.ups = p.ups.Load()
	c.ups.exchangeFrom(dns.Question{Name: q.Name, Qtype: q.Qtype, Qclass: q.Qclass}, key.do, key.cd, c, g, qb)
}

// errPanic is the outcome of a fetch whose answer could not be taken in.
var errPanic = errors.New("dnsproxy: panic while taking in an upstream answer")

// exchanged takes in the upstream's outcome and answers every waiter. A
// panic here costs the waiters a SERVFAIL, never the process (it runs on an
// upstream socket's reader).
func (c *fetchCall) exchanged(m *dns.Msg, addr string, err error, out *replyBatch) {
	p := c.p
	var e *cached
	func() {
		defer func() {
			if v := recover(); v != nil {
				p.stats.panics.Add(1)
				p.cfg.Panics.Recovered("dns", v)
				e, err = nil, errPanic
			}
		}()
		e, err = p.resolved(c, m, err)
	}()
	c.complete(e, err, out)
}

// complete ends the call: it is no longer joined, and each waiter gets e or
// err. A second call (the exchange's outcome after a recovered panic
// ended the call, fetchAsync) finds no waiter and leaves a newer call for
// the same name in place.
func (c *fetchCall) complete(e *cached, err error, out *replyBatch) {
	p := c.p
	p.callsMu.Lock()
	if p.calls[c.id] == c {
		delete(p.calls, c.id)
	}
	ws := c.waiters
	c.waiters = nil
	p.callsMu.Unlock()
	shared := len(ws) > 1
	for _, w := range ws {
		w.fetched(e, err, shared, out)
	}
}

// waitFetch is a waiter that blocks its caller (fetch).
type waitFetch struct {
	ch     chan struct{}
	e      *cached
	err    error
	shared bool
}

func (w *waitFetch) fetched(e *cached, err error, shared bool, _ *replyBatch) {
	w.e, w.err, w.shared = e, err, shared
	close(w.ch)
}

// resolved takes in what the upstreams said for c: counted and logged if
// they all failed, else cached and its addresses mapped to the name.
func (p *Proxy) resolved(c *fetchCall, m *dns.Msg, err error) (*cached, error) {
	key, id, q, now, ups := c.key, c.id, c.q, c.now, c.ups
	if err != nil {
		p.stats.srvFail.Add(1)
		if p.baseCtx.Err() == nil {
			// Three queries in a row failing on every upstream mark them
			// down for a second: one name whose servers never answer must
			// not take the resolver down for every other name. What a
			// forged packet can cause (a first ICMP error on a socket, a
			// panic) does not count: a packet must not switch the
			// filtering off.
			if !errors.Is(err, errNotCounted) && !errors.Is(err, errPanic) && p.consecFails.Add(1) >= downAfter {
				p.downUntil.Store(p.cfg.Now().Add(downFor).UnixNano())
			}
			if last := p.lastLog.Load(); now.UnixNano()-last > int64(10*time.Second) && p.lastLog.CompareAndSwap(last, now.UnixNano()) {
				p.cfg.Log.Warn("dns: every upstream failed; answering SERVFAIL (check the network and dns.upstreams)",
					"upstreams", ups.addrs, "err", err, "servFailTotal", p.stats.srvFail.Load())
			}
		}
		return nil, err
	}
	p.consecFails.Store(0)
	p.downUntil.Store(0)
	// Keep only what is relayed: no OPT (the client gets its own).
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
	if p.cfg.StripECH && (q.Qtype == dns.TypeHTTPS || q.Qtype == dns.TypeSVCB) {
		stripECH(m.Answer)
	}
	e := &cached{key: key, id: id, msg: m, stored: now, chain: cnameChain(m.Answer)}
	ttl := cacheTTL(m, p.cfg.MinTTL, p.cfg.MaxTTL, p.cfg.MaxNegativeTTL)
	e.expires = now.Add(ttl)
	if ttl > 0 && p.cache != nil && p.cache.max > 0 {
		e.wire = packAnswer(m, key.name, q.Qtype)
		p.cache.put(e)
	}
	if p.cfg.Names != nil {
		name := canonical(q.Name)
		for _, rr := range m.Answer {
			switch v := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(v.A); ok {
					p.cfg.Names.Add(a, name, time.Duration(v.Hdr.Ttl)*time.Second)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(v.AAAA); ok {
					p.cfg.Names.Add(a, name, time.Duration(v.Hdr.Ttl)*time.Second)
				}
			}
		}
	}
	return e, nil
}

// relay builds the client's reply from an upstream answer: the client's ID,
// flags and question, the upstream's rcode and records with TTLs aged by the
// time spent in the cache.
func (p *Proxy) relay(req *dns.Msg, e *cached, now time.Time, owned bool) *dns.Msg {
	up := e.msg
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	m.Rcode = up.Rcode
	m.AuthenticatedData = up.AuthenticatedData && (req.AuthenticatedData || isDO(req))
	if owned {
		// Nobody else has these records. The full slice expressions make
		// finish's append of the OPT record allocate instead of writing
		// into the upstream message's spare capacity.
		m.Answer, m.Ns, m.Extra = up.Answer, up.Ns, up.Extra[:len(up.Extra):len(up.Extra)]
		return m
	}
	elapsed := uint32(max(now.Sub(e.stored), 0) / time.Second)
	remaining := uint32(max(e.expires.Sub(now), 0) / time.Second)
	m.Answer = ttlAdjusted(up.Answer, elapsed, remaining)
	m.Ns = ttlAdjusted(up.Ns, elapsed, remaining)
	m.Extra = ttlAdjusted(up.Extra, elapsed, remaining)
	return m
}

func isDO(req *dns.Msg) bool {
	opt := req.IsEdns0()
	return opt != nil && opt.Do()
}

func rcodeReply(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	return m
}
