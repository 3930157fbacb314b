package dnsproxy

import (
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
)

// canaryName is Mozilla's DoH canary domain: a resolver that answers it
// NXDOMAIN (or NODATA) tells Firefox not to enable DNS over HTTPS on its own,
// which would bypass the proxy.
const canaryName = "use-application-dns.net"

// relayNames are iCloud Private Relay's canary names: answering them NXDOMAIN
// makes Apple devices fall back to the ordinary resolver (Apple's documented
// switch for networks that filter).
var relayNames = map[string]bool{"mask.icloud.com": true, "mask-h2.icloud.com": true}

// canonical turns a question name into the policy's form: lowercase, no
// trailing dot. Escaped bytes (\DDD) are left as they are; such names match
// only the suffixes after their last escaped label, which never makes a
// blocked name pass.
func canonical(qname string) string {
	return strings.ToLower(strings.TrimSuffix(qname, "."))
}

// synthSOA is the authority record of a synthesized negative answer. Its TTL
// and MINIMUM are the synthetic TTL, so the negative answer is cached only
// that long (RFC 2308 §5).
func synthSOA(qname string, ttl uint32) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: dns.Fqdn(qname), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      "netward.invalid.",
		Mbox:    "hostmaster.netward.invalid.",
		Serial:  1,
		Refresh: 3600, Retry: 600, Expire: 86400,
		Minttl: ttl,
	}
}

// negative builds an NXDOMAIN (rcode NameError) or NODATA (rcode Success with
// no answer) reply with a synthetic SOA.
func negative(req *dns.Msg, rcode int, ttl uint32) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	m.Ns = []dns.RR{synthSOA(req.Question[0].Name, ttl)}
	return m
}

// refusalShape is CONTRACT §7 for a refusing verdict v and a question of
// type qtype, shared by both paths:
//
//	Block: A → nxdomain | 0.0.0.0 (nullip) | sink; AAAA → NODATA (:: for nullip)
//	Warn:  A → sink; AAAA → NODATA
//	other types → NODATA
//
// A valid ip means an address answer; otherwise a negative answer with rcode
// (NameError or Success, i.e. NODATA) and a synthetic SOA.
func (p *Proxy) refusalShape(qtype uint16, v filter.Verdict) (ip netip.Addr, rcode int) {
	warn := v == filter.VerdictWarn
	switch qtype {
	case dns.TypeA:
		switch {
		case warn && p.cfg.Sink.Is4():
			return p.cfg.Sink, 0
		case warn:
			return netip.Addr{}, dns.RcodeNameError
		case p.cfg.BlockAnswer == BlockNullIP:
			return netip.IPv4Unspecified(), 0
		case p.cfg.BlockAnswer == BlockSink && p.cfg.Sink.IsValid():
			return p.cfg.Sink, 0
		}
		return netip.Addr{}, dns.RcodeNameError
	case dns.TypeAAAA:
		if !warn && p.cfg.BlockAnswer == BlockNullIP {
			return netip.IPv6Unspecified(), 0
		}
	}
	return netip.Addr{}, dns.RcodeSuccess
}

// blockedReply is the reply to a refused query (refusalShape). Extended DNS
// Error 15 (Blocked, RFC 8914) naming the indicator is added by the caller
// when the client speaks EDNS0.
func (p *Proxy) blockedReply(req *dns.Msg, d filter.Decision) *dns.Msg {
	q := req.Question[0]
	ttl := uint32(p.cfg.SyntheticTTL.Seconds())
	ip, rcode := p.refusalShape(q.Qtype, d.Verdict)
	if !ip.IsValid() {
		return negative(req, rcode, ttl)
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	h := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: ttl}
	if ip.Is4() {
		h.Rrtype = dns.TypeA
		m.Answer = []dns.RR{&dns.A{Hdr: h, A: net.IP(ip.AsSlice())}}
	} else {
		h.Rrtype = dns.TypeAAAA
		m.Answer = []dns.RR{&dns.AAAA{Hdr: h, AAAA: net.IP(ip.AsSlice())}}
	}
	return m
}

// edeText is the EXTRA-TEXT of the Extended DNS Error: the verdict and the
// indicator id, so `dig` shows why a name is blocked.
func edeText(d filter.Decision, name string) string {
	return string(appendEDEText(nil, d, name))
}

// appendEDEText appends edeText's text to b.
func appendEDEText(b []byte, d filter.Decision, name string) []byte {
	b = append(b, "netward: "...)
	if d.Verdict == filter.VerdictWarn {
		b = append(b, "warned"...)
	} else {
		b = append(b, "blocked"...)
	}
	b = append(b, ' ')
	b = append(b, name...)
	if r := d.Match.Rule; r != nil {
		b = append(b, " by indicator "...)
		b = r.AppendID(b)
	}
	return b
}

// stripECH removes the ech SvcParam (key 5) from HTTPS and SVCB records, in
// place. The records are ones the proxy owns (freshly unpacked), so the
// change never reaches shared data. Without ECH the real server name is
// visible in the TLS/QUIC handshake, where inspection needs it.
func stripECH(rrs []dns.RR) {
	for _, rr := range rrs {
		var s *dns.SVCB
		switch v := rr.(type) {
		case *dns.HTTPS:
			s = &v.SVCB
		case *dns.SVCB:
			s = v
		default:
			continue
		}
		kept := s.Value[:0]
		for _, kv := range s.Value {
			if kv.Key() != dns.SVCB_ECHCONFIG {
				kept = append(kept, kv)
			}
		}
		clear(s.Value[len(kept):])
		s.Value = kept
	}
}

// cnameChain returns the canonical CNAME and DNAME targets in an answer, in
// order; each is decided like the question name (CONTRACT §7).
func cnameChain(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch v := rr.(type) {
		case *dns.CNAME:
			out = append(out, canonical(v.Target))
		case *dns.DNAME:
			out = append(out, canonical(v.Target))
		}
	}
	return out
}
