// Package resolvconf reads the nameserver lines of a resolv.conf(5) file,
// which both the DNS proxy (to find the host's upstreams) and the feed client
// (to resolve the console past the systemd-resolved stub) need.
package resolvconf

import (
	"bufio"
	"bytes"
	"net/netip"
	"strings"
)

// Nameservers returns the addresses of the "nameserver" lines of b, in
// order. resolv.conf allows only addresses there; anything else is skipped.
func Nameservers(b []byte) []netip.Addr {
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			out = append(out, a)
		}
	}
	return out
}
