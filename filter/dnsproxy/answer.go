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

// blockedReply is CONTRACT §7 for a refusing decision:
//
//	Block: A → nxdomain | 0.0.0.0 (nullip) | sink; AAAA → NODATA (:: for nullip)
//	Warn:  A → sink; AAAA → NODATA
//	other types → NODATA
//
// Extended DNS Error 15 (Blocked, RFC 8914) naming the indicator is added by
// the caller when the client speaks EDNS0.
func (p *Proxy) blockedReply(req *dns.Msg, d filter.Decision) *dns.Msg {
	q := req.Question[0]
	ttl := uint32(p.cfg.SyntheticTTL.Seconds())
	addr := func(ip netip.Addr) *dns.Msg {
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
	warn := d.Verdict == filter.VerdictWarn
	switch q.Qtype {
	case dns.TypeA:
		switch {
		case warn && p.cfg.Sink.Is4():
			return addr(p.cfg.Sink)
		case warn:
			return negative(req, dns.RcodeNameError, ttl)
		case p.cfg.BlockAnswer == BlockNullIP:
			return addr(netip.IPv4Unspecified())
		case p.cfg.BlockAnswer == BlockSink:
			return addr(p.cfg.Sink)
		}
		return negative(req, dns.RcodeNameError, ttl)
	case dns.TypeAAAA:
		if !warn && p.cfg.BlockAnswer == BlockNullIP {
			return addr(netip.IPv6Unspecified())
		}
	}
	return negative(req, dns.RcodeSuccess, ttl)
}

// edeText is the EXTRA-TEXT of the Extended DNS Error: the verdict and the
// indicator id, so `dig` shows why a name is blocked.
func edeText(d filter.Decision, name string) string {
	var b strings.Builder
	b.WriteString("netward: ")
	if d.Verdict == filter.VerdictWarn {
		b.WriteString("warned")
	} else {
		b.WriteString("blocked")
	}
	b.WriteString(" ")
	b.WriteString(name)
	if r := d.Match.Rule; r != nil {
		b.WriteString(" by indicator ")
		b.WriteString(r.ID)
	}
	return b.String()
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
