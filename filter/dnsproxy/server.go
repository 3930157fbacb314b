package dnsproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"

	"github.com/netward/netward/internal/bindhint"
)

// Proxy is the filtering DNS proxy. New starts nothing; Run serves.
type Proxy struct {
	cfg   Config
	stats counters
	cache *cache
	ups   atomic.Pointer[upstreams]
	// drained are the upstream sets replaced by watchResolvers whose
	// queries may still be under way; Run closes them with the current one.
	upsMu   sync.Mutex
	drained []*upstreams

	ready chan struct{}
	mu    sync.Mutex
	addrs []net.Addr
	udp   []*net.UDPConn // the fast path's sockets (several per address: Config.UDPSockets)
	// served counts the datagrams read from each of udp (written by its
	// readers, per batch): how the kernel spread the clients.
	served  map[*net.UDPConn]*atomic.Uint64
	baseCtx context.Context

	// calls coalesces identical cache misses into one upstream query
	// (fetchAsync).
	callsMu sync.Mutex
	calls   map[string]*fetchCall

	resolverEvery time.Duration // tests shorten resolverCheck
	noFastPath    bool          // tests serve every address as an unspecified one is
	// slots bounds the goroutines of the general path, one per UDP
	// datagram: the reader takes a slot before handing a datagram over and
	// the goroutine gives it back when done (see slotReader and
	// generalUDP). Twice MaxInFlight, so a burst
	// beyond the in-flight bound is still answered REFUSED; past it the
	// reader waits and the kernel's socket buffer absorbs or drops.
	slots   chan struct{}
	started atomic.Bool
	// datagrams counts the general-path goroutines of the fast-path
	// sockets (generalWorker), which Run waits for; work queues datagrams
	// for them (one place per slot: a send never blocks), and stopping
	// (closed by Run) ends them. workers counts them, idleWorkers those
	// waiting for work, fetching the goroutines (of any path) waiting for
	// an upstream answer; generalUDP starts another goroutine only when
	// fewer than runnable are neither fetching nor idle (see there).
	datagrams   sync.WaitGroup
	work        chan datagram
	stopping    chan struct{}
	workers     atomic.Int64
	idleWorkers atomic.Int64
	fetching    atomic.Int64
	runnable    int64
	// pktBufs pools the general path's packet buffers (getBuf).
	pktBufs sync.Pool
	// unpackHook, when set (tests), replaces the general path's unpacking.
	unpackHook func(*dns.Msg, []byte) error

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
	return &Proxy{cfg: c, cache: newCache(c.CacheSize), ready: make(chan struct{}), calls: map[string]*fetchCall{},
		slots: make(chan struct{}, 2*c.MaxInFlight), work: make(chan datagram, 2*c.MaxInFlight), stopping: make(chan struct{}),
		runnable: int64(max(2*runtime.GOMAXPROCS(0), 4))}, nil
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
	p.ups.Store(p.newUpstreams(ups))
	defer p.closeUpstreams()
	p.baseCtx = ctx

	var servers []*dns.Server
	var fast []*net.UDPConn // sockets shared by the servers of the fast path
	closeAll := func() {
		for _, uc := range fast {
			_ = uc.Close()
		}
		for _, s := range servers {
			if s.PacketConn != nil {
				_ = s.PacketConn.Close()
			}
			if s.Listener != nil {
				_ = s.Listener.Close()
			}
		}
	}
	var lc net.ListenConfig
	readers := map[*net.UDPConn]int{} // the fast path's readers per socket
	for _, l := range c.Listen {
		// Several sockets (SO_REUSEPORT) only where the fast path reads
		// them: on one IP address (see specific).
		n := 1
		if !p.noFastPath && specificListen(l) {
			n = c.UDPSockets
		}
		pc, ln, err := listenPair(ctx, &lc, l, n > 1)
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
		if uc, ok := pc.(*net.UDPConn); ok && !p.noFastPath && specific(uc.LocalAddr()) {
			// Several workers read each socket, each answering common
			// queries inline and handing the rest to the general path
			// (fast.go); the sockets of a SO_REUSEPORT group share them.
			group, err := joinGroup(ctx, uc, n)
			fast = append(fast, group...)
			if err != nil {
				_ = ln.Close()
				closeAll()
				return err
			}
			for _, g := range group {
				// Two readers or more per socket even in a group: one
				// alone leaves its socket unread while it answers a
				// batch. Measured against one socket read by two: one
				// reader per socket cost 0.93–1.15× the CPU per query,
				// two readers per socket 0.83–1.0× (docs/dns.md). The
				// others read beside the first while the socket is busy
				// or the first waits (readerGroup), and always where
				// reads take one datagram each (off Linux).
				readers[g] = max(runtime.GOMAXPROCS(0), 2)
			}
		} else {
			// A socket on an unspecified address (0.0.0.0, ::) needs a
			// reply from the address each query came to: miekg/dns's own
			// reader keeps it per datagram.
			servers = append(servers, p.udpServer(pc, func(r dns.Reader) dns.Reader { return slotReader{r, p.slots} }))
		}
		servers = append(servers,
			&dns.Server{Listener: netutil.LimitListener(ln, c.MaxTCPConns), Handler: handler{p: p, proto: "tcp"}, MsgAcceptFunc: acceptQuery,
				DecorateWriter: rejectWriter, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxTCPQueries: 256,
				IdleTimeout: func() time.Duration { return 10 * time.Second }, MsgInvalidFunc: p.invalid})
	}
	if len(servers) == 0 {
		return fmt.Errorf("dnsproxy: none of the listen addresses %v exists on this host", c.Listen)
	}
	served := map[*net.UDPConn]*atomic.Uint64{}
	for _, uc := range fast {
		served[uc] = new(atomic.Uint64)
	}
	p.mu.Lock()
	p.udp, p.served = fast, served // before Ready
	p.mu.Unlock()
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
	errc := make(chan error, len(servers))
	serve := func(f func() error) {
		wg.Go(func() {
			if err := f(); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("dnsproxy: server stopped: %w", err)
			}
		})
	}
	for _, s := range servers {
		serve(s.ActivateAndServe)
	}
	var workers sync.WaitGroup
	for _, uc := range fast {
		g := newReaderGroup()
		for i := range readers[uc] {
			w := newUDPWorker(p, uc)
			w.served = served[uc]
			w.group, w.helper = g, i > 0
			workers.Go(w.run)
		}
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// The upstream sets close first: queries waiting on an upstream (TCP
	// clients', the general path's) fail at once instead of holding the
	// servers' shutdown for the upstream timeout. (Closed again on return,
	// after watchResolvers has ended.)
	p.closeUpstreams()
	// Closing the fast path's sockets ends their workers; their
	// general-path goroutines end within the upstream timeout (a reply
	// written to a closed socket is dropped).
	for _, uc := range fast {
		_ = uc.Close()
	}
	workers.Wait()
	close(p.stopping)
	p.datagrams.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.ShutdownContext(sctx)
	}
	closeAll()
	wg.Wait()
	return err
}

// udpServer is the miekg/dns server of one UDP socket, reading through the
// reader decorate makes. Every UDP datagram the reader hands over holds a
// slot, given back by whichever of the server's functions ends its life.
func (p *Proxy) udpServer(pc net.PacketConn, decorate func(dns.Reader) dns.Reader) *dns.Server {
	return &dns.Server{PacketConn: pc, Handler: handler{p: p, proto: "udp", slotted: true}, UDPSize: 65535,
		MsgAcceptFunc: p.acceptUDP, MsgInvalidFunc: p.invalidUDP, DecorateReader: decorate, DecorateWriter: rejectWriter}
}

// rejectWriter is the writer of miekg/dns's servers: the FORMERR and NOTIMP
// replies miekg builds itself (for what acceptQuery rejects, or what fails
// to unpack) reuse the query's header, so they would echo its AA, TC, AD and
// Z bits; their flags are set here to headerReply's (RFC 1035 §4.1.1, RFC
// 6840 §5.8). The handler's own replies never carry those bits with these
// rcodes, so they pass unchanged.
func rejectWriter(w dns.Writer) dns.Writer { return rejectBitsWriter{w} }

type rejectBitsWriter struct{ dns.Writer }

func (w rejectBitsWriter) Write(b []byte) (int, error) {
	if len(b) >= 12 {
		bits := binary.BigEndian.Uint16(b[2:])
		if rc := int(bits & 0xF); rc == dns.RcodeFormatError || rc == dns.RcodeNotImplemented {
			binary.BigEndian.PutUint16(b[2:], rejectBits(bits, rc))
		}
	}
	return w.Writer.Write(b)
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
// pair is tried. With reuse the UDP socket opens a SO_REUSEPORT group
// (joinGroup adds the others).
func listenPair(ctx context.Context, lc *net.ListenConfig, l string, reuse bool) (net.PacketConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(l)
	for try := 0; ; try++ {
		pc, err := lc.ListenPacket(ctx, "udp", l)
		if err == nil && reuse {
			// Bound without SO_REUSEPORT first: like the single socket,
			// this fails if anything holds the address, even a group
			// that would let the agent's sockets join and share its
			// queries. Free, it is bound again as the group's first.
			at := pc.LocalAddr().String()
			_ = pc.Close()
			pc, err = reuseConfig(lc).ListenPacket(ctx, "udp", at)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("dnsproxy: %w; or change dns.listen", bindhint.Explain("udp", l, err))
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
			return nil, nil, fmt.Errorf("dnsproxy: %w; or change dns.listen", bindhint.Explain("tcp", tl, err))
		}
	}
}

// joinGroup returns first and n-1 more sockets bound to its address in its
// SO_REUSEPORT group (listenPair opened it so), or the sockets opened so far
// and the error.
func joinGroup(ctx context.Context, first *net.UDPConn, n int) ([]*net.UDPConn, error) {
	group := []*net.UDPConn{first}
	lc := reuseConfig(&net.ListenConfig{})
	for len(group) < n {
		pc, err := lc.ListenPacket(ctx, "udp", first.LocalAddr().String())
		if err != nil {
			return group, fmt.Errorf("dnsproxy: another UDP socket on %s (SO_REUSEPORT): %w; or set dns.udpSockets to 1", first.LocalAddr(), err)
		}
		uc := pc.(*net.UDPConn)
		setReadBuffer(uc, 4<<20)
		group = append(group, uc)
	}
	return group, nil
}

// reuseConfig is lc with SO_REUSEPORT set on every socket before it binds.
func reuseConfig(lc *net.ListenConfig) *net.ListenConfig {
	r := *lc
	r.Control = reusePort
	return &r
}

// specificListen reports whether the listen address l names one IP
// address (see specific).
func specificListen(l string) bool {
	host, _, err := net.SplitHostPort(l)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && !a.IsUnspecified()
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
		p.swapUpstreams(p.newUpstreams(ups))
		c.Log.Info("dns: the host's resolvers changed", "upstreams", ups)
	}
}

// newUpstreams is the upstream set for addrs with the proxy's settings.
func (p *Proxy) newUpstreams(addrs []string) *upstreams {
	u := newUpstreams(addrs, p.cfg.Timeout, p.cfg.UpstreamControl, &p.stats)
	u.panics = p.cfg.Panics
	return u
}

// swapUpstreams makes u the current set. The old one drains (its sockets
// close as the queries waiting on them end) and is kept until it is over,
// so that Run's end closes it too; the sets that are over are let go.
func (p *Proxy) swapUpstreams(u *upstreams) {
	p.upsMu.Lock()
	defer p.upsMu.Unlock()
	old := p.ups.Swap(u)
	old.drain()
	now := time.Now()
	kept := p.drained[:0]
	for _, d := range p.drained {
		if d.done(now) {
			d.close() // nothing left but its context
		} else {
			kept = append(kept, d)
		}
	}
	clear(p.drained[len(kept):])
	p.drained = append(kept, old)
}

// closeUpstreams closes the current upstream set and every drained one:
// queries still waiting on them fail at once.
func (p *Proxy) closeUpstreams() {
	p.upsMu.Lock()
	sets := append([]*upstreams{p.ups.Load()}, p.drained...)
	p.upsMu.Unlock()
	for _, u := range sets {
		u.close()
	}
}
