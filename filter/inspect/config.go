package inspect

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/guard"
)

// QUICMode is how QUIC (UDP 443) is handled (config sni.quic).
type QUICMode string

const (
	QUICInspect QUICMode = "inspect" // read the name from the Initial; unreadable ⇒ refused (the browser falls back to TCP)
	QUICBlock   QUICMode = "block"   // refuse all QUIC: browsers fall back to TCP where the name is visible
	QUICAllow   QUICMode = "allow"   // do not look at UDP 443 at all
)

// Config configures an Engine. Zero values take the documented defaults.
type Config struct {
	// Decider is the decision every flow is judged by (the agent's
	// filter.DecisionPoint). Required.
	Decider filter.Decider
	// NamePorts are the TCP ports whose first bytes are read for a name
	// (default 443, 853, 80); a TCP flow to any other port is decided by
	// its address at the first packet seen.
	NamePorts []uint16
	// ProxyPorts are the TCP ports of forward proxies (HTTP CONNECT): a
	// flow to one is decided by its CONNECT target and then by the TLS
	// ClientHello inside the tunnel; a plain HTTP request to the proxy
	// (absolute-form) by its host and path.
	ProxyPorts []uint16
	// QUIC is QUICInspect (default), QUICBlock or QUICAllow.
	QUIC QUICMode
	// BlockEncryptedDNS refuses DNS over TLS (TCP 853) and the DoH server
	// names by SNI; set when DNS capture is on, so name lookups stay
	// visible.
	BlockEncryptedDNS bool
	DoH               []string // default DefaultDoHServers
	// FailClosed refuses TCP flows whose name cannot be read (default:
	// allow).
	FailClosed bool
	// Hold is the inspection window of a flow (default 3 s); MaxPackets the
	// packets looked at per flow (default 12); MaxFlows the flows tracked
	// at once (default 8192, past that new flows pass uninspected, counted).
	Hold       time.Duration
	MaxPackets int
	MaxFlows   int
	// OnDecision receives one event per decided flow. It must not block.
	OnDecision func(Event)
	// Panics records a panic recovered while deciding one packet (the
	// packet is accepted undecided; the engine goes on). Default: one of
	// its own, which logs nothing.
	Panics *guard.Panics
	Now    func() time.Time
}

// DefaultDoHServers are public DNS-over-HTTPS server names refused by SNI
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

// Defaults for Config.
const (
	DefaultHold     = 3 * time.Second
	DefaultPackets  = 12
	DefaultMaxFlows = 8192
)

// withDefaults checks c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Decider == nil {
		return c, errors.New("inspect: no decider configured")
	}
	if c.NamePorts == nil {
		c.NamePorts = []uint16{443, 853, 80}
	}
	switch c.QUIC {
	case "":
		c.QUIC = QUICInspect
	case QUICInspect, QUICBlock, QUICAllow:
	default:
		return c, fmt.Errorf("inspect: sni.quic is %q; use \"inspect\", \"block\" or \"allow\"", c.QUIC)
	}
	if c.DoH == nil {
		c.DoH = DefaultDoHServers
	}
	if c.Hold <= 0 {
		c.Hold = DefaultHold
	}
	if c.MaxPackets <= 0 {
		c.MaxPackets = DefaultPackets
	}
	if c.MaxFlows <= 0 {
		c.MaxFlows = DefaultMaxFlows
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Panics == nil {
		c.Panics = guard.New(nil)
	}
	// Names compare in lower case, as the policy's.
	doh := make([]string, len(c.DoH))
	for i, n := range c.DoH {
		doh[i] = strings.ToLower(n)
	}
	c.DoH = doh
	return c, nil
}
