package dnsproxy

import (
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
)

// The decision steps of the request chain (see the package comment), shared
// by the general path (Proxy.answer) and the wire fast path
// (Proxy.fastAnswer), so the two cannot decide or record differently: the
// special names, the decision on every CNAME target, and what is counted and
// reported for a relayed or refused answer.

// special reports whether the proxy answers name NXDOMAIN itself: the DoH
// canary always, iCloud Private Relay's names when host capture is on.
func (p *Proxy) special(name string) bool {
	return name == canaryName || (p.cfg.Capture && relayNames[name])
}

// decideTargets decides every CNAME and DNAME target of an answer into
// ds[i] (CONTRACT §7: a CNAME into a blocked name is blocked) and returns the
// index of the first that refuses, or -1. len(ds) must be len(chain).
func (p *Proxy) decideTargets(chain []string, ds []filter.Decision) int {
	for i, target := range chain {
		if ds[i] = p.cfg.Decider.DecideName(target); ds[i].Verdict.Blocks() {
			return i
		}
	}
	return -1
}

// reportTargets reports the decisions of CNAME targets that let the answer
// through.
func (p *Proxy) reportTargets(chain []string, ds []filter.Decision, ev evCtx) {
	for i, target := range chain {
		p.report(ds[i], target, ev)
	}
}

// relayed counts and reports a relayed answer: each target's decision, then
// the question's.
func (p *Proxy) relayed(d filter.Decision, name string, chain []string, ds []filter.Decision, ev evCtx) {
	p.reportTargets(chain, ds, ev)
	p.stats.verdict(d.Verdict)
	p.report(d, name, ev)
}

// refuse answers a blocked or warned query (d decided name, the question or
// a CNAME target) and records it.
func (p *Proxy) refuse(req *dns.Msg, d filter.Decision, name string, ev evCtx) (*dns.Msg, *dns.EDNS0_EDE) {
	p.refused(d, name, ev)
	return p.blockedReply(req, d), &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: edeText(d, name)}
}

// refused counts and reports a refused answer (both paths).
func (p *Proxy) refused(d filter.Decision, name string, ev evCtx) {
	p.stats.verdict(d.Verdict)
	p.report(d, name, ev)
}

// evCtx is what an Event needs, kept cheap until an Event is produced.
type evCtx struct {
	qname  string
	qtype  uint16
	client netip.AddrPort
	proto  string
	cached bool      // answered on the wire fast path
	at     time.Time // Event.At: the fast path's clock read, or zero
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

// plainAllow reports whether d allows without an audit or warning: no
// Event, an allowed answer (OnAnswer).
func plainAllow(d filter.Decision) bool {
	return d.Verdict == filter.VerdictAllow && d.Would == filter.VerdictAllow
}

func (p *Proxy) report(d filter.Decision, name string, c evCtx) {
	if plainAllow(d) {
		p.answered(d, name, c)
		return
	}
	if p.cfg.OnDecision == nil {
		return
	}
	ev := Event{Name: name, QName: c.qname, QType: dns.TypeToString[c.qtype], Decision: d, Proto: c.proto,
		Client: netip.AddrPortFrom(c.client.Addr().Unmap(), c.client.Port()), At: c.at}
	p.cfg.OnDecision(ev)
}

// answered hands a plainly allowed answer to Config.OnAnswer (discovery
// telemetry): once per query, for the question name (its CNAME targets
// are the resolver's business, not the application's). It runs on the
// fast path too, so it copies no string and allocates nothing; the
// callee queues it.
func (p *Proxy) answered(d filter.Decision, name string, c evCtx) {
	if p.cfg.OnAnswer == nil || name != c.qname {
		return
	}
	p.cfg.OnAnswer(answerOf(d, name, c))
}

func answerOf(d filter.Decision, name string, c evCtx) Answer {
	return Answer{Name: name, QType: c.qtype, Rule: d.Match.Rule, Proto: c.proto, Cached: c.cached,
		Client: netip.AddrPortFrom(c.client.Addr().Unmap(), c.client.Port())}
}
