package hostnet

import (
	"net/netip"
	"slices"
)

// ipRange is a closed range of addresses of one family.
type ipRange struct{ first, last netip.Addr }

// ipRanges turns prefixes into sorted, disjoint, non-adjacent ranges, one
// slice per family: what an nftables interval set holds (the kernel refuses
// overlapping intervals). IPv4-mapped IPv6 prefixes of /96 and longer count
// as IPv4, as in the policy (filter.ParsePrefix); invalid prefixes are
// skipped.
func ipRanges(prefixes []netip.Prefix) (v4, v6 []ipRange) {
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		r := ipRange{p.Addr(), lastAddr(p)}
		if r.first.Is4() {
			v4 = append(v4, r)
		} else {
			v6 = append(v6, r)
		}
	}
	return mergeRanges(v4), mergeRanges(v6)
}

func mergeRanges(rs []ipRange) []ipRange {
	slices.SortFunc(rs, func(a, b ipRange) int { return a.first.Compare(b.first) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			// Overlapping or adjacent (prev.last+1 == r.first): one range.
			if next := prev.last.Next(); r.first.Compare(prev.last) <= 0 || (next.IsValid() && next == r.first) {
				if r.last.Compare(prev.last) > 0 {
					prev.last = r.last
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
