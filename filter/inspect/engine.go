package inspect

import (
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/netward/netward/filter"
)

// Engine decides flows from their packets: it follows each new outgoing
// connection for a few packets, reads its server name (TLS ClientHello,
// QUIC Initial, HTTP Host and path) with this package's parsers, asks the
// Decider, and says what to do with each packet. It knows nothing of the
// kernel: filter/hostnet feeds it NFQUEUE packets and turns its verdicts
// into packet marks. IP/TCP/UDP headers are decoded with gopacket's
// DecodingLayerParser.
//
// Decide is not safe for concurrent use (the flow table is the caller's to
// guard); Stats, Config and KernelRefused are.
type Engine struct {
	cfg   Config
	stats counters

	namePorts  map[uint16]bool
	proxyPorts map[uint16]bool
	doh        map[string]bool

	flows map[flowKey]*flow
	// decided remembers recent verdicts for a hold period: packets of a flow
	// queued before its verdict was given (several QUIC datagrams, TCP
	// retransmissions) reach us after the decision and must get the same
	// verdict, never a second, different decision.
	decided map[flowKey]done

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

type flowKey struct {
	proto    uint8
	src, dst netip.AddrPort
}

type done struct {
	verdict Verdict
	at      time.Time
	// start is the first payload sequence number of a decided TCP flow
	// (hasStart): a later segment far from it belongs to a new connection
	// on the same 4-tuple, which must be inspected, not inherit the verdict.
	start    uint32
	hasStart bool
}

// sameConnWindow bounds how far past its start a segment may be and still
// count as the decided connection: more than any client sends before its
// verdict lands in the kernel's connection state.
const sameConnWindow = 1 << 22

type flow struct {
	start   time.Time
	packets int
	ipDec   filter.Decision
	tcp     *TCPStream
	quic    *QUICFlow
	// connect is the CONNECT target of a flow to a forward proxy, once
	// read and allowed: the tunnel's ClientHello is read next.
	connect *connectTarget
}

type connectTarget struct {
	req ConnectRequest
	d   filter.Decision
}

// NewEngine checks cfg and returns an engine with no flow.
func NewEngine(cfg Config) (*Engine, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: c, namePorts: map[uint16]bool{}, proxyPorts: map[uint16]bool{}, doh: map[string]bool{},
		flows: map[flowKey]*flow{}, decided: map[flowKey]done{}}
	for _, p := range c.NamePorts {
		e.namePorts[p] = true
	}
	for _, p := range c.ProxyPorts {
		e.proxyPorts[p] = true
	}
	if c.BlockEncryptedDNS {
		for _, n := range c.DoH {
			e.doh[n] = true
		}
	}
	e.parser4 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, &e.ip4, &e.tcp, &e.udp)
	e.parser4.IgnoreUnsupported = true
	// IPv6 extension headers (hop-by-hop, routing, destination options) are
	// skipped to reach TCP/UDP: some can be set by unprivileged sockets, and
	// an undecodable packet is accepted uninspected. (Fragments never reach
	// the hook: conntrack reassembles them first.)
	e.parser6 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv6, &e.ip6, &e.ip6ext, &e.tcp, &e.udp)
	e.parser6.IgnoreUnsupported = true
	return e, nil
}

// Config is the engine's configuration with the defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats { return e.stats.snapshot() }

// KernelRefused records a connection the kernel refused by IP verdict
// (ipblock, ipwarn) without asking the engine: its first packet reached the
// agent only to be recorded. The event is decided again by address, for the
// indicator that refused it (Source ip, Reason kernel).
func (e *Engine) KernelRefused(proto Protocol, local, remote netip.AddrPort) {
	e.stats.kernelRefused.Add(1)
	if e.cfg.OnDecision == nil {
		return
	}
	e.cfg.OnDecision(Event{Time: e.cfg.Now(), Source: SourceIP, Protocol: proto, Local: local, Remote: remote,
		Decision: e.cfg.Decider.DecideAddr(remote.Addr()), Reason: ReasonKernel})
}

// Decide decides one outgoing IP packet. A parser or decision bug costs one
// packet its inspection, never its verdict: a panic is recovered, counted,
// logged with its stack by Config.Panics (rate-limited), and the packet is
// Undecided (accepted, fail-open).
func (e *Engine) Decide(b []byte) (v Verdict) {
	defer func() {
		if r := recover(); r != nil {
			e.stats.panics.Add(1)
			e.cfg.Panics.Recovered("inspect", r)
			v = Undecided
		}
	}()
	return e.packet(b)
}

// packet decides one packet. Anything it cannot decode is accepted
// undecided (counted).
func (e *Engine) packet(b []byte) Verdict {
	e.stats.packets.Add(1)
	if len(b) == 0 {
		e.stats.decodeErrors.Add(1)
		return Undecided
	}
	p := e.parser4
	if b[0]>>4 == 6 {
		p = e.parser6
	}
	e.payload = nil
	e.decoded = e.decoded[:0]
	if err := p.DecodeLayers(b, &e.decoded); err != nil {
		e.stats.decodeErrors.Add(1)
		return Undecided
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
		return Undecided
	}
	k := flowKey{proto, netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)}
	if isTCP {
		return e.tcpPacket(k)
	}
	return e.udpPacket(k)
}

// verdictOf is what decision d does to the flow: a Warn without a bypass
// is refused like a Block (CONTRACT §2).
func (e *Engine) verdictOf(d filter.Decision) Verdict {
	if d.Verdict.Blocks() {
		e.stats.blocked.Add(1)
		return Refuse
	}
	e.stats.allowed.Add(1)
	return Allow
}

// finish ends the inspection of a flow with decision d and reports it.
func (e *Engine) finish(k flowKey, src Source, proto Protocol, name, path string, reason Reason, d filter.Decision) Verdict {
	f := e.flows[k]
	delete(e.flows, k)
	v := e.verdictOf(d)
	if len(e.decided) >= e.cfg.MaxFlows {
		e.expire()
		if len(e.decided) >= e.cfg.MaxFlows {
			clear(e.decided)
		}
	}
	dn := done{verdict: v, at: e.cfg.Now()}
	if f != nil && f.tcp != nil {
		dn.start, dn.hasStart = f.tcp.Start()
	}
	e.decided[k] = dn
	if e.cfg.OnDecision != nil {
		e.cfg.OnDecision(Event{Time: e.cfg.Now(), Source: src, Protocol: proto, Name: name, Path: path,
			Local: k.src, Remote: k.dst, Decision: d, Reason: reason})
	}
	return v
}

// newFlow returns the flow for k, creating it (and taking the IP decision)
// if needed; nil when the table is full.
func (e *Engine) newFlow(k flowKey) *flow {
	if f, ok := e.flows[k]; ok {
		return f
	}
	if len(e.flows) >= e.cfg.MaxFlows {
		e.expire()
		if len(e.flows) >= e.cfg.MaxFlows {
			return nil
		}
	}
	f := &flow{start: e.cfg.Now(), ipDec: e.cfg.Decider.DecideAddr(k.dst.Addr())}
	e.flows[k] = f
	return f
}

// expire drops flows whose inspection window has passed. Their packets were
// all accepted already; the next packet of such a flow (if any) starts over.
func (e *Engine) expire() {
	now := e.cfg.Now()
	for k, f := range e.flows {
		if now.Sub(f.start) > e.cfg.Hold {
			delete(e.flows, k)
		}
	}
	for k, d := range e.decided {
		if now.Sub(d.at) > e.cfg.Hold {
			delete(e.decided, k)
		}
	}
}

// already returns the verdict of a flow decided within the hold period.
func (e *Engine) already(k flowKey) (Verdict, bool) {
	d, ok := e.decided[k]
	if !ok || e.cfg.Now().Sub(d.at) > e.cfg.Hold {
		return Undecided, false
	}
	return d.verdict, true
}

// unreadable is the documented outcome when no name could be read in the
// inspection window: TCP follows the policy default (allow, counted; refuse
// with FailClosed), QUIC is refused so the browser falls back to TCP.
func (e *Engine) unreadable(k flowKey, f *flow, quic bool) Verdict {
	e.stats.unreadable.Add(1)
	d := f.ipDec
	if quic {
		e.stats.quicDropped.Add(1)
		if !d.Verdict.Blocks() {
			d.Verdict = filter.VerdictBlock
		}
		return e.finish(k, SourceQUIC, ProtoQUIC, "", "", ReasonUnreadable, d)
	}
	if e.cfg.FailClosed && !d.Verdict.Blocks() {
		d.Verdict = filter.VerdictBlock
	}
	return e.finish(k, SourceIP, ProtoTCP, "", "", ReasonUnreadable, d)
}

// combine is the flow's decision from its IP decision and its name decision:
// an IP rule that refuses wins (it applied from the SYN); otherwise the name
// decision when a name rule matched, else the IP one.
func combine(ip, name filter.Decision) filter.Decision {
	if ip.Verdict.Blocks() || name.Match.Rule == nil {
		if name.Match.Rule == nil && !ip.Verdict.Blocks() && ip.Match.Rule == nil {
			return name
		}
		return ip
	}
	return name
}

func (e *Engine) tcpPacket(k flowKey) Verdict {
	t := &e.tcp
	if t.RST || t.FIN {
		delete(e.flows, k)
		return Undecided
	}
	syn := t.SYN && !t.ACK
	if d, ok := e.decided[k]; ok && !syn && e.cfg.Now().Sub(d.at) <= e.cfg.Hold &&
		(!d.hasStart || t.Seq-d.start < sameConnWindow) {
		return d.verdict
	}
	// A new SYN on the same 4-tuple, or a segment far from the decided
	// connection's start (its SYN was not queued), is a new connection.
	delete(e.decided, k)
	if !syn && len(e.payload) == 0 {
		return Undecided // a bare ACK carries nothing to decide on
	}
	_, known := e.flows[k]
	f := e.newFlow(k)
	if f == nil {
		e.stats.flowsFull.Add(1)
		return Undecided
	}
	if !known {
		// IP rules apply from the SYN.
		if f.ipDec.Verdict.Blocks() {
			e.stats.ipOnly.Add(1)
			return e.finish(k, SourceIP, ProtoTCP, "", "", ReasonNone, f.ipDec)
		}
		if e.cfg.BlockEncryptedDNS && k.dst.Port() == 853 {
			d := f.ipDec
			d.Verdict = filter.VerdictBlock
			return e.finish(k, SourceIP, ProtoTCP, "", "", ReasonDoT, d)
		}
		if !e.namePorts[k.dst.Port()] && !e.proxyPorts[k.dst.Port()] {
			e.stats.ipOnly.Add(1)
			return e.finish(k, SourceIP, ProtoTCP, "", "", ReasonNone, f.ipDec)
		}
	}
	if len(e.payload) == 0 && !syn {
		return Undecided
	}
	f.packets++
	if f.tcp == nil {
		f.tcp = NewTCPStream(MaxHelloStream)
	}
	if err := f.tcp.Segment(t.Seq, syn, e.payload); err != nil {
		return e.unreadable(k, f, false)
	}
	if syn && len(e.payload) == 0 {
		return Undecided
	}
	data := f.tcp.Contiguous()
	if len(data) == 0 {
		return e.waitOrGiveUp(k, f, false)
	}
	if e.proxyPorts[k.dst.Port()] && (f.connect != nil || connectPrefix(data)) {
		return e.proxied(k, f, data)
	}
	if data[0] == 0x16 {
		h, err := ParseClientHello(data)
		switch {
		case err == nil:
			return e.named(k, f, SourceSNI, ProtoTCP, h.ServerName, "")
		case errors.Is(err, ErrNeedMore):
			return e.waitOrGiveUp(k, f, false)
		}
		return e.unreadable(k, f, false)
	}
	if LooksLikeHTTP(data) {
		r, err := ParseHTTPRequest(data)
		switch {
		case err == nil:
			return e.named(k, f, SourceHTTP, ProtoTCP, r.Host, r.Path)
		case errors.Is(err, ErrNeedMore):
			return e.waitOrGiveUp(k, f, false)
		}
	}
	return e.unreadable(k, f, false)
}

// proxied decides a flow to a forward proxy (RFC 9110 §9.3.6): first by
// its CONNECT target (a refused target ends it, like a refused SNI), then
// by the ClientHello the client sends into the tunnel, so enforcement and
// the record name what the user asked for, not the proxy. A tunnel that
// carries no readable TLS is decided by its target alone.
func (e *Engine) proxied(k flowKey, f *flow, data []byte) Verdict {
	if f.connect == nil {
		req, err := ParseConnect(data)
		switch {
		case errors.Is(err, ErrNeedMore):
			return e.waitOrGiveUp(k, f, false)
		case err != nil:
			return e.unreadable(k, f, false)
		}
		host := strings.TrimSuffix(strings.ToLower(req.Host), ".")
		req.Host = host
		var d filter.Decision
		if ip, err := netip.ParseAddr(host); err == nil {
			d = e.cfg.Decider.DecideAddr(ip.Unmap())
		} else {
			d = e.cfg.Decider.DecideName(host)
		}
		f.connect = &connectTarget{req: req, d: combine(f.ipDec, d)}
		if f.connect.d.Verdict.Blocks() {
			e.stats.named.Add(1)
			return e.finish(k, SourceHTTP, ProtoTCP, host, "", ReasonConnect, f.connect.d)
		}
	}
	tunnel := data[f.connect.req.HeadLen:]
	if len(tunnel) == 0 {
		return e.waitOrGiveUp(k, f, false)
	}
	if tunnel[0] == 0x16 {
		h, err := ParseClientHello(tunnel)
		switch {
		case errors.Is(err, ErrNeedMore):
			return e.waitOrGiveUp(k, f, false)
		case err == nil && h.ServerName != "":
			return e.named(k, f, SourceSNI, ProtoTCP, h.ServerName, "")
		}
	}
	return e.connectDecided(k, f)
}

// connectPrefix reports whether b could start a CONNECT request.
func connectPrefix(b []byte) bool {
	const m = "CONNECT "
	n := min(len(b), len(m))
	return string(b[:n]) == m[:n]
}

// connectDecided ends a proxied flow by its CONNECT target's decision.
func (e *Engine) connectDecided(k flowKey, f *flow) Verdict {
	e.stats.named.Add(1)
	return e.finish(k, SourceHTTP, ProtoTCP, f.connect.req.Host, "", ReasonConnect, f.connect.d)
}

// waitOrGiveUp accepts an undecided packet while the flow is inside its
// inspection window, and gives the unreadable verdict past it.
func (e *Engine) waitOrGiveUp(k flowKey, f *flow, quic bool) Verdict {
	if f.packets >= e.cfg.MaxPackets || e.cfg.Now().Sub(f.start) > e.cfg.Hold {
		if f.connect != nil {
			// The tunnel's first bytes did not come in time: the
			// target the proxy was asked for decides.
			return e.connectDecided(k, f)
		}
		return e.unreadable(k, f, quic)
	}
	return Undecided
}

// named decides a flow by the name it carries (and, for HTTP, the path). A
// name that is an IP literal (or absent) leaves the IP decision alone.
func (e *Engine) named(k flowKey, f *flow, source Source, proto Protocol, name, path string) Verdict {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" {
		e.stats.ipOnly.Add(1)
		return e.finish(k, SourceIP, proto, "", "", ReasonNone, f.ipDec)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		e.stats.ipOnly.Add(1)
		return e.finish(k, SourceIP, proto, name, path, ReasonNone, f.ipDec)
	}
	e.stats.named.Add(1)
	if e.doh[name] && source != SourceHTTP {
		d := f.ipDec
		d.Verdict = filter.VerdictBlock
		return e.finish(k, source, proto, name, path, ReasonDoH, d)
	}
	var d filter.Decision
	if source == SourceHTTP {
		d = e.cfg.Decider.DecideURL(name, path)
	} else {
		d = e.cfg.Decider.DecideName(name)
	}
	return e.finish(k, source, proto, name, path, ReasonNone, combine(f.ipDec, d))
}

func (e *Engine) udpPacket(k flowKey) Verdict {
	if e.cfg.QUIC == QUICAllow || k.dst.Port() != 443 {
		return Undecided
	}
	if v, ok := e.already(k); ok {
		return v
	}
	_, known := e.flows[k]
	f := e.newFlow(k)
	if f == nil {
		e.stats.flowsFull.Add(1)
		return Undecided
	}
	if !known && f.ipDec.Verdict.Blocks() {
		e.stats.ipOnly.Add(1)
		return e.finish(k, SourceIP, ProtoQUIC, "", "", ReasonNone, f.ipDec)
	}
	if e.cfg.QUIC == QUICBlock {
		e.stats.quicDropped.Add(1)
		d := f.ipDec
		d.Verdict = filter.VerdictBlock
		return e.finish(k, SourceQUIC, ProtoQUIC, "", "", ReasonQUICBlock, d)
	}
	f.packets++
	if f.quic == nil {
		f.quic = NewQUICFlow()
	}
	h, err := f.quic.Datagram(e.payload)
	switch {
	case err == nil:
		return e.named(k, f, SourceQUIC, ProtoQUIC, h.ServerName, "")
	case errors.Is(err, ErrNeedMore):
		return e.waitOrGiveUp(k, f, true)
	}
	return e.unreadable(k, f, true)
}
