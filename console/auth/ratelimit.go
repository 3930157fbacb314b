package auth

import (
	"net/netip"
	"sync"
	"time"
)

// limiter is a set of token buckets by key (a client, an account): Burst
// tokens, refilled at one per Every. An attempt takes its token *before*
// the password is checked (take, one critical section), so concurrent
// requests cannot all pass the check before any failure is recorded; a
// successful attempt gives its token back (give), so only failures count.
type limiter struct {
	mu      sync.Mutex
	burst   float64
	every   time.Duration
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the limiter's memory under a spray from many
// addresses; full buckets are dropped first.
const maxBuckets = 100000

func newLimiter(burst int, every time.Duration) *limiter {
	return &limiter{burst: float64(burst), every: every, buckets: map[string]*bucket{}}
}

func (l *limiter) refill(b *bucket, now time.Time) {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(l.burst, b.tokens+float64(el)/float64(l.every))
		b.at = now
	}
}

// take takes one token from key's bucket, or reports how long until one is
// there (0: taken).
func (l *limiter) take(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			for k, ob := range l.buckets {
				if l.refill(ob, now); ob.tokens >= l.burst {
					delete(l.buckets, k)
				}
			}
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(l.every))
}

// give returns a token taken for an attempt that succeeded.
func (l *limiter) give(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[key]; ok {
		b.tokens = min(l.burst, b.tokens+1)
	}
}

// clientKey is the unit a client is limited by: its IPv4 address, or the
// /64 of an IPv6 address (one host commonly holds a whole /64, so limiting
// single IPv6 addresses would limit nothing).
func clientKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// knownClients remembers which client signed in to which account, so the
// account-wide slow-down (that a spray from many addresses triggers) never
// holds back the clients the account is normally used from.
type knownClients struct {
	mu   sync.Mutex
	seen map[string]time.Time // account + "|" + client key → last success
}

// knownFor is how long a successful sign-in makes its client known.
const knownFor = 30 * 24 * time.Hour

func (k *knownClients) add(account, client string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.seen) >= maxBuckets {
		for key, at := range k.seen {
			if now.Sub(at) > knownFor {
				delete(k.seen, key)
			}
		}
		if len(k.seen) >= maxBuckets {
			clear(k.seen)
		}
	}
	k.seen[account+"|"+client] = now
}

func (k *knownClients) known(account, client string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	at, ok := k.seen[account+"|"+client]
	return ok && now.Sub(at) <= knownFor
}
