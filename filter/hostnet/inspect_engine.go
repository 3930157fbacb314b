package hostnet

import (
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/inspect"
	"github.com/netward/netward/internal/guard"
)

// Packet marks the inspector puts on a verdict. A rule copies them to the
// conntrack mark, so the rest of a decided flow never reaches userspace.
const (
	InspectMarkAllow uint32 = 0x6e770001 // "nw" 1
	InspectMarkBlock uint32 = 0x6e770002 // "nw" 2: TCP reset, UDP drop
)

// QUIC handling (config sni.quic).
const (
	QUICInspect = "inspect" // read the name from the Initial; unreadable ⇒ drop (browser falls back to TCP)
	QUICBlock   = "block"   // drop all QUIC: browsers fall back to TCP where the name is visible
	QUICAllow   = "allow"   // do not look at UDP 443 at all
)

// InspectEvent is one decision taken on a connection, for telemetry.
type InspectEvent struct {
	Time     time.Time
	Source   string // "sni", "quic", "http", "ip"
	Protocol string // "Tcp", "Udp", "Quic"
	Name     string // server name or Host; "" for IP-only decisions
	Path     string // HTTP path
	Local    netip.AddrPort
	Remote   netip.AddrPort
	Decision filter.Decision
	Reason   string // why a flow was decided without a name: "unreadable", "dot", "doh", "quic-block", "flows-full", ReasonKernel
}

// ReasonKernel is the Reason of an event for a connection the kernel refused
// by IP verdict (ipblock, ipwarn) without a trip to the queue: its first
// packet was copied to the agent only to be recorded.
const ReasonKernel = "kernel"

// InspectStats are the inspector's counters.
type InspectStats struct {
	Packets, Allowed, Blocked         uint64
	Named, IPOnly, Unreadable         uint64
	QUICDropped, DeadlineMissed       uint64
	FlowsFull, DecodeErrors, Verdicts uint64
	VerdictErrors                     uint64
	// Panics counts packets whose decision panicked (a bug, logged with
	// its stack); each was accepted unmarked.
	Panics uint64
	// KernelRefused counts connections refused in the kernel by IP verdict
	// whose first packet reached the agent for the record (rate-limited).
	KernelRefused uint64
}

type inspCounters struct {
	packets, allowed, blocked         atomic.Uint64
	named, ipOnly, unreadable         atomic.Uint64
	quicDropped, deadlineMissed       atomic.Uint64
	flowsFull, decodeErrors, verdicts atomic.Uint64
	verdictErrors, panics             atomic.Uint64
	kernelRefused                     atomic.Uint64
}

func (c *inspCounters) snapshot() InspectStats {
	return InspectStats{
		Packets: c.packets.Load(), Allowed: c.allowed.Load(), Blocked: c.blocked.Load(),
		Named: c.named.Load(), IPOnly: c.ipOnly.Load(), Unreadable: c.unreadable.Load(),
		QUICDropped: c.quicDropped.Load(), DeadlineMissed: c.deadlineMissed.Load(),
		FlowsFull: c.flowsFull.Load(), DecodeErrors: c.decodeErrors.Load(), Verdicts: c.verdicts.Load(),
		VerdictErrors: c.verdictErrors.Load(), Panics: c.panics.Load(), KernelRefused: c.kernelRefused.Load(),
	}
}

// Defaults for InspectConfig.
const (
	DefaultInspectHold     = 3 * time.Second
	DefaultInspectPackets  = 12
	DefaultInspectMaxFlows = 8192
)

// inspEngine decides flows from packets. It is not safe for concurrent use:
// the queue reader owns it.
type inspEngine struct {
	dec        filter.Decider
	namePorts  map[uint16]bool
	quic       string
	blockDoT   bool
	doh        map[string]bool
	failClosed bool
	hold       time.Duration
	maxPackets int
	maxFlows   int
	now        func() time.Time
	emit       func(InspectEvent)
	stats      *inspCounters

	flows map[inspKey]*inspFlow
	// decided remembers recent verdicts for a hold period: packets of a flow
	// queued before its verdict was given (several QUIC datagrams, TCP
	// retransmissions) reach us after the decision and must get the same mark,
	// never a second, different decision.
	decided map[inspKey]inspDone

	parser4 *gopacket.DecodingLayerParser
	parser6 *gopacket.DecodingLayerParser
	ip4     layers.IPv4
	ip6     layers.IPv6
	ip6ext  layers.IPv6ExtensionSkipper
	tcp     layers.TCP
	udp     layers.UDP
	payload []byte // the transport payload of the packet being decided
	decoded []gopacket.LayerType
}

type inspKey struct {
	proto    uint8
	src, dst netip.AddrPort
}

type inspDone struct {
	mark uint32
	at   time.Time
	// start is the first payload sequence number of a decided TCP flow
	// (hasStart): a later segment far from it belongs to a new connection
	// on the same 4-tuple, which must be inspected, not inherit the mark.
	start    uint32
	hasStart bool
}

// inspSameConnWindow bounds how far past its start a segment may be and
// still count as the decided connection: more than any client sends before
// its verdict lands in the conntrack mark.
const inspSameConnWindow = 1 << 22

type inspFlow struct {
	start   time.Time
	packets int
	ipDec   filter.Decision
	tcp     *inspect.TCPStream
	quic    *inspect.QUICFlow
}

func newInspEngine(dec filter.Decider, namePorts []uint16, quic string, blockDoT bool, doh []string, failClosed bool,
	hold time.Duration, maxPackets, maxFlows int, now func() time.Time, emit func(InspectEvent), stats *inspCounters) *inspEngine {
	e := &inspEngine{dec: dec, quic: quic, blockDoT: blockDoT, failClosed: failClosed, hold: hold,
		maxPackets: maxPackets, maxFlows: maxFlows, now: now, emit: emit, stats: stats,
		namePorts: map[uint16]bool{}, doh: map[string]bool{}, flows: map[inspKey]*inspFlow{}, decided: map[inspKey]inspDone{}}
	for _, p := range namePorts {
		e.namePorts[p] = true
	}
	for _, n := range doh {
		e.doh[strings.ToLower(n)] = true
	}
	e.parser4 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, &e.ip4, &e.tcp, &e.udp)
	e.parser4.IgnoreUnsupported = true
	// IPv6 extension headers (hop-by-hop, routing, destination options) are
	// skipped to reach TCP/UDP: some can be set by unprivileged sockets, and
	// an undecodable packet is accepted uninspected. (Fragments never reach
	// the hook: conntrack reassembles them first.)
	e.parser6 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv6, &e.ip6, &e.ip6ext, &e.tcp, &e.udp)
	e.parser6.IgnoreUnsupported = true
	return e
}

// decide is packet with a panic recovered: a parser or decision bug costs
// one packet its inspection, never its verdict — it is accepted unmarked
// (fail-open), counted, and logged with its stack by panics (rate-limited).
func (e *inspEngine) decide(b []byte, panics *guard.Panics) (mark uint32) {
	defer func() {
		if r := recover(); r != nil {
			e.stats.panics.Add(1)
			panics.Recovered("inspect", r)
			mark = 0
		}
	}()
	return e.packet(b)
}

// packet decides one outgoing IP packet and returns the mark to put on it:
// 0 (accept, not decided yet), InspectMarkAllow or InspectMarkBlock.
// Anything it cannot decode is accepted unmarked (counted).
func (e *inspEngine) packet(b []byte) uint32 {
	e.stats.packets.Add(1)
	if len(b) == 0 {
		e.stats.decodeErrors.Add(1)
		return 0
	}
	p := e.parser4
	if b[0]>>4 == 6 {
		p = e.parser6
	}
	e.payload = nil
	e.decoded = e.decoded[:0]
	if err := p.DecodeLayers(b, &e.decoded); err != nil {
		e.stats.decodeErrors.Add(1)
		return 0
	}
	var src, dst netip.Addr
	var proto uint8
	var sport, dport uint16
	var isTCP, isUDP bool
	for _, t := range e.decoded {
		switch t {
		case layers.LayerTypeIPv4:
			src, _ = netip.AddrFromSlice(e.ip4.SrcIP.To4())
			dst, _ = netip.AddrFromSlice(e.ip4.DstIP.To4())
		case layers.LayerTypeIPv6:
			src, _ = netip.AddrFromSlice(e.ip6.SrcIP)
			dst, _ = netip.AddrFromSlice(e.ip6.DstIP)
		case layers.LayerTypeTCP:
			isTCP, proto, sport, dport = true, 6, uint16(e.tcp.SrcPort), uint16(e.tcp.DstPort)
			// The payload is taken from the transport layer itself: gopacket
			// would route port 443 to its TLS decoder, which we do not use.
			e.payload = e.tcp.Payload
		case layers.LayerTypeUDP:
			isUDP, proto, sport, dport = true, 17, uint16(e.udp.SrcPort), uint16(e.udp.DstPort)
			e.payload = e.udp.Payload
		}
	}
	if !src.IsValid() || !dst.IsValid() || (!isTCP && !isUDP) {
		e.stats.decodeErrors.Add(1)
		return 0
	}
	k := inspKey{proto, netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)}
	if isTCP {
		return e.tcpPacket(k)
	}
	return e.udpPacket(k)
}

func (e *inspEngine) verdictMark(d filter.Decision) uint32 {
	switch d.Verdict {
	case filter.VerdictBlock, filter.VerdictWarn: // Warn without bypass is refused like Block (CONTRACT §2)
		e.stats.blocked.Add(1)
		return InspectMarkBlock
	}
	e.stats.allowed.Add(1)
	return InspectMarkAllow
}

// finish ends inspection of a flow with decision d and reports it.
func (e *inspEngine) finish(k inspKey, src, proto, name, path, reason string, d filter.Decision) uint32 {
	f := e.flows[k]
	delete(e.flows, k)
	mark := e.verdictMark(d)
	if len(e.decided) >= e.maxFlows {
		e.expire()
		if len(e.decided) >= e.maxFlows {
			clear(e.decided)
		}
	}
	done := inspDone{mark: mark, at: e.now()}
	if f != nil && f.tcp != nil {
		done.start, done.hasStart = f.tcp.Start()
	}
	e.decided[k] = done
	if e.emit != nil {
		e.emit(InspectEvent{Time: e.now(), Source: src, Protocol: proto, Name: name, Path: path,
			Local: k.src, Remote: k.dst, Decision: d, Reason: reason})
	}
	return mark
}

// newFlow returns the flow for k, creating it (and taking the IP decision)
// if needed; nil when the table is full.
func (e *inspEngine) newFlow(k inspKey) *inspFlow {
	if f, ok := e.flows[k]; ok {
		return f
	}
	if len(e.flows) >= e.maxFlows {
		e.expire()
		if len(e.flows) >= e.maxFlows {
			return nil
		}
	}
	f := &inspFlow{start: e.now(), ipDec: e.dec.DecideAddr(k.dst.Addr())}
	e.flows[k] = f
	return f
}

// expire drops flows whose inspection window has passed. Their packets were
// all accepted already; the next packet of such a flow (if any) starts over.
func (e *inspEngine) expire() {
	now := e.now()
	for k, f := range e.flows {
		if now.Sub(f.start) > e.hold {
			delete(e.flows, k)
		}
	}
	for k, d := range e.decided {
		if now.Sub(d.at) > e.hold {
			delete(e.decided, k)
		}
	}
}

// already returns the mark of a flow decided within the hold period.
func (e *inspEngine) already(k inspKey) (uint32, bool) {
	d, ok := e.decided[k]
	if !ok || e.now().Sub(d.at) > e.hold {
		return 0, false
	}
	return d.mark, true
}

// unreadable is the documented outcome when no name could be read in the
// inspection window: TCP follows the policy default (allow, counted; block
// with failClosed), QUIC is dropped so the browser falls back to TCP.
func (e *inspEngine) unreadable(k inspKey, f *inspFlow, quic bool) uint32 {
	e.stats.unreadable.Add(1)
	d := f.ipDec
	if quic {
		e.stats.quicDropped.Add(1)
		if d.Verdict != filter.VerdictBlock && d.Verdict != filter.VerdictWarn {
			d.Verdict = filter.VerdictBlock
		}
		return e.finish(k, "quic", "Quic", "", "", "unreadable", d)
	}
	if e.failClosed && d.Verdict != filter.VerdictBlock && d.Verdict != filter.VerdictWarn {
		d.Verdict = filter.VerdictBlock
	}
	return e.finish(k, "ip", "Tcp", "", "", "unreadable", d)
}

func blocks(d filter.Decision) bool {
	return d.Verdict == filter.VerdictBlock || d.Verdict == filter.VerdictWarn
}

// combine is the flow's decision from its IP decision and its name decision:
// an IP rule that refuses wins (it applied from the SYN); otherwise the name
// decision when a name rule matched, else the IP one.
func combine(ip, name filter.Decision) filter.Decision {
	if blocks(ip) || name.Match.Rule == nil {
		if name.Match.Rule == nil && !blocks(ip) && ip.Match.Rule == nil {
			return name
		}
		return ip
	}
	return name
}

func (e *inspEngine) tcpPacket(k inspKey) uint32 {
	t := &e.tcp
	if t.RST || t.FIN {
		delete(e.flows, k)
		return 0
	}
	syn := t.SYN && !t.ACK
	if d, ok := e.decided[k]; ok && !syn && e.now().Sub(d.at) <= e.hold &&
		(!d.hasStart || t.Seq-d.start < inspSameConnWindow) {
		return d.mark
	}
	// A new SYN on the same 4-tuple, or a segment far from the decided
	// connection's start (its SYN was not queued), is a new connection.
	delete(e.decided, k)
	if !syn && len(e.payload) == 0 {
		return 0 // a bare ACK carries nothing to decide on
	}
	_, known := e.flows[k]
	f := e.newFlow(k)
	if f == nil {
		e.stats.flowsFull.Add(1)
		return 0
	}
	if !known {
		// IP rules apply from the SYN.
		if blocks(f.ipDec) {
			e.stats.ipOnly.Add(1)
			return e.finish(k, "ip", "Tcp", "", "", "", f.ipDec)
		}
		if e.blockDoT && k.dst.Port() == 853 {
			d := f.ipDec
			d.Verdict = filter.VerdictBlock
			return e.finish(k, "ip", "Tcp", "", "", "dot", d)
		}
		if !e.namePorts[k.dst.Port()] {
			e.stats.ipOnly.Add(1)
			return e.finish(k, "ip", "Tcp", "", "", "", f.ipDec)
		}
	}
	if len(e.payload) == 0 && !syn {
		return 0
	}
	f.packets++
	if f.tcp == nil {
		f.tcp = inspect.NewTCPStream(inspect.MaxHelloStream)
	}
	if err := f.tcp.Segment(t.Seq, syn, e.payload); err != nil {
		return e.unreadable(k, f, false)
	}
	if syn && len(e.payload) == 0 {
		return 0
	}
	data := f.tcp.Contiguous()
	if len(data) == 0 {
		return e.waitOrGiveUp(k, f, false)
	}
	if data[0] == 0x16 {
		h, err := inspect.ParseClientHello(data)
		switch {
		case err == nil:
			return e.named(k, f, "sni", "Tcp", h.ServerName, "", false)
		case errors.Is(err, inspect.ErrNeedMore):
			return e.waitOrGiveUp(k, f, false)
		}
		return e.unreadable(k, f, false)
	}
	if inspect.LooksLikeHTTP(data) {
		r, err := inspect.ParseHTTPRequest(data)
		switch {
		case err == nil:
			return e.named(k, f, "http", "Tcp", r.Host, r.Path, true)
		case errors.Is(err, inspect.ErrNeedMore):
			return e.waitOrGiveUp(k, f, false)
		}
	}
	return e.unreadable(k, f, false)
}

// waitOrGiveUp accepts an undecided packet unmarked while the flow is inside
// its inspection window, and gives the unreadable verdict past it.
func (e *inspEngine) waitOrGiveUp(k inspKey, f *inspFlow, quic bool) uint32 {
	if f.packets >= e.maxPackets || e.now().Sub(f.start) > e.hold {
		return e.unreadable(k, f, quic)
	}
	return 0
}

// named decides a flow by the name it carries. A name that is an IP literal
// (or absent) leaves the IP decision alone.
func (e *inspEngine) named(k inspKey, f *inspFlow, source, proto, name, path string, http bool) uint32 {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" {
		e.stats.ipOnly.Add(1)
		return e.finish(k, "ip", proto, "", "", "", f.ipDec)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		e.stats.ipOnly.Add(1)
		return e.finish(k, "ip", proto, name, path, "", f.ipDec)
	}
	e.stats.named.Add(1)
	if e.doh[name] && source != "http" {
		d := f.ipDec
		d.Verdict = filter.VerdictBlock
		return e.finish(k, source, proto, name, path, "doh", d)
	}
	var d filter.Decision
	if http {
		d = e.dec.DecideURL(name, path)
	} else {
		d = e.dec.DecideName(name)
	}
	return e.finish(k, source, proto, name, path, "", combine(f.ipDec, d))
}

func (e *inspEngine) udpPacket(k inspKey) uint32 {
	if e.quic == QUICAllow || k.dst.Port() != 443 {
		return 0
	}
	if m, ok := e.already(k); ok {
		return m
	}
	_, known := e.flows[k]
	f := e.newFlow(k)
	if f == nil {
		e.stats.flowsFull.Add(1)
		return 0
	}
	if !known && blocks(f.ipDec) {
		e.stats.ipOnly.Add(1)
		return e.finish(k, "ip", "Quic", "", "", "", f.ipDec)
	}
	if e.quic == QUICBlock {
		e.stats.quicDropped.Add(1)
		d := f.ipDec
		d.Verdict = filter.VerdictBlock
		return e.finish(k, "quic", "Quic", "", "", "quic-block", d)
	}
	f.packets++
	if f.quic == nil {
		f.quic = inspect.NewQUICFlow()
	}
	h, err := f.quic.Datagram(e.payload)
	switch {
	case err == nil:
		return e.named(k, f, "quic", "Quic", h.ServerName, "", false)
	case errors.Is(err, inspect.ErrNeedMore):
		return e.waitOrGiveUp(k, f, true)
	}
	return e.unreadable(k, f, true)
}
