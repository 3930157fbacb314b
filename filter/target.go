package filter

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// TargetKind says how a Target is decided.
type TargetKind uint8

const (
	TargetName TargetKind = iota // a host name: domain rules
	TargetIP                     // an IP address: IP rules
	TargetURL                    // a URL whose host is a name: URL rules, then domain rules
)

func (k TargetKind) String() string {
	switch k {
	case TargetIP:
		return "ip"
	case TargetURL:
		return "url"
	}
	return "name"
}

// Target is what someone asks a decision about (`netward check`, `netward
// bypass`): a host name, an IP address or a URL, as a user types it. An IP
// literal — alone, in brackets, as host:port or as a URL's host — is an
// address, decided by the IP rules: read as a name it would match no domain
// rule and look allowed whatever the IP indicators say.
type Target struct {
	Kind TargetKind
	Name string     // TargetName: canonical host name
	Addr netip.Addr // TargetIP: the address (IPv4-mapped addresses unmapped)
	URL  URL        // TargetURL
}

// String is the canonical form: the name, the address or host+path.
func (t Target) String() string {
	switch t.Kind {
	case TargetIP:
		return t.Addr.String()
	case TargetURL:
		return t.URL.String()
	}
	return t.Name
}

// HostSyntax checks the host name of a name or URL target against the
// host name rules of RFC 952 and RFC 1123 §2.1: no label begins or ends
// with a hyphen. Decisions do not need it (CanonicalName is lenient, as
// names on the wire are); a person asking about a name does: a typo like
// "-bad-.example" is not something any browser would visit.
func (t Target) HostSyntax() error {
	host := t.Name
	if t.Kind == TargetURL {
		host = t.URL.Host
	}
	if t.Kind == TargetIP || host == "" {
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("label %q of %s begins or ends with a hyphen, which a host name cannot (RFC 1123)", label, host)
		}
	}
	return nil
}

// ParseTarget reads a name, "name:port", an IP address ("198.51.100.7",
// "[2001:db8::1]", "198.51.100.7:443", "[2001:db8::1]:443"), or a URL
// ("http://host/path", "host/path"; a URL with an IP host is that address).
func ParseTarget(s string) (Target, error) {
	q := strings.TrimSpace(s)
	if a, ok := addrLiteral(q); ok {
		return Target{Kind: TargetIP, Addr: a}, nil
	}
	rest := q
	if i := strings.Index(rest, "://"); i >= 0 {
		if scheme := strings.ToLower(rest[:i]); scheme != "http" && scheme != "https" {
			return Target{}, fmt.Errorf("scheme %q is not http or https", scheme)
		}
		rest = rest[i+3:]
	}
	hostport := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		hostport = rest[:i]
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if a, ok := addrLiteral(host); ok {
		return Target{Kind: TargetIP, Addr: a}, nil
	}
	if host == "" {
		return Target{}, errors.New("no host name or address")
	}
	if len(rest) > len(hostport) || rest != q {
		u, err := ParseURL(q)
		if err != nil {
			return Target{}, err
		}
		return Target{Kind: TargetURL, URL: u}, nil
	}
	n, err := CanonicalName(host)
	if err != nil {
		return Target{}, err
	}
	return Target{Kind: TargetName, Name: n}, nil
}

// addrLiteral reads an IP address, bare or in brackets, without a zone.
func addrLiteral(s string) (netip.Addr, bool) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// MatchTarget is the policy match for t: an address by the IP rules, a URL
// by the URL rules and then its host's domain rules, a name by the domain
// rules.
func (p *Policy) MatchTarget(t Target) Match {
	switch t.Kind {
	case TargetIP:
		return p.MatchAddr(t.Addr)
	case TargetURL:
		return p.MatchRequest(t.URL.Host, t.URL.Path)
	}
	return p.MatchName(t.Name)
}

// MatchRequest is the match for a plain-HTTP request: the URL rules first
// (they are the most specific), then the host's domain rules.
func (p *Policy) MatchRequest(host, path string) Match {
	if m := p.MatchURL(host, path); m.Rule != nil {
		return m
	}
	return p.MatchName(host)
}
