package filter

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Policy is a compiled, immutable indicator set. It is safe for any number of
// concurrent readers; to change policy, Compile a new one and swap a pointer.
//
// This is the reference implementation: simple maps. It is replaced by the
// suffix trie in trie.go.
type Policy struct {
	domains map[string]*Rule
	ips     []*prefixRule
	urls    map[string][]*urlRule
	rules   []Rule
}

type prefixRule struct {
	prefix netip.Prefix
	rule   *Rule
}

type urlRule struct {
	path string
	rule *Rule
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
func Compile(rules []Rule) (*Policy, error) {
	p := &Policy{domains: map[string]*Rule{}, urls: map[string][]*urlRule{}, rules: make([]Rule, len(rules))}
	copy(p.rules, rules)
	var errs []*RuleError
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
			if old := p.domains[n]; old == nil || r.Action > old.Action {
				p.domains[n] = r
			}
		case TypeIP:
			pfx, err := ParsePrefix(r.Value)
			if err != nil {
				errs = append(errs, &RuleError{i, r.Value, err})
				continue
			}
			r.Value = pfx.String()
			p.ips = append(p.ips, &prefixRule{pfx, r})
		case TypeURL:
			u, err := ParseURL(r.Value)
			if err != nil {
				errs = append(errs, &RuleError{i, r.Value, err})
				continue
			}
			r.Value = u.String()
			p.urls[u.Host] = append(p.urls[u.Host], &urlRule{u.Path, r})
		default:
			errs = append(errs, &RuleError{i, r.Value, fmt.Errorf("unknown type %v", r.Type)})
		}
	}
	if len(errs) > 0 {
		return nil, &CompileError{errs}
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

// MatchName returns the most specific domain rule for name (any case, one
// optional trailing dot).
func (p *Policy) MatchName(name string) Match {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for {
		if r := p.domains[name]; r != nil {
			return Match{r.Action, r}
		}
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return Match{}
		}
		name = name[i+1:]
	}
}

// MatchAddr returns the longest-prefix IP rule for a.
func (p *Policy) MatchAddr(a netip.Addr) Match {
	a = a.Unmap()
	var best *prefixRule
	for _, pr := range p.ips {
		if !pr.prefix.Contains(a) {
			continue
		}
		if best == nil || pr.prefix.Bits() > best.prefix.Bits() ||
			(pr.prefix.Bits() == best.prefix.Bits() && pr.rule.Action > best.rule.Action) {
			best = pr
		}
	}
	if best == nil {
		return Match{}
	}
	return Match{best.rule.Action, best.rule}
}

// MatchURL returns the Url rule with the longest path prefix on the most
// specific host that has Url rules.
func (p *Policy) MatchURL(host, path string) Match {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if path == "" {
		path = "/"
	}
	for {
		var best *urlRule
		for _, u := range p.urls[host] {
			if !strings.HasPrefix(path, u.path) {
				continue
			}
			if best == nil || len(u.path) > len(best.path) || (len(u.path) == len(best.path) && u.rule.Action > best.rule.Action) {
				best = u
			}
		}
		if best != nil {
			return Match{best.rule.Action, best.rule}
		}
		i := strings.IndexByte(host, '.')
		if i < 0 {
			return Match{}
		}
		host = host[i+1:]
	}
}

// Rules returns the compiled rules in canonical form, in input order. The
// slice is shared; callers must not modify it.
func (p *Policy) Rules() []Rule { return p.rules }

// Len is the number of rules.
func (p *Policy) Len() int { return len(p.rules) }
