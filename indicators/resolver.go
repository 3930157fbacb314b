package indicators

import (
	"context"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/netward/netward/internal/resolvconf"
)

// Where the Go resolver and systemd-resolved keep the host's resolvers.
const (
	systemdStubAddr   = "127.0.0.53"
	systemdResolvConf = "/run/systemd/resolve/resolv.conf"
)

// feedResolver resolves the feed's host with the host's own resolver
// settings but never through netward's DNS proxy. It is Go's own resolver
// (PreferGo), which sends queries itself to the servers of /etc/resolv.conf
// (on Windows: of the network adapters), so:
//   - on Linux every query socket runs control, which sets the agent's
//     socket mark, and the DNS capture rules exempt marked packets
//     (filter/hostnet AgentMark);
//   - on Windows the capture is an NRPT rule applied by the DNS Client
//     service, which Go's resolver does not go through.
//
// The systemd-resolved stub is skipped in favour
// of its real upstreams, because the stub's own queries are captured like
// any other process's; without that a Block indicator for the console's
// name could cut the agent off the feed that would lift it.
func feedResolver(control func(string, string, syscall.RawConn) error) *net.Resolver {
	d := &net.Dialer{Timeout: 5 * time.Second, Control: control}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		return d.DialContext(ctx, network, pastStub(address, systemdResolvConf))
	}}
}

// pastStub replaces the systemd-resolved stub address with the first real
// upstream listed in path (resolv.conf syntax); other addresses, and the
// stub when no upstream is listed, are returned unchanged.
func pastStub(address, path string) string {
	host, _, err := net.SplitHostPort(address)
	if err != nil || host != systemdStubAddr {
		return address
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return address
	}
	for _, a := range resolvconf.Nameservers(b) {
		if a.String() == systemdStubAddr {
			continue
		}
		return netip.AddrPortFrom(a.WithZone(""), 53).String()
	}
	return address
}
