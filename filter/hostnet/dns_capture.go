package hostnet

import (
	"fmt"
	"log/slog"
	"net/netip"
)

// DNSTableName is the DNS capture's own nftables table (families ip and
// ip6). Like the inspector's table it is an owner table: the kernel deletes
// it when the agent's netlink socket closes, so a crashed agent leaves DNS
// working (fail-open).
const DNSTableName = "netward_dns"

// Tables lists every table the agent creates; Cleanup removes them all.
var tables = []string{DNSTableName, nfqTableNameAll}

// nfqTableNameAll mirrors the inspector's table name (nfqueue_linux.go) for
// every platform, so Cleanup can name it.
const nfqTableNameAll = "netward_inspect"

// DNSCaptureConfig says where captured DNS goes.
type DNSCaptureConfig struct {
	// Target4 and Target6 are the proxy's dedicated loopback listeners
	// (e.g. 127.0.0.153:53 and [::1]:53). IPv4 port-53 traffic is
	// redirected to Target4, IPv6 to Target6; an invalid target leaves that
	// family alone.
	Target4, Target6 netip.AddrPort
	// Mark is the SO_MARK of the proxy's own upstream sockets, exempt from
	// the redirect (default AgentMark).
	Mark uint32
	Log  *slog.Logger
}

func (c DNSCaptureConfig) withDefaults() (DNSCaptureConfig, error) {
	if !c.Target4.IsValid() && !c.Target6.IsValid() {
		return c, fmt.Errorf("dns capture: no proxy address to redirect to")
	}
	if c.Target4.IsValid() && (!c.Target4.Addr().Is4() || !c.Target4.Addr().IsLoopback()) {
		return c, fmt.Errorf("dns capture: %v is not an IPv4 loopback address; capture redirects to the proxy's loopback listener", c.Target4)
	}
	if c.Target6.IsValid() && (!c.Target6.Addr().Is6() || !c.Target6.Addr().IsLoopback()) {
		return c, fmt.Errorf("dns capture: %v is not the IPv6 loopback address", c.Target6)
	}
	for _, t := range []netip.AddrPort{c.Target4, c.Target6} {
		if t.IsValid() && (t.Addr() == netip.MustParseAddr("127.0.0.53") || t.Port() == 5353) {
			return c, fmt.Errorf("dns capture: %v belongs to systemd-resolved or mDNS; listen on a dedicated address such as 127.0.0.153:53", t)
		}
	}
	if c.Mark == 0 {
		c.Mark = AgentMark
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
