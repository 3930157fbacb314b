package filter

import (
	"net/netip"
	"strings"
)

// refPolicy is the straightforward implementation of CONTRACT §1 that the trie
// is checked against (and the map-walk baseline of the benchmarks): a map of
// canonical names walked suffix by suffix, a linear scan over IP prefixes and a
// map of URL hosts. It was the first Policy implementation.
type refPolicy struct {
	domains map[string]*Rule
	ips     []*Rule
	ipPfx   []netip.Prefix
	urls    map[string][]*Rule
	urlPath map[*Rule]string
	rules   []Rule
}

// refCompile builds a refPolicy; it relies on Compile's validation having
// passed (invalid rules are skipped, not reported).
func refCompile(rules []Rule) *refPolicy {
	p := &refPolicy{
		domains: make(map[string]*Rule),
		urls:    map[string][]*Rule{},
		urlPath: map[*Rule]string{},
		rules:   make([]Rule, len(rules)),
	}
	copy(p.rules, rules)
	for i := range p.rules {
		r := &p.rules[i]
		if r.Action == 0 || r.Action > Allowed {
			continue
		}
		switch r.Type {
		case TypeDomain:
			n, err := CanonicalName(r.Value)
			if err != nil {
				continue
			}
			r.Value = n
			// Most specific wins is the map walk; on a tie on the same value
			// the larger action wins (Allowed > Warn > Block > Audit) and of
			// equal ones the first.
			if old := p.domains[n]; old == nil || r.Action > old.Action {
				p.domains[n] = r
			}
		case TypeIP:
			pfx, err := ParsePrefix(r.Value)
			if err != nil {
				continue
			}
			r.Value = pfx.String()
			p.ips = append(p.ips, r)
			p.ipPfx = append(p.ipPfx, pfx)
		case TypeURL:
			u, err := ParseURL(r.Value)
			if err != nil {
				continue
			}
			r.Value = u.String()
			p.urls[u.Host] = append(p.urls[u.Host], r)
			p.urlPath[r] = u.Path
		}
	}
	return p
}

func refName(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	if !isASCII(name) {
		n, err := CanonicalName(name)
		return n, err == nil
	}
	return strings.ToLower(name), true
}

func (p *refPolicy) MatchName(name string) Match {
	name, ok := refName(name)
	if !ok {
		return Match{}
	}
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

func (p *refPolicy) MatchAddr(a netip.Addr) Match {
	a = a.Unmap().WithZone("")
	var best *Rule
	bestBits := -1
	for i, pfx := range p.ipPfx {
		if !pfx.Contains(a) {
			continue
		}
		r := p.ips[i]
		if pfx.Bits() > bestBits || (pfx.Bits() == bestBits && r.Action > best.Action) {
			best, bestBits = r, pfx.Bits()
		}
	}
	if best == nil {
		return Match{}
	}
	return Match{best.Action, best}
}

func (p *refPolicy) MatchURL(host, path string) Match {
	host, ok := refName(host)
	if !ok {
		return Match{}
	}
	if path == "" {
		path = "/"
	}
	for {
		var best *Rule
		for _, r := range p.urls[host] {
			up := p.urlPath[r]
			if !strings.HasPrefix(path, up) {
				continue
			}
			if best == nil || len(up) > len(p.urlPath[best]) || (len(up) == len(p.urlPath[best]) && r.Action > best.Action) {
				best = r
			}
		}
		if best != nil {
			return Match{best.Action, best}
		}
		i := strings.IndexByte(host, '.')
		if i < 0 {
			return Match{}
		}
		host = host[i+1:]
	}
}
