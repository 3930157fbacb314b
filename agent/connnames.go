package agent

import (
	"net/netip"
	"sync"
)

// connNames remembers the name inspection read from each connection (TLS
// SNI, QUIC, HTTP Host, a proxy's CONNECT target), so the flow record of
// that connection, written when it ends, names its remote by what the
// client asked for rather than by a DNS answer for its address (CDNs serve
// many names from one address). Bounded: two generations of at most
// connNamesGen entries each; the oldest generation is dropped whole.
type connNames struct {
	mu        sync.Mutex
	cur, prev map[connKey]string
}

type connKey struct {
	proto         uint8
	local, remote netip.AddrPort
}

const connNamesGen = 32768

func newConnNames() *connNames {
	return &connNames{cur: make(map[connKey]string), prev: make(map[connKey]string)}
}

func (c *connNames) learn(proto uint8, local, remote netip.AddrPort, name string) {
	if name == "" {
		return
	}
	k := connKey{proto, unmapAP(local), unmapAP(remote)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= connNamesGen {
		c.prev, c.cur = c.cur, make(map[connKey]string)
	}
	c.cur[k] = name
}

// LookupConn implements flow.ConnNameLookup.
func (c *connNames) LookupConn(proto uint8, local, remote netip.AddrPort) (string, bool) {
	k := connKey{proto, unmapAP(local), unmapAP(remote)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.cur[k]; ok {
		return n, true
	}
	n, ok := c.prev[k]
	return n, ok
}

func unmapAP(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
