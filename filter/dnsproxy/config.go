// Package dnsproxy is netward's filtering DNS proxy: a miekg/dns server that
// answers every query according to the active policy (CONTRACT §7), relays
// allowed queries to the upstream resolvers through a bounded, TTL-respecting
// cache, and learns an IP→name map from the answers it relays.
//
// The request chain, in order (each step documented where it is implemented):
//
//	accept (header sanity) → in-flight bound → question checks (class, type)
//	→ special names (DoH canary, iCloud Private Relay) → decision on the name
//	→ cache or upstream → decision on every CNAME target → ECH strip → reply
//
// Files: server.go binds the sockets (UDP and TCP per listen address) and
// runs their readers: its own workers on UDP sockets bound to one address
// (fast.go), miekg/dns servers for TCP and unspecified addresses;
// handler.go is the general path every query that is not answered from
// bytes takes (accept, in-flight bound, answer); chain.go holds the decision steps the
// general path and the wire fast path share (special names, CNAME targets,
// what is counted and reported); resolve.go is the cache-or-upstream step
// and the relayed reply; fast.go and wire.go answer cached and refused
// queries from bytes on sockets bound to one address; upstream.go (the
// event-driven forwarded path: shared upstream sockets, pending attempts,
// failover), cache.go, answer.go
// (synthesized answers), names.go (the IP→name map) serve them.
//
// The decision is taken after the cache, on every query, so a new policy or a
// bypass applies to the very next query. Imports of github.com/miekg/dns stay
// inside this package, so a move to its v2 is local.
package dnsproxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/guard"
)

// BlockAnswer is what a blocked A query gets (CONTRACT §7).
type BlockAnswer uint8

const (
	BlockNXDomain BlockAnswer = iota // A → NXDOMAIN
	BlockNullIP                      // A → 0.0.0.0, AAAA → ::
	BlockSink                        // A → the block/warn page address
)

// ParseBlockAnswer reads the dns.blockAnswer config value.
func ParseBlockAnswer(s string) (BlockAnswer, error) {
	switch s {
	case "nxdomain", "":
		return BlockNXDomain, nil
	case "nullip":
		return BlockNullIP, nil
	case "sink":
		return BlockSink, nil
	}
	return 0, fmt.Errorf("block answer %q is not one of nxdomain, nullip, sink", s)
}

// Event is one decision the proxy acted on, handed to Config.OnDecision for
// telemetry. It is produced only when the decision is not a plain Allow (or
// would not have been one in block mode).
type Event struct {
	// Name is the canonical name the decision is about: the question name,
	// or the CNAME target that decided the answer.
	Name string
	// QName is the canonical question name; it differs from Name when a
	// CNAME target decided.
	QName    string
	QType    string
	Decision filter.Decision
	// Client is the address the query came from; Proto is "udp" or "tcp".
	Client netip.AddrPort
	Proto  string
	// At is when the query was decided, as Config.Now read it on the wire
	// fast path: that one clock read per query serves the receiver's
	// record too. Zero on the general path (the receiver reads its clock).
	At time.Time
}

// Answer is one allowed answer the proxy gave, handed to Config.OnAnswer
// for discovery telemetry. Name may share memory with the cache: keep it,
// never modify it.
type Answer struct {
	// Name is the canonical question name; QType the question's type.
	Name  string
	QType uint16
	// Rule is the Allow indicator that matched, nil when none did.
	Rule *filter.Rule
	// Client is the address the query came from; Proto is "udp" or "tcp".
	Client netip.AddrPort
	Proto  string
	// Cached is set on the wire fast path (a cached answer served inline).
	Cached bool
}

// Config configures a Proxy. Zero values take the documented defaults.
type Config struct {
	// Listen are host:port addresses to serve on, each over UDP and TCP.
	// Port 0 picks a free port (tests); see Proxy.Addrs.
	Listen []string
	// Upstreams are resolver addresses ("192.0.2.1", "192.0.2.1:53",
	// "[2001:db8::1]:53"). Empty means the host's own resolvers from
	// ResolvConf, read once at Run.
	Upstreams []string
	// ResolvConf is the resolver file read when Upstreams is empty
	// (default /etc/resolv.conf; the systemd-resolved stub 127.0.0.53 is
	// replaced by its real upstreams from /run/systemd/resolve/resolv.conf).
	ResolvConf string
	// Timeout bounds one query's whole upstream work, across every attempt
	// and failover (default 2 s). Past it the client gets SERVFAIL.
	Timeout time.Duration
	// UpstreamControl is applied to every upstream socket before it
	// connects; the agent sets SO_MARK with it so host capture exempts the
	// proxy's own queries.
	UpstreamControl func(network, address string, c syscall.RawConn) error

	// CacheSize bounds the cache in entries (default 10000; negative
	// disables the cache).
	CacheSize int
	// MinTTL and MaxTTL clamp how long an answer is cached (defaults 0 and
	// 1 h); MaxNegativeTTL clamps negative answers (RFC 2308 §5, default 5 min).
	MinTTL, MaxTTL, MaxNegativeTTL time.Duration

	// MaxInFlight bounds concurrent queries; beyond it a query is answered
	// REFUSED at once and counted (default 1024).
	MaxInFlight int
	// MaxTCPConns bounds concurrent client TCP connections (default 256).
	MaxTCPConns int
	// UDPSockets is how many UDP sockets serve each listen address bound
	// to one IP (SO_REUSEPORT: the kernel spreads clients over them, each
	// read by its own batched readers). 0 is the default: one per core
	// (GOMAXPROCS) on Linux; 1 elsewhere, where only one is ever opened.
	// An unspecified address (0.0.0.0, ::) always gets one.
	UDPSockets int

	// Decider is the decision the proxy asks about every name it answers
	// (the agent's filter.DecisionPoint): the question's, and each CNAME
	// target's. It is called on the hot path, before the cache, with a
	// name that may share memory with the request: it must keep no name.
	Decider     filter.Decider
	BlockAnswer BlockAnswer
	// Sink is the IPv4 address of the block/warn page server: the A answer
	// of a warned name (and of a blocked one with BlockSink).
	Sink netip.Addr
	// SyntheticTTL is the TTL of blocked and warned answers (default 10 s),
	// short so a bypass or an unblock takes effect within seconds.
	SyntheticTTL time.Duration
	// StripECH removes the ech parameter from HTTPS/SVCB answers.
	StripECH bool
	// Capture says host capture is on: iCloud Private Relay names
	// (mask.icloud.com, mask-h2.icloud.com) then answer NXDOMAIN so Safari
	// and the OS fall back to the captured resolver.
	Capture bool

	// Names, if set, learns IP→name pairs from relayed A/AAAA answers.
	Names *NameMap
	// OnDecision, if set, is called for every non-Allow decision. It runs on
	// the query path and must not block.
	OnDecision func(Event)
	// OnAnswer, if set, is called for every plainly allowed answer,
	// cached ones included. An answer that came from an upstream is handed
	// over before the reply is sent (the client's socket still exists: a
	// few microseconds more to look it up are acceptable). A Cached one is
	// handed over on the fast path, on UDP just after the reply has left
	// (a sequential client's next query waits for nothing it does), and
	// must not block or allocate: queue the Answer and return.
	OnAnswer func(Answer)

	// Panics records a panic recovered while answering one query (that
	// query gets SERVFAIL; the proxy goes on). Default: one of its own,
	// logging to Log. The agent passes its shared one, exported as a metric.
	Panics *guard.Panics

	Log *slog.Logger
	Now func() time.Time
}

// Defaults.
const (
	DefaultTimeout        = 2 * time.Second
	DefaultCacheSize      = 10000
	DefaultMaxTTL         = time.Hour
	DefaultMaxNegativeTTL = 5 * time.Minute
	DefaultMaxInFlight    = 1024
	DefaultMaxTCPConns    = 256
	DefaultSyntheticTTL   = 10 * time.Second
	defaultResolvConf     = "/etc/resolv.conf"
	systemdResolvConf     = "/run/systemd/resolve/resolv.conf"
)

func (c Config) withDefaults() (Config, error) {
	if len(c.Listen) == 0 {
		return c, errors.New("dnsproxy: no listen address; set dns.listen")
	}
	for _, l := range c.Listen {
		if _, _, err := net.SplitHostPort(l); err != nil {
			return c, fmt.Errorf("dnsproxy: listen address %q: %w (want host:port, e.g. 127.0.0.1:15353 or [::1]:53)", l, err)
		}
	}
	for _, u := range c.Upstreams {
		if _, err := upstreamAddr(u); err != nil {
			return c, err
		}
	}
	if c.Decider == nil {
		return c, errors.New("dnsproxy: no Decider")
	}
	if c.ResolvConf == "" {
		c.ResolvConf = defaultResolvConf
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.MaxTTL <= 0 {
		c.MaxTTL = DefaultMaxTTL
	}
	if c.MaxNegativeTTL <= 0 {
		c.MaxNegativeTTL = DefaultMaxNegativeTTL
	}
	if c.MinTTL < 0 || c.MinTTL > c.MaxTTL {
		return c, fmt.Errorf("dnsproxy: MinTTL %v must be between 0 and MaxTTL %v", c.MinTTL, c.MaxTTL)
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxTCPConns <= 0 {
		c.MaxTCPConns = DefaultMaxTCPConns
	}
	if c.UDPSockets < 0 {
		return c, fmt.Errorf("dnsproxy: UDPSockets %d must be 0 (one per core) or more; set dns.udpSockets to 0 or a count", c.UDPSockets)
	}
	if c.UDPSockets == 0 {
		c.UDPSockets = defaultUDPSockets()
	}
	if !reusePortBuilt {
		c.UDPSockets = 1
	}
	if c.SyntheticTTL <= 0 {
		c.SyntheticTTL = DefaultSyntheticTTL
	}
	if (c.BlockAnswer == BlockSink) && !c.Sink.Is4() {
		return c, errors.New("dnsproxy: block answer \"sink\" needs an IPv4 sink address (warn.sinkAddress)")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Panics == nil {
		c.Panics = guard.New(c.Log)
	}
	return c, nil
}

// upstreamAddr normalises an upstream to host:port (port 53 by default).
func upstreamAddr(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	return "", fmt.Errorf("dnsproxy: upstream %q is not an IP address or IP:port (host names would need a resolver to find the resolver)", s)
}
