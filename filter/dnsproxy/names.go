package dnsproxy

import (
	"net/netip"
	"sync"
	"time"
)

// NameMap remembers which name each address was resolved for, so telemetry
// (conntrack flows) and inspection can name a connection made to a bare IP.
// It is bounded: past Max entries the oldest insertion is evicted. It
// implements telemetry.NameLookup and is safe for concurrent use.
type NameMap struct {
	mu   sync.RWMutex
	max  int
	now  func() time.Time
	m    map[netip.Addr]nameEntry
	ring []ringSlot // insertion order, for eviction
	head int
	seq  uint64
}

type nameEntry struct {
	name    string
	expires time.Time
	seq     uint64
}

type ringSlot struct {
	addr netip.Addr
	seq  uint64
}

// MinNameTTL is the shortest time a learned name is kept: connections often
// start after the DNS TTL ran out (browsers keep their own cache), and the
// flow source names them when it sees them.
const MinNameTTL = 10 * time.Minute

// DefaultNameMapSize bounds the IP→name map when the caller passes 0.
const DefaultNameMapSize = 65536

// NewNameMap returns an empty map holding at most max addresses (0 →
// DefaultNameMapSize). now may be nil (time.Now).
func NewNameMap(max int, now func() time.Time) *NameMap {
	if max <= 0 {
		max = DefaultNameMapSize
	}
	if now == nil {
		now = time.Now
	}
	// The ring grows with the map up to max (an idle agent holds few
	// names; 2 MiB preallocated was most of what it did not need).
	return &NameMap{max: max, now: now, m: make(map[netip.Addr]nameEntry)}
}

// Add records that addr was the answer for name, valid for ttl (at least
// MinNameTTL).
func (n *NameMap) Add(addr netip.Addr, name string, ttl time.Duration) {
	addr = addr.Unmap()
	exp := n.now().Add(max(ttl, MinNameTTL))
	n.mu.Lock()
	defer n.mu.Unlock()
	if e, ok := n.m[addr]; ok {
		// Refresh in place; its ring slot stays where it is.
		e.name, e.expires = name, exp
		n.m[addr] = e
		return
	}
	n.seq++
	n.m[addr] = nameEntry{name: name, expires: exp, seq: n.seq}
	if len(n.ring) < n.max {
		n.ring = append(n.ring, ringSlot{addr, n.seq})
		return
	}
	// Evict whatever sits in the next ring slot (if it is still that entry).
	old := n.ring[n.head]
	if e, ok := n.m[old.addr]; ok && e.seq == old.seq && old.addr != addr {
		delete(n.m, old.addr)
	}
	n.ring[n.head] = ringSlot{addr, n.seq}
	n.head = (n.head + 1) % n.max
}

// Lookup returns the name addr was last resolved for, if still valid.
func (n *NameMap) Lookup(addr netip.Addr) (string, bool) {
	addr = addr.Unmap()
	n.mu.RLock()
	e, ok := n.m[addr]
	n.mu.RUnlock()
	if !ok || !n.now().Before(e.expires) {
		return "", false
	}
	return e.name, true
}

// Len is the number of addresses held (expired ones included until evicted).
func (n *NameMap) Len() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.m)
}
