package hostnet

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/guard"
)

// InspectConfig configures the inline inspector (NFQUEUE on Linux).
type InspectConfig struct {
	// Decider is the decision every flow is judged by (the agent's
	// filter.DecisionPoint).
	Decider filter.Decider
	// QueueNum is the first NFQUEUE number (default 15353); Queues the
	// number of queues QueueNum.. (default 1), spread by sending CPU. More
	// queues let verdicts (and the kernel work of reinjecting the packet)
	// run in parallel; on the 2-CPU reference machine 2 queues measured no
	// better than 1, so one is the default.
	QueueNum uint16
	Queues   int
	// LogGroup is the NFLOG group the kernel copies the first packet of
	// each connection it refuses by IP verdict to, so it is recorded
	// (default QueueNum; log groups and queues are separate numbers).
	LogGroup uint16
	// NamePorts are the TCP ports whose first bytes are read for a name
	// (default 443, 853, 80).
	NamePorts []uint16
	// IP is what the kernel does with traffic to the addresses of the
	// policy's IpAddress indicators (filter.Policy.IPVerdicts): Block
	// ranges are refused on every protocol without a trip to userspace,
	// Warn ranges drop everything but TCP, and TCP flows to Inspect ranges
	// are queued from their SYN on every port, so the rule applies before
	// any byte is sent. Other flows reach userspace only with their first
	// data segment on a name port (where IP rules are applied too). Kept in
	// nftables interval sets; change it while running with Inspector.SetIP.
	IP filter.IPVerdicts
	// QUIC is "inspect" (default), "block" or "allow".
	QUIC string
	// BlockEncryptedDNS blocks DoT (TCP 853) and the DoH server names in DoH
	// by SNI; set when DNS capture is on, so name lookups stay visible.
	BlockEncryptedDNS bool
	DoH               []string // default DefaultDoHServers
	// FailClosed blocks TCP flows whose name cannot be read (default: allow).
	FailClosed bool
	// SkipMark/SkipMask identify the agent's own packets (mark&mask == mark),
	// which are never queued. Zero mask: nothing skipped.
	SkipMark, SkipMask uint32
	// Hold is the inspection window of a flow (default 3 s); MaxPackets the
	// packets looked at per flow (default 12); MaxFlows the flows tracked at
	// once (default 8192, past that new flows pass uninspected, counted).
	Hold       time.Duration
	MaxPackets int
	MaxFlows   int
	// Deadline bounds how long one packet may wait for a decision (default
	// 200 ms); past it the packet is accepted unmarked (counted).
	Deadline time.Duration
	// OnDecision receives one event per decided flow. It must not block.
	OnDecision func(InspectEvent)
	// Panics records a panic recovered while deciding one packet (the
	// packet is accepted unmarked; the inspector goes on). Default: one of
	// its own, logging to Log.
	Panics *guard.Panics
	Log    *slog.Logger
	Now    func() time.Time
}

// DefaultDoHServers are public DNS-over-HTTPS server names blocked by SNI
// when DNS capture is on (a browser using them would bypass the DNS proxy).
var DefaultDoHServers = []string{
	"dns.google", "dns.google.com", "cloudflare-dns.com", "mozilla.cloudflare-dns.com",
	"chrome.cloudflare-dns.com", "1dot1dot1dot1.cloudflare-dns.com", "one.one.one.one",
	"dns.quad9.net", "dns9.quad9.net", "dns10.quad9.net", "dns11.quad9.net",
	"doh.opendns.com", "doh.familyshield.opendns.com", "dns.adguard.com", "dns.adguard-dns.com",
	"doh.cleanbrowsing.org", "dns.nextdns.io", "doh.xfinity.com", "dns.controld.com",
	"freedns.controld.com", "doh.mullvad.net", "dns.mullvad.net", "doh.dns.sb",
	"dns.twnic.tw", "ordns.he.net", "dns.alidns.com", "doh.pub", "dns.switch.ch",
}

// DefaultInspectDeadline bounds one packet's decision (InspectConfig.Deadline).
const DefaultInspectDeadline = 200 * time.Millisecond

func (c *InspectConfig) withDefaults() (InspectConfig, error) {
	out := *c
	if out.Decider == nil {
		return out, fmt.Errorf("inspect: no decider configured")
	}
	if out.QueueNum == 0 {
		out.QueueNum = 15353
	}
	if out.Queues <= 0 {
		out.Queues = 1
	}
	if out.LogGroup == 0 {
		out.LogGroup = out.QueueNum
	}
	if int(out.QueueNum)+out.Queues > 1<<16 {
		return out, fmt.Errorf("inspect: queues %d..%d exceed the NFQUEUE number range", out.QueueNum, int(out.QueueNum)+out.Queues-1)
	}
	if out.NamePorts == nil {
		out.NamePorts = []uint16{443, 853, 80}
	}
	switch out.QUIC {
	case "":
		out.QUIC = QUICInspect
	case QUICInspect, QUICBlock, QUICAllow:
	default:
		return out, fmt.Errorf("inspect: sni.quic is %q; use \"inspect\", \"block\" or \"allow\"", out.QUIC)
	}
	if out.DoH == nil {
		out.DoH = DefaultDoHServers
	}
	if out.Hold <= 0 {
		out.Hold = DefaultInspectHold
	}
	if out.MaxPackets <= 0 {
		out.MaxPackets = DefaultInspectPackets
	}
	if out.MaxFlows <= 0 {
		out.MaxFlows = DefaultInspectMaxFlows
	}
	if out.Deadline <= 0 {
		out.Deadline = DefaultInspectDeadline
	}
	if out.Log == nil {
		out.Log = slog.New(slog.DiscardHandler)
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.Panics == nil {
		out.Panics = guard.New(out.Log)
	}
	return out, nil
}

func (c *InspectConfig) engine(stats *inspCounters) *inspEngine {
	var doh []string
	if c.BlockEncryptedDNS {
		doh = c.DoH
	}
	return newInspEngine(c.Decider, c.NamePorts, c.QUIC, c.BlockEncryptedDNS, doh, c.FailClosed,
		c.Hold, c.MaxPackets, c.MaxFlows, c.Now, c.OnDecision, stats)
}
