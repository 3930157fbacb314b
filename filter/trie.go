package filter

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"math/rand/v2"
	"slices"
	"unsafe"
)

// The domain-suffix trie.
//
// A name is looked up label by label from the right ("com", then "example",
// then "www"), and the walk stops at the first label that has no node: most
// queries are not in any list and end there, where a map of whole names has
// to hash and probe every suffix.
//
// Keys. A node is identified by the 64-bit hash of its whole suffix, chained
// label by label from the right with a random per-Compile seed. Compile
// builds the trie exactly (labels compared byte for byte) and re-seeds in the
// astronomically rare case that two suffixes of one depth share a hash, so
// every node's key is unique. A lookup compares keys only: a name that is in
// no rule matches one only if its suffix hash equals a stored one, a chance of
// about 2^-64 per probed slot that cannot be aimed at, because the seed is
// secret and new for every policy. In exchange a match needs no further
// memory access: no label bytes, no pointers.
//
// Layout. Every node lives in one flat []slot of 12-byte, pointer-free
// entries (the GC never scans it). Nodes of the same depth form one region of
// that slice, an open-addressing table sorted by the key's upper 32 bits; a
// key's home position is those bits scaled to the region size, so a probe
// starts at the home and reads forward only while the entries are smaller:
// what it needs is almost always in the one cache line it loaded. The
// depth-1 region (the TLDs) is a few kilobytes and stays in cache.
//
// Because keys depend only on the name, the home slots of all of a query's
// labels are known before any of them is read: lookup touches them all first,
// so their cache misses overlap, and then walks. Before that, a blocked Bloom
// filter of all keys (about one byte per node, so it stays in cache) ends the
// walk at the first unknown suffix without touching the table at all: that is
// how most misses end.

// slot is one trie node.
type slot struct {
	fp    uint32 // upper half of the suffix hash (masked in tests); emptyFP marks a free slot
	check uint32 // lower half of the suffix hash
	val   uint32 // rep<<tagBits | tag; tag != 0 means the node carries a value
}

const (
	emptyFP = ^uint32(0) // larger than every real fingerprint: ends every probe
	rootID  = ^uint32(0) // the parent of depth-1 nodes in the builder

	tagBits = 3
	tagMask = 1<<tagBits - 1
	// maxRep bounds the number of rules a Policy can hold (rule indexes share
	// val with the tag).
	maxRep = 1<<(32-tagBits) - 1

	// maxDepth is the most labels a name of at most 253 octets can have.
	maxDepth = (maxNameLen + 1) / 2

	// loadPct is the fill of each region. Sorted regions keep probes short
	// even this full.
	loadPct = 85

	// prefetch is how many levels lookup hashes and touches before walking.
	prefetch = 8
)

// level is one depth's region of slots: homes are base..base+size-1, and the
// region has at least one empty slot after its last entry.
type level struct {
	base uint32
	size uint32
}

// trie is an immutable suffix trie. A node's val carries a representative:
// the rule (or URL host group) index of its value.
type trie struct {
	slots  []slot
	levels []level
	bloom  []uint64 // blocked Bloom filter of all suffix hashes, len a power of two
	seed   uint64
	mask   uint32 // fingerprint mask; all ones except in collision tests
}

const (
	hashInit = 0x2545f4914f6cdd1d
	hashMul  = 0x9e3779b97f4a7c15
)

// labelHash hashes the label s[start:end], ASCII-lowercased, from its last
// byte to its first, eight bytes to a word. lookup has an inlined copy.
func labelHash(s string, start, end int) uint64 {
	lh, x := uint64(hashInit), uint64(0)
	for i := end - 1; i >= start; i-- {
		c := s[i]
		if c-'A' < 26 {
			c += 'a' - 'A'
		}
		x = x<<8 | uint64(c)
		if (end-i)&7 == 0 {
			lh, x = (lh^x)*hashMul, 0
			lh ^= lh >> 32 // a product only carries upwards; fold the top back
		}
	}
	return (lh ^ x ^ uint64(end-start)<<56) * hashMul // the length tells "a" from "\x00a"
}

// labelBack is labelHash for the label that ends before b[end], eight bytes
// at a time (SWAR, as in "Hacker's Delight" ch. 6): it returns the hash and
// the label's start, which is end for an empty label.
func labelBack(b []byte, end int) (uint64, int) {
	const (
		ones = 0x0101010101010101
		low7 = 0x7f7f7f7f7f7f7f7f
	)
	lh, n := uint64(hashInit), 0 // n: label bytes hashed so far
	for end-n >= 8 {
		w := binary.LittleEndian.Uint64(b[end-n-8:])
		// Lowercase A-Z: bytes whose low seven bits are in 'A'..'Z' and
		// whose top bit is clear get 0x20.
		h7 := w & low7
		upper := (h7 + (0x80-'A')*ones) &^ (h7 + (0x80-'Z'-1)*ones) &^ w & ^uint64(low7)
		w |= upper >> 2
		// Exact per-byte test for '.' (no borrow between bytes).
		v := w ^ '.'*ones
		if dots := ^((v&low7 + low7) | v | low7); dots != 0 {
			k := (63 - bits.LeadingZeros64(dots)) >> 3 // the last dot in w
			m := 7 - k                                 // label bytes after it
			x := uint64(0)
			if m > 0 {
				x = w >> (uint(k+1) * 8)
			}
			return (lh ^ x ^ uint64(n+m)<<56) * hashMul, end - n - m
		}
		lh = (lh ^ w) * hashMul
		lh ^= lh >> 32
		n += 8
	}
	x, i := uint64(0), end-n-1
	for ; i >= 0; i-- {
		c := b[i]
		if c == '.' {
			break
		}
		if c-'A' < 26 {
			c += 'a' - 'A'
		}
		x = x<<8 | uint64(c)
	}
	return (lh ^ x ^ uint64(end-1-i)<<56) * hashMul, i + 1
}

// chain extends the hash of a suffix by the hash of the label to its left.
func chain(h, lh uint64) uint64 {
	x := (h ^ lh) * hashMul
	x ^= x >> 32
	x *= 0xd6e8feb86659fd93
	return x ^ x>>32
}

// key splits a suffix hash into the sorted fingerprint and the check.
func (t *trie) key(h uint64) (fp, check uint32) {
	fp = uint32(h>>32) & t.mask
	if fp == emptyFP {
		fp--
	}
	return fp, uint32(h)
}

// bloomBits are the filter bits of suffix hash h; the word is chosen by the
// low bits.
func bloomBits(h uint64) uint64 { return 1<<(h>>40&63) | 1<<(h>>48&63) }

func (t *trie) mayHave(h uint64) bool {
	m := bloomBits(h)
	return t.bloom[uint32(h)&uint32(len(t.bloom)-1)]&m == m
}

func (t *trie) home(d int, fp uint32) uint32 {
	lv := t.levels[d]
	return lv.base + uint32(uint64(fp)*uint64(lv.size)>>32)
}

// find returns the node with key (fp, check), starting from its home i.
func (t *trie) find(i, fp, check uint32) (uint32, bool) {
	for {
		s := &t.slots[i]
		if s.fp >= fp {
			if s.fp > fp {
				return 0, false
			}
			if s.check == check {
				return i, true
			}
		}
		i++
	}
}

// lookup returns the val of the deepest node on name's path that carries a
// value, or 0. name is ASCII without a trailing dot; case does not matter.
func (t *trie) lookup(name string) uint32 {
	if len(t.levels) == 0 {
		return 0
	}
	// Pass 1: hash the labels and touch each level's home slot. The loads
	// are independent, so their cache misses overlap.
	var (
		homes  [prefetch]uint32
		fps    [prefetch]uint32
		checks [prefetch]uint32
		first  [prefetch]uint32
	)
	b := unsafe.Slice(unsafe.StringData(name), len(name)) // read only
	h, end, n := t.seed, len(name), 0
	for n < prefetch && n < len(t.levels) && end > 0 {
		lh, i := labelBack(b, end)
		if i == end { // empty label: no node has one
			end = 0
			break
		}
		h = chain(h, lh)
		if !t.mayHave(h) { // no node has this suffix, so none is deeper
			end = 0
			break
		}
		fp, check := t.key(h)
		home := t.home(n, fp)
		homes[n], fps[n], checks[n], first[n] = home, fp, check, t.slots[home].fp
		n++
		end = i - 1
	}
	// Pass 2: walk.
	best, d := uint32(0), 0
	for ; d < n; d++ {
		if first[d] > fps[d] {
			return best
		}
		id, ok := t.find(homes[d], fps[d], checks[d])
		if !ok {
			return best
		}
		if v := t.slots[id].val; v&tagMask != 0 {
			best = v
		}
	}
	// Deeper than prefetched: go on one label at a time.
	for ; d < len(t.levels) && end > 0; d++ {
		i := end - 1
		for i >= 0 && name[i] != '.' {
			i--
		}
		if i+1 == end {
			break
		}
		h = chain(h, labelHash(name, i+1, end))
		fp, check := t.key(h)
		id, ok := t.find(t.home(d, fp), fp, check)
		if !ok {
			break
		}
		if v := t.slots[id].val; v&tagMask != 0 {
			best = v
		}
		end = i
	}
	return best
}

// walk stores the nodes on name's path, depth 1 first, in path and returns
// how many there are.
func (t *trie) walk(name string, path *[maxDepth]uint32) int {
	n := 0
	h, end := t.seed, len(name)
	for d := 0; d < len(t.levels) && end > 0; d++ {
		i := end - 1
		for i >= 0 && name[i] != '.' {
			i--
		}
		if i+1 == end {
			break
		}
		h = chain(h, labelHash(name, i+1, end))
		if !t.mayHave(h) {
			break
		}
		fp, check := t.key(h)
		id, ok := t.find(t.home(d, fp), fp, check)
		if !ok {
			break
		}
		path[n] = id
		n++
		end = i
	}
	return n
}

// trieBuilder collects nodes in insertion order and then lays them out.
type trieBuilder struct {
	seed  uint64
	nodes []buildNode
	table []uint32 // open addressing over nodes: id+1, 0 = free
	name  func(uint32) string
}

type buildNode struct {
	h      uint64 // hash of the node's suffix (chain)
	parent uint32 // builder id of the parent, rootID at depth 1
	rep    uint32
	off    uint8 // the node's suffix is name(rep)[off:]
	depth  uint8 // 0 for depth 1
	tag    uint8
}

func newTrieBuilder(sizeHint int, seed uint64, name func(uint32) string) *trieBuilder {
	n := 1024
	for n < sizeHint*2 {
		n *= 2
	}
	return &trieBuilder{seed: seed, table: make([]uint32, n), nodes: make([]buildNode, 0, sizeHint), name: name}
}

// insert adds the canonical name s for representative rep. A node's value is
// replaced only by a larger tag, so on a tie the first rule wins and the
// larger action wins (CONTRACT §1: Allowed > Warn > Block > Audit).
func (b *trieBuilder) insert(s string, rep uint32, tag uint8) {
	parent, h := rootID, b.seed
	end := len(s)
	for depth := 0; end > 0; depth++ {
		start := end - 1
		for start > 0 && s[start-1] != '.' {
			start--
		}
		h = chain(h, labelHash(s, start, end))
		id := b.findOrAdd(h, parent, s, start, rep, depth)
		if start == 0 {
			if n := &b.nodes[id]; tag > n.tag {
				n.tag, n.rep, n.off = tag, rep, 0
			}
			return
		}
		parent, end = id, start-1
	}
}

func (b *trieBuilder) findOrAdd(h uint64, parent uint32, s string, start int, rep uint32, depth int) uint32 {
	if len(b.nodes)*2 >= len(b.table) {
		b.grow()
	}
	mask := uint64(len(b.table) - 1)
	suffix := s[start:]
	for i := h & mask; ; i = (i + 1) & mask {
		e := b.table[i]
		if e == 0 {
			b.nodes = append(b.nodes, buildNode{h: h, parent: parent, rep: rep, off: uint8(start), depth: uint8(depth)})
			id := uint32(len(b.nodes) - 1)
			b.table[i] = id + 1
			return id
		}
		n := &b.nodes[e-1]
		if n.h == h && n.parent == parent && b.name(n.rep)[n.off:] == suffix {
			return e - 1
		}
	}
}

func (b *trieBuilder) grow() {
	t := make([]uint32, len(b.table)*2)
	mask := uint64(len(t) - 1)
	for id := range b.nodes {
		n := &b.nodes[id]
		i := n.h & mask
		for t[i] != 0 {
			i = (i + 1) & mask
		}
		t[i] = uint32(id) + 1
	}
	b.table = t
}

// build lays the nodes out level by level. fpMask is all ones except in tests
// that force fingerprint collisions. It reports false if two nodes of one
// depth have the same suffix hash; the caller then builds again with another
// seed.
func (b *trieBuilder) build(fpMask uint32) (trie, bool) {
	t := trie{seed: b.seed, mask: fpMask}
	if len(b.nodes) == 0 {
		return t, true
	}
	b.table = nil
	// Order node ids by depth.
	var counts [maxDepth + 1]int
	maxD := 0
	for i := range b.nodes {
		d := int(b.nodes[i].depth)
		counts[d+1]++
		maxD = max(maxD, d)
	}
	for d := 1; d <= maxDepth; d++ {
		counts[d] += counts[d-1]
	}
	order := make([]uint32, len(b.nodes))
	next := counts
	for i := range b.nodes {
		d := b.nodes[i].depth
		order[next[d]] = uint32(i)
		next[d]++
	}
	final := make([]uint32, len(b.nodes)) // builder id -> slot index
	t.levels = make([]level, maxD+1)
	var keys []uint64
	base := 0
	for d := 0; d <= maxD; d++ {
		ids := order[counts[d]:counts[d+1]]
		keys = keys[:0]
		for k, id := range ids {
			fp, _ := t.key(b.nodes[id].h)
			keys = append(keys, uint64(fp)<<32|uint64(k))
		}
		slices.Sort(keys)
		size := len(ids)*100/loadPct + 1
		pos := -1
		for j, key := range keys {
			// Entries with equal fingerprints are neighbours: their checks
			// must differ (runs are one long unless a test masks fp).
			for k := j - 1; k >= 0 && keys[k]>>32 == key>>32; k-- {
				if uint32(b.nodes[ids[uint32(keys[k])]].h) == uint32(b.nodes[ids[uint32(key)]].h) {
					return trie{}, false
				}
			}
			home := int(uint64(key>>32) * uint64(size) >> 32)
			pos = max(home, pos+1)
			final[ids[uint32(key)]] = uint32(base + pos)
		}
		t.levels[d] = level{base: uint32(base), size: uint32(size)}
		base += max(size, pos+1) + 1 // + an empty slot that ends every probe
	}
	t.slots = make([]slot, base)
	for i := range t.slots {
		t.slots[i].fp = emptyFP
	}
	for id := range b.nodes {
		n := &b.nodes[id]
		fp, check := t.key(n.h)
		t.slots[final[id]] = slot{fp: fp, check: check, val: n.rep<<tagBits | uint32(n.tag)}
	}
	nw := 1
	for nw*64 < len(b.nodes)*8 {
		nw *= 2
	}
	t.bloom = make([]uint64, nw)
	for i := range b.nodes {
		h := b.nodes[i].h
		t.bloom[uint32(h)&uint32(nw-1)] |= bloomBits(h)
	}
	b.nodes = nil
	return t, true
}

// buildTrie inserts names (name(i) for i in reps, tag(i) their values) and
// builds, re-seeding after a hash collision. Two collisions in a row mean a
// broken hash, not bad luck; it gives up rather than loop.
func buildTrie(reps []uint32, name func(uint32) string, tag func(uint32) uint8, sizeHint int, fpMask uint32) (trie, error) {
	for attempt := 0; attempt < 4; attempt++ {
		b := newTrieBuilder(sizeHint, rand.Uint64(), name)
		for _, i := range reps {
			b.insert(name(i), i, tag(i))
		}
		if t, ok := b.build(fpMask); ok {
			return t, nil
		}
	}
	return trie{}, errors.New("filter: suffix hashes keep colliding; this is a bug, please report it")
}
