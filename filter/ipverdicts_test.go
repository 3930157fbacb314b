package filter

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func rangesString(f FamilyRanges) string {
	var b strings.Builder
	for _, r := range append(append([]AddrRange(nil), f.V4...), f.V6...) {
		fmt.Fprintf(&b, "[%s-%s]", r.First, r.Last)
	}
	return b.String()
}

func TestPrefixRanges(t *testing.T) {
	pf := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, tt := range []struct {
		in   []netip.Prefix
		want string
	}{
		{pf("203.0.113.7/32"), "[203.0.113.7-203.0.113.7]"},
		// Nested, overlapping and adjacent prefixes merge; order does not matter.
		{pf("198.51.100.0/24", "198.51.100.128/25", "198.51.101.0/24", "192.0.2.0/25", "192.0.2.200/32"),
			"[192.0.2.0-192.0.2.127][192.0.2.200-192.0.2.200][198.51.100.0-198.51.101.255]"},
		// The whole space, and the top address (no end element follows it).
		{pf("0.0.0.0/0", "10.0.0.0/8"), "[0.0.0.0-255.255.255.255]"},
		{pf("255.255.255.255/32"), "[255.255.255.255-255.255.255.255]"},
		// IPv4-mapped counts as IPv4; IPv6 apart; unmasked bits are masked.
		{pf("::ffff:192.0.2.1/128", "2001:db8::1/32", "2001:db8:1::/48"),
			"[192.0.2.1-192.0.2.1][2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]"},
		{nil, ""},
	} {
		if got := rangesString(PrefixRanges(tt.in)); got != tt.want {
			t.Errorf("PrefixRanges(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestIPVerdicts: the kernel's view of IP indicators follows the longest
// prefix (CONTRACT §1): more specific Allowed and Audit prefixes are cut
// out of a Block; a Warn drops non-TCP until bypassed and is inspected on
// TCP; modes and convertWarnToBlock apply through Decide.
func TestIPVerdicts(t *testing.T) {
	p, err := Compile([]Rule{
		{Value: "198.51.100.0/24", Type: TypeIP, Action: Block, ID: "b"},
		{Value: "198.51.100.7", Type: TypeIP, Action: Allowed, ID: "a"},
		{Value: "198.51.100.64/26", Type: TypeIP, Action: Audit, ID: "au"},
		{Value: "198.51.100.70", Type: TypeIP, Action: Block, ID: "b2"}, // inside the Audit /26
		{Value: "203.0.113.0/25", Type: TypeIP, Action: Warn, ID: "w"},
		{Value: "203.0.113.128/25", Type: TypeIP, Action: Block, ID: "b3"}, // adjacent to the Warn
		{Value: "2001:db8::/32", Type: TypeIP, Action: Block, ID: "b6"},
		{Value: "2001:db8:1::/48", Type: TypeIP, Action: Warn, ID: "w6"},
		{Value: "192.0.2.0/24", Type: TypeIP, Action: Allowed, ID: "a2"},
		{Value: "example.com", Type: TypeDomain, Action: Block, ID: "d"},
	})
	if err != nil {
		t.Fatal(err)
	}
	none := func(Match) (time.Time, bool) { return time.Time{}, false }
	tests := []struct {
		name                 string
		s                    Settings
		bypass               BypassFunc
		block, warn, inspect string
	}{
		{"block mode", Settings{}, none,
			"[198.51.100.0-198.51.100.6][198.51.100.8-198.51.100.63][198.51.100.70-198.51.100.70][198.51.100.128-198.51.100.255][203.0.113.128-203.0.113.255][2001:db8::-2001:db8:0:ffff:ffff:ffff:ffff:ffff][2001:db8:2::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]",
			"[203.0.113.0-203.0.113.127][2001:db8:1::-2001:db8:1:ffff:ffff:ffff:ffff:ffff]",
			"[198.51.100.64-198.51.100.69][198.51.100.71-198.51.100.127][203.0.113.0-203.0.113.127][2001:db8:1::-2001:db8:1:ffff:ffff:ffff:ffff:ffff]"},
		{"a bypass of the v4 Warn opens it, TCP still inspected (recorded)", Settings{},
			func(m Match) (time.Time, bool) { return time.Now().Add(time.Hour), m.Rule.ID == "w" },
			"[198.51.100.0-198.51.100.6][198.51.100.8-198.51.100.63][198.51.100.70-198.51.100.70][198.51.100.128-198.51.100.255][203.0.113.128-203.0.113.255][2001:db8::-2001:db8:0:ffff:ffff:ffff:ffff:ffff][2001:db8:2::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]",
			"[2001:db8:1::-2001:db8:1:ffff:ffff:ffff:ffff:ffff]",
			"[198.51.100.64-198.51.100.69][198.51.100.71-198.51.100.127][203.0.113.0-203.0.113.127][2001:db8:1::-2001:db8:1:ffff:ffff:ffff:ffff:ffff]"},
		{"convertWarnToBlock: Warns join the Blocks (adjacent ranges merge)", Settings{ConvertWarnToBlock: true},
			func(Match) (time.Time, bool) { return time.Now().Add(time.Hour), true },
			"[198.51.100.0-198.51.100.6][198.51.100.8-198.51.100.63][198.51.100.70-198.51.100.70][198.51.100.128-198.51.100.255][203.0.113.0-203.0.113.255][2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]",
			"", "[198.51.100.64-198.51.100.69][198.51.100.71-198.51.100.127]"},
		{"audit mode: nothing refused, would-be refusals inspected", Settings{Mode: ModeAudit}, none, "", "",
			"[198.51.100.0-198.51.100.6][198.51.100.8-198.51.100.255][203.0.113.0-203.0.113.255][2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]"},
		{"off mode", Settings{Mode: ModeOff}, none, "", "",
			"[198.51.100.0-198.51.100.6][198.51.100.8-198.51.100.255][203.0.113.0-203.0.113.255][2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := p.IPVerdicts(tc.s, tc.bypass)
			for _, c := range []struct {
				what      string
				got, want string
			}{{"block", rangesString(v.Block), tc.block}, {"warn", rangesString(v.Warn), tc.warn}, {"inspect", rangesString(v.Inspect), tc.inspect}} {
				if c.got != c.want {
					t.Errorf("%s =\n  %s\nwant\n  %s", c.what, c.got, c.want)
				}
			}
			// Every address of every range decides as its set says.
			for _, r := range v.Block.V4 {
				for _, a := range []netip.Addr{r.First, r.Last} {
					if d := Decide(p.MatchAddr(a), tc.s, tc.bypass); d.Verdict != VerdictBlock {
						t.Errorf("%s in the block set decides %v", a, d.Verdict)
					}
				}
			}
		})
	}
	// The whole space blocked (allowDefaultRoute) but one address allowed.
	p2, _ := Compile([]Rule{{Value: "0.0.0.0/0", Type: TypeIP, Action: Block}, {Value: "192.0.2.1", Type: TypeIP, Action: Allowed}})
	if got := rangesString(p2.IPVerdicts(Settings{}, nil).Block); got != "[0.0.0.0-192.0.2.0][192.0.2.2-255.255.255.255]" {
		t.Errorf("0/0 minus one = %s", got)
	}
	if v := (&Policy{}).IPVerdicts(Settings{}, nil); v.Block.Len()+v.Warn.Len()+v.Inspect.Len() != 0 {
		t.Errorf("empty policy: %+v", v)
	}
}
