package hostnet

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestIPRanges(t *testing.T) {
	pf := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	str := func(rs []ipRange) string {
		s := ""
		for _, r := range rs {
			s += fmt.Sprintf("[%s-%s]", r.first, r.last)
		}
		return s
	}
	for _, tt := range []struct {
		in     []netip.Prefix
		v4, v6 string
	}{
		{pf("203.0.113.7/32"), "[203.0.113.7-203.0.113.7]", ""},
		// Nested, overlapping and adjacent prefixes merge; order does not matter.
		{pf("198.51.100.0/24", "198.51.100.128/25", "198.51.101.0/24", "192.0.2.0/25", "192.0.2.200/32"),
			"[192.0.2.0-192.0.2.127][192.0.2.200-192.0.2.200][198.51.100.0-198.51.101.255]", ""},
		// The whole space, and the top address (no end element follows it).
		{pf("0.0.0.0/0", "10.0.0.0/8"), "[0.0.0.0-255.255.255.255]", ""},
		{pf("255.255.255.255/32"), "[255.255.255.255-255.255.255.255]", ""},
		// IPv4-mapped counts as IPv4; IPv6 apart; unmasked bits are masked.
		{pf("::ffff:192.0.2.1/128", "2001:db8::1/32", "2001:db8:1::/48"), "[192.0.2.1-192.0.2.1]",
			"[2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]"},
		{nil, "", ""},
	} {
		v4, v6 := ipRanges(tt.in)
		if str(v4) != tt.v4 || str(v6) != tt.v6 {
			t.Errorf("ipRanges(%v) = %s / %s, want %s / %s", tt.in, str(v4), str(v6), tt.v4, tt.v6)
		}
	}
}
