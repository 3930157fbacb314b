package dnsproxy

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cacheKey identifies an upstream answer. The DO and CD bits are part of it:
// they change what the upstream returns (RRSIGs, unvalidated data).
type cacheKey struct {
	name   string // lowercase, as on the wire (presentation form, trailing dot)
	qtype  uint16
	do, cd bool
}

// cached is one relayable upstream answer. msg has no OPT record and is never
// modified after insertion; readers copy what they hand out.
type cached struct {
	key cacheKey
	id  string // the cache map's key: key.id()
	msg *dns.Msg
	// wire is msg packed for the fast path (nil when it cannot serve it).
	wire    *wireAnswer
	stored  time.Time
	expires time.Time
	// chain is the canonical CNAME/DNAME targets of the answer in order; each
	// is decided on every hit.
	chain []string
	elem  *list.Element
	// shared is set once the entry is in the cache; until then the one
	// query that fetched it owns its records and may hand them out as is.
	shared bool
}

// cache is a bounded LRU of upstream answers. Decisions are never cached:
// only what the upstream said.
type cache struct {
	mu  sync.Mutex
	max int
	m   map[string]*cached // by cacheKey.id
	lru *list.List         // front = most recently used
}

func newCache(max int) *cache {
	if max < 0 {
		return nil
	}
	return &cache{max: max, m: make(map[string]*cached, min(max, 4096)), lru: list.New()}
}

// id is the key's string form, the cache map's key and the singleflight
// key: the name, the type, and the DO and CD bits.
func (k cacheKey) id() string {
	return string(appendID(append(make([]byte, 0, len(k.name)+3), k.name...), k.qtype, k.do, k.cd))
}

// appendID appends a cache id's suffix to b, which holds the name.
func appendID(b []byte, qtype uint16, do, cd bool) []byte {
	var f byte
	if do {
		f |= 1
	}
	if cd {
		f |= 2
	}
	return append(b, byte(qtype>>8), byte(qtype), f)
}

// get returns the live entry with the given id (see cacheKey.id).
func (c *cache) get(id string, now time.Time) *cached {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live(c.m[id], now)
}

// getBytes is get with the id in a byte slice (no allocation).
func (c *cache) getBytes(id []byte, now time.Time) *cached {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live(c.m[string(id)], now)
}

func (c *cache) live(e *cached, now time.Time) *cached {
	if e == nil {
		return nil
	}
	if !now.Before(e.expires) {
		c.lru.Remove(e.elem)
		delete(c.m, e.id)
		return nil
	}
	c.lru.MoveToFront(e.elem)
	return e
}

func (c *cache) put(e *cached) {
	if c == nil || c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[e.id]; old != nil {
		c.lru.Remove(old.elem)
		delete(c.m, e.id)
	}
	for len(c.m) >= c.max {
		back := c.lru.Back()
		old := back.Value.(*cached)
		c.lru.Remove(back)
		delete(c.m, old.id)
	}
	e.shared = true
	e.elem = c.lru.PushFront(e)
	c.m[e.id] = e
}

func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// cacheTTL is how long msg may be cached, or 0 for "do not cache".
//
// Positive answers live for the smallest TTL in the answer section.
// Negative answers (NXDOMAIN, and NODATA: NOERROR with an empty answer) live
// for min(SOA TTL, SOA MINIMUM) of the authority SOA (RFC 2308 §5); without
// a SOA they are not cached (RFC 2308 §5: "SHOULD NOT be cached"). SERVFAIL,
// REFUSED and truncated answers are not cached.
func cacheTTL(m *dns.Msg, minTTL, maxTTL, maxNeg time.Duration) time.Duration {
	if m.Truncated {
		return 0
	}
	var ttl uint32
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		ttl = ^uint32(0)
		for _, rr := range m.Answer {
			ttl = min(ttl, rr.Header().Ttl)
		}
		d := time.Duration(ttl) * time.Second
		return min(max(d, minTTL), maxTTL)
	case m.Rcode == dns.RcodeNameError || m.Rcode == dns.RcodeSuccess:
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				d := time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
				return min(max(d, minTTL), maxNeg)
			}
		}
	}
	return 0
}

// ttlAdjusted copies rrs with their TTLs reduced by the time spent in the
// cache. An RR whose own TTL ran out while the entry lives on (a MinTTL
// clamp, or a shorter TTL than the entry's) gets the entry's remaining time.
func ttlAdjusted(rrs []dns.RR, elapsed, remaining uint32) []dns.RR {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		c := dns.Copy(rr)
		h := c.Header()
		if h.Ttl > elapsed {
			h.Ttl -= elapsed
		} else {
			h.Ttl = remaining
		}
		out[i] = c
	}
	return out
}
