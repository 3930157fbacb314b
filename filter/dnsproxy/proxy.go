package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/singleflight"

	"github.com/netward/netward/filter"
)

// Proxy is the filtering DNS proxy. New starts nothing; Run serves.
type Proxy struct {
	cfg   Config
	stats counters
	cache *cache
	ups   atomic.Pointer[upstreams]

	ready   chan struct{}
	mu      sync.Mutex
	addrs   []net.Addr
	baseCtx context.Context

	// flight coalesces identical cache misses into one upstream query.
	flight singleflight.Group

	resolverEvery time.Duration // tests shorten resolverCheck
	miekgUDP      bool          // tests force miekg's UDP server on every address
	// slots bounds the goroutines miekg/dns starts, one per UDP datagram:
	// the reader takes a slot before reading a datagram and the goroutine
	// gives it back when done (see slotReader). Twice MaxInFlight, so a burst
	// beyond the in-flight bound is still answered REFUSED; past it the
	// reader waits and the kernel's socket buffer absorbs or drops.
	slots   chan struct{}
	started atomic.Bool

	// downUntil (unix nanoseconds) is set when queries keep finding every
	// upstream failing: until then queries get SERVFAIL at once instead of
	// each waiting out the timeout (a counted, logged outage).
	downUntil   atomic.Int64
	consecFails atomic.Int64
	lastLog     atomic.Int64
}

// New checks cfg and returns a proxy that has not started anything.
func New(cfg Config) (*Proxy, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Proxy{cfg: c, cache: newCache(c.CacheSize), ready: make(chan struct{}),
		slots: make(chan struct{}, 2*c.MaxInFlight)}, nil
}

// Ready is closed once Run has bound every listen address.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Addrs returns the bound addresses (UDP and TCP for each listen address),
// valid after Ready.
func (p *Proxy) Addrs() []net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]net.Addr(nil), p.addrs...)
}

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	s := p.stats.snapshot()
	s.CacheEntries = p.cache.len()
	if u := p.ups.Load(); u != nil {
		s.Upstreams = append([]string(nil), u.addrs...)
	}
	return s
}

// Run (once per Proxy) resolves the upstreams, binds every listen address over UDP and TCP
// and serves until ctx ends; then it stops the servers and returns nil. A
// listen failure is returned at once.
func (p *Proxy) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("dnsproxy: Run called twice; create a new Proxy")
	}
	c := &p.cfg
	ups := make([]string, 0, len(c.Upstreams))
	for _, u := range c.Upstreams {
		a, _ := upstreamAddr(u)
		ups = append(ups, a)
	}
	hostResolvers := len(ups) == 0
	if hostResolvers {
		var err error
		if ups, err = hostUpstreams(c.ResolvConf, c.Listen); err != nil {
			// Not fatal: blocked names are still answered, the rest get
			// SERVFAIL until the host has resolvers (watched below).
			c.Log.Error("dns: no upstream resolver; allowed names get SERVFAIL until one appears", "err", err)
		}
	} else {
		ups = dropSelf(ups, c.Listen)
		if len(ups) == 0 {
			return errors.New("dnsproxy: every configured upstream is the proxy itself; set dns.upstreams to real resolvers")
		}
	}
	p.ups.Store(newUpstreams(ups, c.Timeout, c.UpstreamControl, &p.stats))
	defer func() { p.ups.Load().close() }()
	p.baseCtx = ctx

	var servers []*dns.Server
	var udps []*udpServer
	closeAll := func() {
		for _, s := range servers {
			if s.PacketConn != nil {
				_ = s.PacketConn.Close()
			}
			if s.Listener != nil {
				_ = s.Listener.Close()
			}
		}
		for _, u := range udps {
			_ = u.conn.Close()
		}
	}
	var lc net.ListenConfig
	for _, l := range c.Listen {
		pc, ln, err := listenPair(ctx, &lc, l)
		if err != nil && unavailable(err) && len(c.Listen) > 1 {
			// A host without IPv6 (or without that loopback address) still
			// gets DNS on the other addresses.
			c.Log.Warn("dns proxy: listen address unavailable on this host; skipping it", "addr", l, "err", err)
			continue
		}
		if err != nil {
			closeAll()
			return err
		}
		p.mu.Lock()
		p.addrs = append(p.addrs, pc.LocalAddr(), ln.Addr())
		p.mu.Unlock()
		if uc, ok := pc.(*net.UDPConn); ok && !p.miekgUDP && specific(uc.LocalAddr()) {
			udps = append(udps, newUDPServer(p, uc))
		} else {
			servers = append(servers, &dns.Server{PacketConn: pc, Handler: handler{p, "udp", true}, UDPSize: 65535,
				MsgAcceptFunc: p.acceptUDP, MsgInvalidFunc: p.invalidUDP,
				DecorateReader: func(r dns.Reader) dns.Reader { return slotReader{r, p.slots} }})
		}
		servers = append(servers,
			&dns.Server{Listener: netutil.LimitListener(ln, c.MaxTCPConns), Handler: handler{p: p, proto: "tcp"}, MsgAcceptFunc: acceptQuery,
				ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxTCPQueries: 256,
				IdleTimeout: func() time.Duration { return 10 * time.Second }, MsgInvalidFunc: p.invalid})
	}
	if len(servers) == 0 {
		return fmt.Errorf("dnsproxy: none of the listen addresses %v exists on this host", c.Listen)
	}
	var bound []string
	for _, a := range p.Addrs() {
		bound = append(bound, a.Network()+"/"+a.String())
		if ap, err := netip.ParseAddrPort(a.String()); err == nil && !ap.Addr().Unmap().IsLoopback() && a.Network() == "udp" {
			c.Log.Warn("dns proxy serves beyond this host: an open resolver can be abused for traffic amplification; firewall it or listen on loopback",
				"addr", a.String())
		}
	}
	c.Log.Info("dns proxy listening", "listen", bound, "upstreams", ups, "cache", c.CacheSize, "capture", c.Capture)
	close(p.ready)

	var wg sync.WaitGroup
	if hostResolvers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.watchResolvers(ctx)
		}()
	}
	errc := make(chan error, len(servers)+len(udps))
	serve := func(f func() error) {
		wg.Go(func() {
			if err := f(); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("dnsproxy: server stopped: %w", err)
			}
		})
	}
	for _, u := range udps {
		serve(u.serve)
	}
	for _, s := range servers {
		serve(s.ActivateAndServe)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.ShutdownContext(sctx)
	}
	closeAll()
	wg.Wait()
	return err
}

// specific reports whether a is bound to one IP address (not 0.0.0.0 or
// ::), so replies leave from the address queries came to.
func specific(a net.Addr) bool {
	u, ok := a.(*net.UDPAddr)
	return ok && u.IP != nil && !u.IP.IsUnspecified()
}

// unavailable reports a listen error meaning the address does not exist
// here (as opposed to being taken).
func unavailable(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT)
}

// listenPair binds UDP and TCP on the same address. With port 0 the TCP
// listener takes the port the UDP socket got; if TCP has it taken, another
// pair is tried.
func listenPair(ctx context.Context, lc *net.ListenConfig, l string) (net.PacketConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(l)
	for try := 0; ; try++ {
		pc, err := lc.ListenPacket(ctx, "udp", l)
		if err != nil {
			return nil, nil, fmt.Errorf("dnsproxy: listen udp %s: %w (is another DNS server on it? port 53 needs root or CAP_NET_BIND_SERVICE)", l, err)
		}
		if uc, ok := pc.(*net.UDPConn); ok {
			setReadBuffer(uc, 4<<20)
		}
		tl := pc.LocalAddr().String()
		ln, err := lc.Listen(ctx, "tcp", tl)
		if err == nil {
			return pc, ln, nil
		}
		_ = pc.Close()
		if port != "0" || try >= 10 {
			return nil, nil, fmt.Errorf("dnsproxy: listen tcp %s: %w", tl, err)
		}
	}
}

// resolverCheck is how often the host's resolver files are checked for a
// change (a laptop joining another network gets new resolvers by DHCP).
const resolverCheck = 5 * time.Second

// watchResolvers re-reads the host's resolvers when their files change and
// swaps the upstream set; queries in flight finish on the old one.
func (p *Proxy) watchResolvers(ctx context.Context) {
	c := &p.cfg
	every := p.resolverEvery
	if every == 0 {
		every = resolverCheck
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ups, err := hostUpstreams(c.ResolvConf, c.Listen)
		if err != nil || slices.Equal(ups, p.ups.Load().addrs) {
			continue
		}
		old := p.ups.Swap(newUpstreams(ups, c.Timeout, c.UpstreamControl, &p.stats))
		c.Log.Info("dns: the host's resolvers changed", "upstreams", ups)
		// Pooled sockets of the old set are closed; a query still using one
		// closes it itself when done.
		old.close()
	}
}

// downAfter consecutive all-upstreams failures mark the upstreams down for
// downFor, during which queries get SERVFAIL at once.
const (
	downAfter = 3
	downFor   = time.Second
)

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
// is taken) and gives it back if the read fails.
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

func (r slotReader) ReadPacketConn(conn net.PacketConn, timeout time.Duration) ([]byte, net.Addr, error) {
	pr, ok := r.Reader.(dns.PacketConnReader)
	if !ok {
		return nil, nil, errors.New("dnsproxy: reader cannot read a PacketConn")
	}
	r.slots <- struct{}{}
	m, a, err := pr.ReadPacketConn(conn, timeout)
	if err != nil {
		<-r.slots
	}
	return m, a, err
}

type handler struct {
	p     *Proxy
	proto string
	// slotted: the datagram holds a slot taken by slotReader (miekg's UDP
	// server), given back when the handler ends.
	slotted bool
}

func (h handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	p := h.p
	defer func() {
		// A bug while answering one query costs that query a SERVFAIL,
		// never the process: with capture on, a dead proxy would take the
		// owner tables, and so the protection, with it (issue 14).
		if v := recover(); v != nil {
			p.stats.panics.Add(1)
			p.cfg.Panics.Recovered("dns", v)
			m := new(dns.Msg)
			m.SetRcode(req, dns.RcodeServerFailure)
			_ = w.WriteMsg(m)
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
		return
	}
	if p.stats.inFlight.Add(1) > int64(p.cfg.MaxInFlight) {
		p.stats.inFlight.Add(-1)
		p.stats.refused.Add(1)
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		_ = w.WriteMsg(m)
		return
	}
	defer p.stats.inFlight.Add(-1)
	var resp *dns.Msg
	var ede *dns.EDNS0_EDE
	if opt := req.IsEdns0(); opt != nil && opt.Version() != 0 {
		// RFC 6891 §6.1.3: an EDNS version we do not speak gets BADVERS.
		p.stats.rejected.Add(1)
		resp = rcodeReply(req, dns.RcodeBadVers)
	} else {
		resp, ede = p.answer(req, addrPort(w.RemoteAddr()), h.proto)
	}
	p.finish(req, resp, ede, h.proto == "udp")
	_ = w.WriteMsg(resp)
	p.stats.observe(p.cfg.Now().Sub(start))
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

// answer produces the reply for one accepted query, without the OPT record.
func (p *Proxy) answer(req *dns.Msg, client netip.AddrPort, proto string) (*dns.Msg, *dns.EDNS0_EDE) {
	q := req.Question[0]
	switch {
	case q.Qclass != dns.ClassINET:
		// CHAOS (version.bind), HESIOD, ANY: the proxy serves the Internet class only.
		p.stats.rejected.Add(1)
		return rcodeReply(req, dns.RcodeRefused), nil
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR || q.Qtype == dns.TypeOPT || q.Qtype == dns.TypeTSIG:
		p.stats.rejected.Add(1)
		return rcodeReply(req, dns.RcodeRefused), nil
	}
	name := canonical(q.Name)
	if name == canaryName || (p.cfg.Capture && relayNames[name]) {
		p.stats.special.Add(1)
		return negative(req, dns.RcodeNameError, uint32(p.cfg.SyntheticTTL.Seconds())), nil
	}
	ev := evCtx{qname: name, qtype: q.Qtype, client: client, proto: proto}
	d := p.cfg.Decider.DecideName(name)
	if d.Verdict.Blocks() {
		return p.refuse(req, d, name, ev)
	}

	do, cd := false, req.CheckingDisabled
	if opt := req.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	key := cacheKey{name: dns.CanonicalName(q.Name), qtype: q.Qtype, do: do, cd: cd}
	id := key.id()
	now := p.cfg.Now()
	e := p.cache.get(id, now)
	owned := false
	if e != nil {
		p.stats.cacheHits.Add(1)
	} else {
		p.stats.cacheMisses.Add(1)
		v, err, shared := p.flight.Do(id, func() (any, error) { return p.resolve(key, id, q, now) })
		if err == nil {
			e = v.(*cached)
			// Records are ours alone if no other query waited on this
			// fetch and the cache did not take them.
			owned = !shared && !e.shared
		} else {
			p.stats.verdict(d.Verdict)
			p.report(d, name, ev)
			return rcodeReply(req, dns.RcodeServerFailure), nil
		}
	}
	// Every name in the CNAME chain is decided like the question (CONTRACT §7).
	for _, target := range e.chain {
		td := p.cfg.Decider.DecideName(target)
		if td.Verdict.Blocks() {
			return p.refuse(req, td, target, ev)
		}
		p.report(td, target, ev)
	}
	p.stats.verdict(d.Verdict)
	p.report(d, name, ev)
	return p.relay(req, e, now, owned), nil
}

// refuse answers a blocked or warned query and records it.
func (p *Proxy) refuse(req *dns.Msg, d filter.Decision, name string, ev evCtx) (*dns.Msg, *dns.EDNS0_EDE) {
	p.stats.verdict(d.Verdict)
	p.report(d, name, ev)
	return p.blockedReply(req, d), &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: edeText(d, name)}
}

// evCtx is what an Event needs, kept cheap until an Event is produced.
type evCtx struct {
	qname  string
	qtype  uint16
	client netip.AddrPort
	proto  string
}

// addrPort is a client's address and port (zero if it has none).
func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort()
	case *net.TCPAddr:
		return a.AddrPort()
	}
	return netip.AddrPort{}
}

func (p *Proxy) report(d filter.Decision, name string, c evCtx) {
	if p.cfg.OnDecision == nil || (d.Verdict == filter.VerdictAllow && d.Would == filter.VerdictAllow) {
		return
	}
	ev := Event{Name: name, QName: c.qname, QType: dns.TypeToString[c.qtype], Decision: d, Proto: c.proto,
		Client: netip.AddrPortFrom(c.client.Addr().Unmap(), c.client.Port())}
	p.cfg.OnDecision(ev)
}

// resolve asks the upstreams and caches what they say. While every upstream
// is known to be failing, it fails at once.
func (p *Proxy) resolve(key cacheKey, id string, q dns.Question, now time.Time) (*cached, error) {
	if until := p.downUntil.Load(); until != 0 && now.UnixNano() < until {
		p.stats.srvFail.Add(1)
		return nil, errAllFailed
	}
	ups := p.ups.Load()
	uq := dns.Question{Name: q.Name, Qtype: q.Qtype, Qclass: q.Qclass}
	m, _, err := ups.exchange(p.baseCtx, uq, key.do, key.cd)
	if err != nil {
		p.stats.srvFail.Add(1)
		if p.baseCtx.Err() == nil {
			// Three queries in a row failing on every upstream mark them
			// down for a second: one name whose servers never answer must
			// not take the resolver down for every other name.
			if p.consecFails.Add(1) >= downAfter {
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
