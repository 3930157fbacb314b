package inspect

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/netward/netward/filter"
)

// Verdict is what the engine makes of one packet.
type Verdict uint8

const (
	// Undecided: accept the packet and keep looking at the flow (its name
	// has not arrived yet, or the packet is not worth a decision).
	Undecided Verdict = iota
	// Allow: the flow is allowed; the kernel may pass the rest of it.
	Allow
	// Refuse: the flow is refused (a Block, or a Warn without a bypass,
	// CONTRACT §2): TCP gets a reset, UDP is dropped.
	Refuse
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Refuse:
		return "refuse"
	}
	return "undecided"
}

// Source is what a flow was decided by. Its String is the telemetry record's
// Source (CONTRACT §6).
type Source uint8

const (
	SourceIP   Source = iota // the address alone
	SourceSNI                // a TLS ClientHello's server name
	SourceQUIC               // a QUIC Initial's server name
	SourceHTTP               // a plain-HTTP request's Host and path
)

func (s Source) String() string {
	switch s {
	case SourceSNI:
		return "sni"
	case SourceQUIC:
		return "quic"
	case SourceHTTP:
		return "http"
	}
	return "ip"
}

// Protocol is the transport of a flow. Its String is the telemetry record's
// Protocol (CONTRACT §6).
type Protocol uint8

const (
	ProtoOther Protocol = iota // a protocol the records do not name
	ProtoTCP
	ProtoUDP
	ProtoQUIC
	ProtoICMP // ICMP or ICMPv6: only on connections the kernel refused
)

func (p Protocol) String() string {
	switch p {
	case ProtoTCP:
		return "Tcp"
	case ProtoUDP:
		return "Udp"
	case ProtoQUIC:
		return "Quic"
	case ProtoICMP:
		return "Icmp"
	}
	return ""
}

// Reason says why a flow was decided without its name, or by something
// other than the policy.
type Reason uint8

const (
	ReasonNone       Reason = iota // decided by the policy on what was read
	ReasonUnreadable               // no name could be read in the inspection window
	ReasonDoT                      // DNS over TLS (TCP 853), refused while DNS is captured
	ReasonDoH                      // a DNS-over-HTTPS server name, refused while DNS is captured
	ReasonQUICBlock                // QUIC refused by sni.quic "block"
	ReasonKernel                   // refused in the kernel by IP verdict; recorded only
	ReasonConnect                  // decided by a forward proxy's CONNECT target (Name is a host, no URL)
)

func (r Reason) String() string {
	switch r {
	case ReasonUnreadable:
		return "unreadable"
	case ReasonDoT:
		return "dot"
	case ReasonDoH:
		return "doh"
	case ReasonQUICBlock:
		return "quic-block"
	case ReasonKernel:
		return "kernel"
	case ReasonConnect:
		return "connect"
	}
	return ""
}

// Event is one decision taken on a connection, for telemetry and the user's
// notice.
type Event struct {
	Time     time.Time
	Source   Source
	Protocol Protocol
	Name     string // server name or Host; "" for decisions by address alone
	Path     string // the HTTP request's path
	Local    netip.AddrPort
	Remote   netip.AddrPort
	Decision filter.Decision
	Reason   Reason
}

// Stats are the engine's counters.
type Stats struct {
	// Packets counts the packets looked at; Allowed and Blocked the flows
	// allowed and refused.
	Packets, Allowed, Blocked uint64
	// Named counts flows decided by a name, IPOnly by the address alone,
	// Unreadable those whose name could not be read in the window.
	Named, IPOnly, Unreadable uint64
	// QUICDropped counts QUIC flows refused so the browser falls back to
	// TCP (unreadable, or sni.quic "block").
	QUICDropped uint64
	// FlowsFull counts flows let through uninspected because MaxFlows
	// flows were under inspection.
	FlowsFull uint64
	// DecodeErrors counts packets that did not decode as IP + TCP/UDP.
	DecodeErrors uint64
	// Panics counts packets whose decision panicked (a bug, logged with
	// its stack); each was accepted undecided.
	Panics uint64
	// KernelRefused counts connections refused in the kernel by IP verdict
	// whose first packet was recorded (Engine.KernelRefused).
	KernelRefused uint64
}

type counters struct {
	packets, allowed, blocked atomic.Uint64
	named, ipOnly, unreadable atomic.Uint64
	quicDropped, flowsFull    atomic.Uint64
	decodeErrors, panics      atomic.Uint64
	kernelRefused             atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Packets: c.packets.Load(), Allowed: c.allowed.Load(), Blocked: c.blocked.Load(),
		Named: c.named.Load(), IPOnly: c.ipOnly.Load(), Unreadable: c.unreadable.Load(),
		QUICDropped: c.quicDropped.Load(), FlowsFull: c.flowsFull.Load(),
		DecodeErrors: c.decodeErrors.Load(), Panics: c.panics.Load(), KernelRefused: c.kernelRefused.Load(),
	}
}
