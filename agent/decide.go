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
	p := a.Policy()
	m := p.MatchURL(host, path)
	if m.Rule == nil {
		m = p.MatchName(host)
	}
	return filter.Decide(m, a.filterSettings(), a.bypassFor)
}

func (a *Agent) filterSettings() filter.Settings {
	s := a.Settings()
	return filter.Settings{Mode: s.Mode, ConvertWarnToBlock: s.ConvertWarnToBlock}
}
