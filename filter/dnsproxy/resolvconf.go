package dnsproxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// systemdStub is the systemd-resolved stub listener. Forwarding to it while
// capturing port 53 would loop (and hide the real resolvers), so it is
// replaced by the real upstreams systemd-resolved writes to
// /run/systemd/resolve/resolv.conf.
var systemdStub = netip.MustParseAddr("127.0.0.53")

// parseResolvConf returns the nameserver addresses of a resolv.conf(5) file,
// in order, as host:port.
func parseResolvConf(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue // resolv.conf allows only addresses; skip junk
		}
		out = append(out, netip.AddrPortFrom(a, 53).String())
	}
	return out
}

// hostUpstreams returns the host's resolvers (osResolvers) without the
// addresses the proxy itself listens on (a loop).
func hostUpstreams(path string, self []string) ([]string, error) {
	ups, err := osResolvers(path)
	if err != nil {
		return nil, err
	}
	out := dropSelf(ups, self)
	if len(out) == 0 {
		return nil, fmt.Errorf("no usable resolver on this host (only the proxy itself or the systemd stub); set dns.upstreams")
	}
	return out, nil
}

// fileResolvers reads resolv.conf(5) at path, following the systemd-resolved
// stub to its real upstreams.
func fileResolvers(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the host's resolvers from %s: %w (set dns.upstreams)", path, err)
	}
	ups := parseResolvConf(b)
	var out []string
	for _, u := range ups {
		ap := netip.MustParseAddrPort(u)
		if ap.Addr() == systemdStub {
			sb, err := os.ReadFile(systemdResolvConf)
			if err != nil {
				return nil, fmt.Errorf("the host uses the systemd-resolved stub 127.0.0.53 but %s is unreadable: %w (set dns.upstreams)", systemdResolvConf, err)
			}
			for _, s := range parseResolvConf(sb) {
				if netip.MustParseAddrPort(s).Addr() != systemdStub {
					out = append(out, s)
				}
			}
			continue
		}
		out = append(out, u)
	}
	return out, nil
}

// dropSelf removes duplicates and the proxy's own listen addresses.
func dropSelf(ups, self []string) []string {
	seen := map[string]bool{}
	for _, s := range self {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			seen[ap.String()] = true
		}
	}
	var out []string
	for _, u := range ups {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}
