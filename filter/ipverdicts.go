package filter

import (
	"net/netip"
	"slices"
)

// AddrRange is a closed range of addresses of one family: what an nftables
// interval set holds.
type AddrRange struct{ First, Last netip.Addr }

// IPVerdicts are the addresses of a policy's IpAddress indicators sorted by
// what the kernel does with traffic to them, so that IP indicators apply to
// every protocol without a trip to userspace where the answer is known in
// advance. Each address gets the decision of its longest matching prefix
// (CONTRACT §1), with mode, convertWarnToBlock and bypasses applied by the
// one Decide every interceptor uses; more specific Allowed or Audit prefixes
// are therefore left out of a Block. Each list is sorted, disjoint and
// merged (adjacent ranges joined), per family in V4 and V6.
type IPVerdicts struct {
	// Block: refused on every protocol in the kernel (TCP reset, the rest
	// dropped). Decide's verdict is Block.
	Block FamilyRanges
	// Warn: a Warn without a bypass. TCP goes to the inspector (the user
	// gets the notice, and a bypass is decided per user); every other
	// protocol is dropped in the kernel until the user continues.
	Warn FamilyRanges
	// Inspect: TCP is queued from its SYN for a per-connection decision or
	// record: every range with a rule that is not Allowed and not Block —
	// Warn, bypassed Warn, Audit, and in audit or off mode the would-be
	// Blocks (recorded, not refused).
	Inspect FamilyRanges
}

// FamilyRanges are ranges split by family.
type FamilyRanges struct{ V4, V6 []AddrRange }

// Len is the number of ranges in both families.
func (f FamilyRanges) Len() int { return len(f.V4) + len(f.V6) }

// IPVerdicts computes the kernel's view of p's IpAddress indicators under
// settings s and the bypass state (a bypass by any user counts: the kernel
// cannot tell users apart on most protocols, so a continued Warn opens the
// address for the device). The address space is cut at every prefix's
// bounds; each piece takes its longest-prefix rule's decision.
func (p *Policy) IPVerdicts(s Settings, bypass BypassFunc) IPVerdicts {
	var out IPVerdicts
	for _, fam := range []struct {
		v6  bool
		dst func(*FamilyRanges) *[]AddrRange
	}{
		{false, func(f *FamilyRanges) *[]AddrRange { return &f.V4 }},
		{true, func(f *FamilyRanges) *[]AddrRange { return &f.V6 }},
	} {
		// Every point where the longest matching prefix may change: each
		// prefix's first address, and the address after its last.
		var cuts []netip.Addr
		for i := range p.rules {
			r := &p.rules[i]
			if r.Type != TypeIP {
				continue
			}
			pfx, err := netip.ParsePrefix(r.Value) // compiled values are canonical prefixes
			if err != nil || pfx.Addr().Is6() != fam.v6 {
				continue
			}
			cuts = append(cuts, pfx.Addr())
			if next := lastAddr(pfx).Next(); next.IsValid() {
				cuts = append(cuts, next)
			}
		}
		if len(cuts) == 0 {
			continue
		}
		slices.SortFunc(cuts, netip.Addr.Compare)
		cuts = slices.Compact(cuts)
		for i, first := range cuts {
			m := p.MatchAddr(first)
			if m.Rule == nil {
				continue
			}
			last := maxAddr(fam.v6)
			if i+1 < len(cuts) {
				last = cuts[i+1].Prev()
			}
			r := AddrRange{first, last}
			d := Decide(m, s, bypass)
			switch {
			case d.Verdict == VerdictBlock:
				appendRange(fam.dst(&out.Block), r)
			case d.Verdict == VerdictWarn:
				appendRange(fam.dst(&out.Warn), r)
				appendRange(fam.dst(&out.Inspect), r)
			case m.Action != Allowed:
				appendRange(fam.dst(&out.Inspect), r)
			}
		}
	}
	return out
}

// appendRange adds r, which starts after every range in *rs, joining it to
// the last one when they touch.
func appendRange(rs *[]AddrRange, r AddrRange) {
	if n := len(*rs); n > 0 {
		prev := &(*rs)[n-1]
		if next := prev.Last.Next(); next.IsValid() && next == r.First {
			prev.Last = r.Last
			return
		}
	}
	*rs = append(*rs, r)
}

// PrefixRanges turns prefixes into sorted, disjoint, non-adjacent ranges per
// family. IPv4-mapped IPv6 prefixes of /96 and longer count as IPv4, as in
// the policy (ParsePrefix); invalid prefixes are skipped.
func PrefixRanges(prefixes []netip.Prefix) FamilyRanges {
	var out FamilyRanges
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		r := AddrRange{p.Addr(), lastAddr(p)}
		if r.First.Is4() {
			out.V4 = append(out.V4, r)
		} else {
			out.V6 = append(out.V6, r)
		}
	}
	out.V4, out.V6 = mergeRanges(out.V4), mergeRanges(out.V6)
	return out
}

func mergeRanges(rs []AddrRange) []AddrRange {
	slices.SortFunc(rs, func(a, b AddrRange) int { return a.First.Compare(b.First) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			// Overlapping or adjacent (prev.Last+1 == r.First): one range.
			if next := prev.Last.Next(); r.First.Compare(prev.Last) <= 0 || (next.IsValid() && next == r.First) {
				if r.Last.Compare(prev.Last) > 0 {
					prev.Last = r.Last
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

func maxAddr(v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	return netip.AddrFrom4([4]byte{0xff, 0xff, 0xff, 0xff})
}

// Equal reports whether v and o hold the same ranges.
func (v IPVerdicts) Equal(o IPVerdicts) bool {
	return v.Block.Equal(o.Block) && v.Warn.Equal(o.Warn) && v.Inspect.Equal(o.Inspect)
}

// Equal reports whether f and o hold the same ranges.
func (f FamilyRanges) Equal(o FamilyRanges) bool {
	return slices.Equal(f.V4, o.V4) && slices.Equal(f.V6, o.V6)
}
