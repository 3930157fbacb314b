package agent

import (
	"net/netip"

	"github.com/netward/netward/filter"
)

// DecideName is the one decision for a host name that every interceptor uses:
// the active policy, the feed settings, and the bypass store.
func (a *Agent) DecideName(name string) filter.Decision {
	return filter.Decide(a.Policy().MatchName(name), a.filterSettings(), a.bypassFor)
}

// DecideAddr is the decision for a connection to an IP address.
func (a *Agent) DecideAddr(addr netip.Addr) filter.Decision {
	return filter.Decide(a.Policy().MatchAddr(addr), a.filterSettings(), a.bypassFor)
}

// DecideURL is the decision for a plain-HTTP request: URL rules first (they
// are the most specific), then the host's domain rules.
func (a *Agent) DecideURL(host, path string) filter.Decision {
	return filter.Decide(matchURL(a.Policy(), host, path), a.filterSettings(), a.bypassFor)
}

func matchURL(p *filter.Policy, host, path string) filter.Match {
	if m := p.MatchURL(host, path); m.Rule != nil {
		return m
	}
	return p.MatchName(host)
}

// matchTarget is the policy match for what a user names (check, bypass): an
// IP address — also an IP-literal URL or host:port — by the IP rules, a URL
// by the URL then domain rules, a name by the domain rules.
func matchTarget(p *filter.Policy, t filter.Target) filter.Match {
	switch t.Kind {
	case filter.TargetIP:
		return p.MatchAddr(t.Addr)
	case filter.TargetURL:
		return matchURL(p, t.URL.Host, t.URL.Path)
	}
	return p.MatchName(t.Name)
}

// IPVerdicts is the same decision for every address of the policy's IP
// indicators at once, for the kernel (see filter.Policy.IPVerdicts): a bypass
// by any user opens a warned address for the device, as for DNS.
func (a *Agent) IPVerdicts() filter.IPVerdicts {
	return a.Policy().IPVerdicts(a.filterSettings(), a.bypassFor)
}

func (a *Agent) filterSettings() filter.Settings {
	s := a.Settings()
	return filter.Settings{Mode: s.Mode, ConvertWarnToBlock: s.ConvertWarnToBlock}
}
