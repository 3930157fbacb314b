package filter

import (
	"math/rand/v2"
	"slices"
)

// The domain-suffix trie.
//
// A name is looked up label by label from the right ("com", then "example",
// then "www"), and the walk stops at the first label that has no node: most
// queries are not in any list and end after one or two probes, where a map of
// whole names has to hash and probe every suffix.
//
// Layout. Every node lives in one flat []slot of 12-byte, pointer-free
// entries (the GC never scans it). Nodes of the same depth form one region of
// that slice, an open-addressing table keyed by (parent node, label). A
// region is sorted by the key's 32-bit fingerprint and a key's home position
// is its fingerprint scaled to the region size, so a probe starts at the home
// and reads forward only while fingerprints are smaller: the entries it needs
// are almost always in the one cache line it loaded. The depth-1 region (the
// TLDs) is a few kilobytes and stays in cache; the regions below are where the
// cache misses are, and a lookup takes about one per label it matched.
//
// A node's id is its index in slots; a child stores its parent's id, so no
// node holds pointers to its children and nothing is chased.
//
// Labels are not stored at all. Every node records a representative: the index
// of a rule (or URL host) whose canonical name ends with the node's suffix.
// The walk compares fingerprints only; when it ends, the deepest node reached
// is checked once against its representative's name (for a miss that is the
// hot TLD node). If that check fails, a fingerprint collision led the walk
// astray, and the lookup is redone checking every candidate exactly
// (exactWalk). Answers are therefore exact; the fingerprints only make them
// fast.

// slot is one trie node.
type slot struct {
	fp     uint32 // fingerprint of (parent, label); emptyFP marks a free slot
	parent uint32 // id of the parent node, rootID at depth 1
	val    uint32 // rep<<tagBits | tag; tag != 0 means the node carries a value
}

const (
	emptyFP = ^uint32(0) // larger than every real fingerprint: ends every probe
	rootID  = ^uint32(0) // the parent of depth-1 nodes; never a slot index

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
)

// level is one depth's region of slots: homes are base..base+size-1, and the
// region has at least one empty slot after its last entry.
type level struct {
	base uint32
	size uint32
}

// trie is an immutable suffix trie. names(rep) returns the canonical name a
// representative stands for.
type trie struct {
	slots  []slot
	levels []level
	seed   uint64
	mask   uint32 // fingerprint mask; all ones except in collision tests

	rules []Rule   // representatives are rule indexes (domain trie) ...
	hosts []string // ... or indexes into hosts (URL trie) when non-nil
}

func (t *trie) name(rep uint32) string {
	if t.hosts != nil {
		return t.hosts[rep]
	}
	return t.rules[rep].Value
}

// FNV-1a constants (64-bit).
const (
	fnvOffset = 0xcbf29ce484222325
	fnvPrime  = 0x100000001b3
)

// labelHash hashes the label s[start:end] from its last byte to its first,
// ASCII-lowercased, exactly as the lookup loop in matchName does.
func labelHash(s string, start, end int) uint64 {
	h := uint64(fnvOffset)
	for i := end - 1; i >= start; i-- {
		c := s[i]
		if c-'A' < 26 {
			c += 'a' - 'A'
		}
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

// fingerprint mixes a label hash with the parent id (murmur3 finaliser).
func (t *trie) fingerprint(lh uint64, parent uint32) uint32 {
	x := lh ^ t.seed ^ uint64(parent)*0x9e3779b97f4a7c15
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	fp := uint32(x>>32) & t.mask
	if fp == emptyFP {
		fp--
	}
	return fp
}

// find returns the first node at depth index d with fingerprint fp and the
// given parent, starting from the key's home.
func (t *trie) find(d int, fp, parent uint32) (uint32, bool) {
	lv := t.levels[d]
	i := lv.base + uint32(uint64(fp)*uint64(lv.size)>>32)
	for {
		s := &t.slots[i]
		if s.fp >= fp {
			if s.fp > fp {
				return 0, false
			}
			if s.parent == parent {
				return i, true
			}
		}
		i++
	}
}

// suffixIs reports whether node id stands for exactly the (not yet
// lowercased) suffix q: its representative's name ends in q on a label boundary.
func (t *trie) suffixIs(id uint32, q string) bool {
	v := t.name(t.slots[id].val >> tagBits)
	off := len(v) - len(q)
	if off < 0 || (off > 0 && v[off-1] != '.') {
		return false
	}
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c-'A' < 26 {
			c += 'a' - 'A'
		}
		if v[off+i] != c {
			return false
		}
	}
	return true
}

// lookup returns the val of the deepest node on name's path that carries a
// value, or 0. name is ASCII without a trailing dot; case does not matter.
func (t *trie) lookup(name string) uint32 {
	parent, best := rootID, uint32(0)
	end, start := len(name), len(name)
	for d := 0; d < len(t.levels) && end > 0; d++ {
		h := uint64(fnvOffset)
		i := end - 1
		for ; i >= 0; i-- {
			c := name[i]
			if c == '.' {
				break
			}
			if c-'A' < 26 {
				c += 'a' - 'A'
			}
			h = (h ^ uint64(c)) * fnvPrime
		}
		if i+1 == end { // empty label: no node has one
			break
		}
		id, ok := t.find(d, t.fingerprint(h, parent), parent)
		if !ok {
			break
		}
		if v := t.slots[id].val; v&tagMask != 0 {
			best = v
		}
		parent, start, end = id, i+1, i
	}
	if parent == rootID || t.suffixIs(parent, name[start:]) {
		return best
	}
	var path [maxDepth]uint32
	for n := t.exactWalk(name, &path) - 1; n >= 0; n-- {
		if v := t.slots[path[n]].val; v&tagMask != 0 {
			return v
		}
	}
	return 0
}

// walk stores the nodes on name's path, depth 1 first, in path and returns
// how many there are. Like lookup it compares fingerprints and then checks the
// deepest node, falling back to exactWalk.
func (t *trie) walk(name string, path *[maxDepth]uint32) int {
	parent, n := rootID, 0
	end, start := len(name), len(name)
	for d := 0; d < len(t.levels) && end > 0; d++ {
		i := end - 1
		for i >= 0 && name[i] != '.' {
			i--
		}
		if i+1 == end {
			break
		}
		id, ok := t.find(d, t.fingerprint(labelHash(name, i+1, end), parent), parent)
		if !ok {
			break
		}
		path[n] = id
		n++
		parent, start, end = id, i+1, i
	}
	if parent == rootID || t.suffixIs(parent, name[start:]) {
		return n
	}
	return t.exactWalk(name, path)
}

// exactWalk is walk with every fingerprint match checked against its
// representative's name. It is the slow path after a fingerprint collision.
func (t *trie) exactWalk(name string, path *[maxDepth]uint32) int {
	parent, n := rootID, 0
	end := len(name)
	for d := 0; d < len(t.levels) && end > 0; d++ {
		i := end - 1
		for i >= 0 && name[i] != '.' {
			i--
		}
		if i+1 == end {
			break
		}
		fp := t.fingerprint(labelHash(name, i+1, end), parent)
		lv := t.levels[d]
		found := false
		for j := lv.base + uint32(uint64(fp)*uint64(lv.size)>>32); t.slots[j].fp <= fp; j++ {
			// The parent is exact (induction), so the candidate is the node
			// iff its suffix is name[i+1:].
			if s := &t.slots[j]; s.fp == fp && s.parent == parent && t.suffixIs(j, name[i+1:]) {
				parent, found = j, true
				break
			}
		}
		if !found {
			break
		}
		path[n] = parent
		n++
		end = i
	}
	return n
}

// trieBuilder collects nodes in insertion order and then lays them out.
type trieBuilder struct {
	nodes []buildNode
	table []uint32 // open addressing over nodes: id+1, 0 = free
	name  func(uint32) string
}

type buildNode struct {
	lh     uint64 // labelHash of the node's label
	parent uint32 // builder id of the parent, rootID at depth 1
	rep    uint32
	off    uint8 // the node's suffix is name(rep)[off:]
	depth  uint8 // 0 for depth 1
	tag    uint8
}

func newTrieBuilder(sizeHint int, name func(uint32) string) *trieBuilder {
	n := 1024
	for n < sizeHint*2 {
		n *= 2
	}
	return &trieBuilder{table: make([]uint32, n), nodes: make([]buildNode, 0, sizeHint), name: name}
}

func buildHash(lh uint64, parent uint32) uint64 {
	x := lh ^ uint64(parent)*0x9e3779b97f4a7c15
	x ^= x >> 29
	x *= 0xbf58476d1ce4e5b9
	return x ^ x>>32
}

// insert adds the canonical name s for representative rep. A node's value is
// replaced only by a larger tag, so on a tie the first rule wins and the
// larger action wins (CONTRACT §1: Allowed > Warn > Block > Audit).
func (b *trieBuilder) insert(s string, rep uint32, tag uint8) {
	parent := rootID
	end := len(s)
	for depth := 0; end > 0; depth++ {
		start := end - 1
		for start > 0 && s[start-1] != '.' {
			start--
		}
		lh := labelHash(s, start, end)
		id := b.findOrAdd(lh, parent, s, start, rep, depth)
		if start == 0 {
			if n := &b.nodes[id]; tag > n.tag {
				n.tag, n.rep, n.off = tag, rep, 0
			}
			return
		}
		parent, end = id, start-1
	}
}

func (b *trieBuilder) findOrAdd(lh uint64, parent uint32, s string, start int, rep uint32, depth int) uint32 {
	if len(b.nodes)*2 >= len(b.table) {
		b.grow()
	}
	mask := uint64(len(b.table) - 1)
	suffix := s[start:]
	for i := buildHash(lh, parent) & mask; ; i = (i + 1) & mask {
		e := b.table[i]
		if e == 0 {
			b.nodes = append(b.nodes, buildNode{lh: lh, parent: parent, rep: rep, off: uint8(start), depth: uint8(depth)})
			id := uint32(len(b.nodes) - 1)
			b.table[i] = id + 1
			return id
		}
		n := &b.nodes[e-1]
		if n.lh == lh && n.parent == parent && b.name(n.rep)[n.off:] == suffix {
			return e - 1
		}
	}
}

func (b *trieBuilder) grow() {
	t := make([]uint32, len(b.table)*2)
	mask := uint64(len(t) - 1)
	for id := range b.nodes {
		n := &b.nodes[id]
		i := buildHash(n.lh, n.parent) & mask
		for t[i] != 0 {
			i = (i + 1) & mask
		}
		t[i] = uint32(id) + 1
	}
	b.table = t
}

// build lays the nodes out level by level. fpMask is all ones except in tests
// that force fingerprint collisions.
func (b *trieBuilder) build(fpMask uint32) trie {
	t := trie{seed: rand.Uint64(), mask: fpMask}
	if len(b.nodes) == 0 {
		return t
	}
	b.table = nil
	// Order node ids by depth; ids are assigned parents first, so every
	// parent is placed before its children.
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
	fps := make([]uint32, len(b.nodes))
	t.levels = make([]level, maxD+1)
	var keys []uint64
	base := 0
	for d := 0; d <= maxD; d++ {
		ids := order[counts[d]:counts[d+1]]
		keys = keys[:0]
		for k, id := range ids {
			n := &b.nodes[id]
			p := rootID
			if n.parent != rootID {
				p = final[n.parent]
			}
			fp := t.fingerprint(n.lh, p)
			fps[id] = fp
			keys = append(keys, uint64(fp)<<32|uint64(k))
		}
		slices.Sort(keys)
		size := len(ids)*100/loadPct + 1
		pos := -1
		for _, key := range keys {
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
		p := rootID
		if n.parent != rootID {
			p = final[n.parent]
		}
		t.slots[final[id]] = slot{fp: fps[id], parent: p, val: n.rep<<tagBits | uint32(n.tag)}
	}
	b.nodes = nil
	return t
}
