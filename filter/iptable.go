package filter

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// ipTable answers longest-prefix queries. For every prefix length in use it
// keeps the masked prefixes in one sorted array; a lookup masks the address
// for each length, longest first, and binary-searches. Feeds use few distinct
// lengths (mostly /32 and /128), so this is a handful of searches over flat,
// pointer-free arrays.
type ipTable struct {
	v4 []ipLevel[uint32]
	v6 []ipLevel[u128]
}

type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a u128) and(b u128) u128 { return u128{a.hi & b.hi, a.lo & b.lo} }

type ipLevel[K comparable] struct {
	bits int
	mask K
	keys []K      // sorted, unique
	rule []uint32 // rule index for keys[i]
}

func mask4(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

func mask6(bits int) u128 {
	switch {
	case bits == 0:
		return u128{}
	case bits <= 64:
		return u128{^uint64(0) << (64 - bits), 0}
	default:
		return u128{^uint64(0), ^uint64(0) << (128 - bits)}
	}
}

func key4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func key6(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// buildIPTable indexes the IP rules (prefixes already canonical: masked,
// IPv4-mapped stored as IPv4). Of several rules with the same prefix the
// larger action wins, and the first of equal ones.
func buildIPTable(rules []Rule, idx []uint32, pfx []netip.Prefix) ipTable {
	type entry struct {
		p    netip.Prefix
		rule uint32
	}
	es := make([]entry, len(idx))
	for i := range idx {
		es[i] = entry{pfx[i], idx[i]}
	}
	// Longest first; within a prefix, the winning rule first.
	slices.SortStableFunc(es, func(a, b entry) int {
		if a.p.Addr().Is4() != b.p.Addr().Is4() {
			if a.p.Addr().Is4() {
				return -1
			}
			return 1
		}
		if a.p.Bits() != b.p.Bits() {
			return b.p.Bits() - a.p.Bits()
		}
		if c := a.p.Addr().Compare(b.p.Addr()); c != 0 {
			return c
		}
		return int(rules[b.rule].Action) - int(rules[a.rule].Action)
	})
	var t ipTable
	for i, e := range es {
		if i > 0 && es[i-1].p == e.p {
			continue // a duplicate that lost the tie
		}
		bits := e.p.Bits()
		if e.p.Addr().Is4() {
			if n := len(t.v4); n == 0 || t.v4[n-1].bits != bits {
				t.v4 = append(t.v4, ipLevel[uint32]{bits: bits, mask: mask4(bits)})
			}
			l := &t.v4[len(t.v4)-1]
			l.keys = append(l.keys, key4(e.p.Addr()))
			l.rule = append(l.rule, e.rule)
		} else {
			if n := len(t.v6); n == 0 || t.v6[n-1].bits != bits {
				t.v6 = append(t.v6, ipLevel[u128]{bits: bits, mask: mask6(bits)})
			}
			l := &t.v6[len(t.v6)-1]
			l.keys = append(l.keys, key6(e.p.Addr()))
			l.rule = append(l.rule, e.rule)
		}
	}
	for i := range t.v4 {
		t.v4[i].keys, t.v4[i].rule = slices.Clip(t.v4[i].keys), slices.Clip(t.v4[i].rule)
	}
	for i := range t.v6 {
		t.v6[i].keys, t.v6[i].rule = slices.Clip(t.v6[i].keys), slices.Clip(t.v6[i].rule)
	}
	return t
}

// lookup returns the index of the longest-prefix rule for a, or -1. a must be
// unmapped and without a zone.
func (t *ipTable) lookup(a netip.Addr) int {
	if a.Is4() {
		k := key4(a)
		for i := range t.v4 {
			l := &t.v4[i]
			x := k & l.mask
			lo, hi := 0, len(l.keys)
			for lo < hi {
				m := int(uint(lo+hi) >> 1)
				if l.keys[m] < x {
					lo = m + 1
				} else {
					hi = m
				}
			}
			if lo < len(l.keys) && l.keys[lo] == x {
				return int(l.rule[lo])
			}
		}
		return -1
	}
	if !a.Is6() {
		return -1
	}
	k := key6(a)
	for i := range t.v6 {
		l := &t.v6[i]
		x := k.and(l.mask)
		lo, hi := 0, len(l.keys)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if l.keys[m].less(x) {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if lo < len(l.keys) && l.keys[lo] == x {
			return int(l.rule[lo])
		}
	}
	return -1
}
