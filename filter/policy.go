package filter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unsafe"
)

// Policy is a compiled, immutable indicator set. It is safe for any number of
// concurrent readers; to change policy, Compile a new one and swap a pointer
// (an atomic.Pointer). Lookups never allocate for ASCII names.
type Policy struct {
	rules  []Rule
	names  trie       // DomainName rules; node values are rule indexes
	urls   trie       // hosts of Url rules; node values index groups
	groups []urlGroup // Url rules per host, urls' representatives
	ips    ipTable
}

// urlGroup is the Url rules of one canonical host, longest path first and,
// for equal paths, the winning action first.
type urlGroup struct {
	host  string
	paths []urlPath
}

type urlPath struct {
	path string
	rule uint32
}

// RuleError is one invalid rule in a Compile call.
type RuleError struct {
	Index int
	Value string
	Err   error
}

func (e *RuleError) Error() string { return fmt.Sprintf("rule %d (%q): %v", e.Index, e.Value, e.Err) }
func (e *RuleError) Unwrap() error { return e.Err }

// CompileError lists every invalid rule of a Compile call.
type CompileError struct{ Rules []*RuleError }

func (e *CompileError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d invalid rule(s)", len(e.Rules))
	for _, r := range e.Rules {
		b.WriteString("\n  ")
		b.WriteString(r.Error())
	}
	return b.String()
}

// Compile validates and canonicalises rules and builds a Policy. If any rule is
// invalid it returns a *CompileError listing all of them with their indexes.
func Compile(rules []Rule) (*Policy, error) { return compile(rules, ^uint32(0)) }

// compile is Compile with a fingerprint mask; tests pass a small mask to force
// the trie's collision path.
func compile(rules []Rule, fpMask uint32) (*Policy, error) {
	if len(rules) > maxRep {
		return nil, fmt.Errorf("%d rules is more than the %d a policy can hold; split the indicator feed", len(rules), maxRep)
	}
	p := &Policy{rules: make([]Rule, len(rules))}
	copy(p.rules, rules)
	var (
		errs    []*RuleError
		domains []uint32
		ipIdx   []uint32
		ipPfx   []netip.Prefix
		urlIdx  []uint32
		urlVal  []URL
	)
	for i := range p.rules {
		r := &p.rules[i]
		if r.Action == 0 || r.Action > Allowed {
			errs = append(errs, &RuleError{i, r.Value, fmt.Errorf("action %v is not one of Allowed, Audit, Warn, Block", r.Action)})
			continue
		}
		switch r.Type {
		case TypeDomain:
			n, err := CanonicalName(r.Value)
			if err != nil {
				errs = append(errs, &RuleError{i, r.Value, err})
				continue
			}
			r.Value = n
			domains = append(domains, uint32(i))
		case TypeIP:
			pfx, err := ParsePrefix(r.Value)
			if err != nil {
				errs = append(errs, &RuleError{i, r.Value, err})
				continue
			}
			r.Value = pfx.String()
			ipIdx, ipPfx = append(ipIdx, uint32(i)), append(ipPfx, pfx)
		case TypeURL:
			u, err := ParseURL(r.Value)
			if err != nil {
				errs = append(errs, &RuleError{i, r.Value, err})
				continue
			}
			r.Value = u.String()
			urlIdx, urlVal = append(urlIdx, uint32(i)), append(urlVal, u)
		default:
			errs = append(errs, &RuleError{i, r.Value, fmt.Errorf("unknown type %v", r.Type)})
		}
	}
	if len(errs) > 0 {
		return nil, &CompileError{errs}
	}

	// Real lists have ~1.15 trie nodes per name.
	var err error
	p.names, err = buildTrie(domains, func(i uint32) string { return p.rules[i].Value },
		func(i uint32) uint8 { return uint8(p.rules[i].Action) }, len(domains)+len(domains)/4, fpMask)
	if err != nil {
		return nil, err
	}

	p.ips = buildIPTable(p.rules, ipIdx, ipPfx)

	if len(urlIdx) > 0 {
		byHost := map[string]int{}
		for k, i := range urlIdx {
			u := urlVal[k]
			g, ok := byHost[u.Host]
			if !ok {
				g = len(p.groups)
				byHost[u.Host] = g
				p.groups = append(p.groups, urlGroup{host: u.Host})
			}
			p.groups[g].paths = append(p.groups[g].paths, urlPath{u.Path, i})
		}
		for g := range p.groups {
			ps := p.groups[g].paths
			slices.SortStableFunc(ps, func(a, b urlPath) int {
				if len(a.path) != len(b.path) {
					return len(b.path) - len(a.path)
				}
				return int(p.rules[b.rule].Action) - int(p.rules[a.rule].Action)
			})
		}
		reps := make([]uint32, len(p.groups))
		for g := range reps {
			reps[g] = uint32(g)
		}
		if p.urls, err = buildTrie(reps, func(g uint32) string { return p.groups[g].host },
			func(uint32) uint8 { return 1 }, 2*len(reps), fpMask); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// ParsePrefix reads an IpAddress indicator value: an address or a CIDR prefix.
// IPv4-mapped IPv6 is stored as IPv4 so that both spellings match.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP prefix: %w", err)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not an IP address: %w", err)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("IP address with a zone cannot be an indicator")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// URL is a parsed Url indicator: canonical host and path ("/" for a bare host).
type URL struct {
	Host string
	Path string
}

func (u URL) String() string { return u.Host + u.Path }

// HTTPOnly reports whether the indicator has a path and so can only be enforced
// on plain HTTP (CONTRACT §1).
func (u URL) HTTPOnly() bool { return u.Path != "/" }

// ParseURL reads a Url indicator value: "http://host/path", "https://host/path"
// or "host/path". Query and fragment are not part of the match and are refused.
func ParseURL(s string) (URL, error) {
	rest := strings.TrimSpace(s)
	if i := strings.Index(rest, "://"); i >= 0 {
		scheme := strings.ToLower(rest[:i])
		if scheme != "http" && scheme != "https" {
			return URL{}, fmt.Errorf("scheme %q is not http or https", scheme)
		}
		rest = rest[i+3:]
	}
	if strings.ContainsAny(rest, "?#") {
		return URL{}, errors.New("query strings and fragments cannot be matched; remove them")
	}
	host, path := rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	if h, port, ok := strings.Cut(host, ":"); ok && port != "" && !strings.Contains(port, ":") {
		host = h // a port does not change which host is meant
	}
	n, err := CanonicalName(host)
	if err != nil {
		return URL{}, err
	}
	return URL{Host: n, Path: path}, nil
}

// MatchName returns the most specific domain rule for name: the rule for the
// longest suffix of name on a label boundary (CONTRACT §1). name may be in any
// case and have one trailing dot; ASCII names (everything DNS, SNI and HTTP
// carry) are matched without allocating. A name with non-ASCII bytes is first
// put in canonical form (IDNA, see CanonicalName) and matches nothing if it
// has none.
func (p *Policy) MatchName(name string) Match {
	name, ok := p.lookupName(name)
	if !ok {
		return Match{}
	}
	v := p.names.lookup(name)
	if v == 0 {
		return Match{}
	}
	r := &p.rules[v>>tagBits]
	return Match{Action(v & tagMask), r}
}

// lookupName strips one trailing dot and, for non-ASCII names, canonicalises.
func (p *Policy) lookupName(name string) (string, bool) {
	if n := len(name); n > 0 && name[n-1] == '.' {
		name = name[:n-1]
	}
	if hasNonASCII(name) {
		c, err := CanonicalName(name)
		return c, err == nil
	}
	return name, true
}

// hasNonASCII tests eight bytes at a time.
func hasNonASCII(s string) bool {
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	var or uint64
	i := 0
	for ; i+8 <= len(b); i += 8 {
		or |= binary.LittleEndian.Uint64(b[i:])
	}
	for ; i < len(b); i++ {
		or |= uint64(b[i])
	}
	return or&0x8080808080808080 != 0
}

// MatchAddr returns the longest-prefix IP rule for a. An IPv4-mapped IPv6
// address matches as IPv4, and a zone is ignored.
func (p *Policy) MatchAddr(a netip.Addr) Match {
	i := p.ips.lookup(a.Unmap().WithZone(""))
	if i < 0 {
		return Match{}
	}
	r := &p.rules[i]
	return Match{r.Action, r}
}

// MatchURL returns the Url rule with the longest path prefix on the most
// specific host that has Url rules (host as in MatchName; an empty path is
// "/"). Paths compare case-sensitively, as HTTP does.
func (p *Policy) MatchURL(host, path string) Match {
	if len(p.groups) == 0 {
		return Match{}
	}
	host, ok := p.lookupName(host)
	if !ok {
		return Match{}
	}
	if path == "" {
		path = "/"
	}
	var nodes [maxDepth]uint32
	for n := p.urls.walk(host, &nodes) - 1; n >= 0; n-- {
		v := p.urls.slots[nodes[n]].val
		if v&tagMask == 0 {
			continue
		}
		for _, u := range p.groups[v>>tagBits].paths {
			if strings.HasPrefix(path, u.path) {
				r := &p.rules[u.rule]
				return Match{r.Action, r}
			}
		}
	}
	return Match{}
}

// Rules returns the compiled rules in canonical form, in input order. The
// slice is shared; callers must not modify it.
func (p *Policy) Rules() []Rule { return p.rules }

// Len is the number of rules.
func (p *Policy) Len() int { return len(p.rules) }
