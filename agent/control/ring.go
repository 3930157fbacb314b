package control

import (
	"sync"
	"time"

	"github.com/netward/netward/telemetry"
)

// Ring keeps the most recent records for `netward events` and fans new ones
// out to followers. Add never blocks: it is an agent record sink, called on
// interceptor hot paths. Memory is bounded by the ring size and, per
// follower, by its channel buffer; a follower that falls behind is cut off
// and told how many events it missed.
type Ring struct {
	mu sync.Mutex
	// buf grows to size, then wraps. Its records are packed
	// (telemetry.Packed): 4,096 whole records were 2 MB of the agent's
	// heap once it had seen that many events (issue 21); packed, under 1.
	buf    []telemetry.Packed
	size   int
	next   int // index of the slot Add writes next
	full   bool
	subs   map[*Subscription]struct{}
	subBuf int
}

// Subscription is one follower of a Ring.
type Subscription struct {
	C <-chan telemetry.Record
	c chan telemetry.Record
	// Done is closed when the ring cut the follower off (too slow).
	Done    chan struct{}
	dropped int
	r       *Ring
}

// Default sizes: the ring holds about the last few minutes of a busy desktop.
const (
	DefaultRingSize    = 4096
	DefaultFollowerBuf = 1024
	maxFollowers       = 32
	// adminFollowers of them are kept for root / Administrators.
	adminFollowers = 8
)

// NewRing returns a ring holding size records (DefaultRingSize if <= 0).
func NewRing(size int) *Ring {
	if size <= 0 {
		size = DefaultRingSize
	}
	// buf grows as records come: an idle agent does not hold 4,096 empty
	// records (0.9 MiB packed).
	return &Ring{size: size, subs: map[*Subscription]struct{}{}, subBuf: DefaultFollowerBuf}
}

// Add records rec.
func (r *Ring) Add(rec telemetry.Record) {
	pk := telemetry.Pack(&rec)
	r.AddPacked(&pk)
}

// AddPacked records a packed record (it copies *pk); it always takes it.
// It is one of the agent's packed record sinks.
func (r *Ring) AddPacked(pk *telemetry.Packed) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) < r.size {
		r.buf = append(r.buf, *pk)
		r.next = len(r.buf)
	} else {
		r.buf[r.next] = *pk
		r.next++
	}
	if r.next == r.size {
		r.next, r.full = 0, true
	}
	if len(r.subs) == 0 {
		return true
	}
	rec := pk.Record()
	for s := range r.subs {
		select {
		case s.c <- rec:
		default:
			// Too slow: cut the follower off rather than block the agent or
			// drop silently. The records still queued are delivered; this
			// one is the first missed, and the handler says so.
			s.dropped = 1
			delete(r.subs, s)
			close(s.Done)
		}
	}
	return true
}

// since returns the stored records with Timestamp >= t, oldest first.
// Callers hold r.mu.
func (r *Ring) sinceLocked(t time.Time) []telemetry.Record {
	var out []telemetry.Record
	add := func(recs []telemetry.Packed) {
		for i := range recs {
			if !recs[i].Timestamp().Before(t) {
				out = append(out, recs[i].Record())
			}
		}
	}
	if r.full {
		add(r.buf[r.next:])
	}
	add(r.buf[:r.next])
	return out
}

// Since returns the stored records with Timestamp >= t, oldest first.
func (r *Ring) Since(t time.Time) []telemetry.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sinceLocked(t)
}

// ErrTooManyFollowers is returned by Follow past maxFollowers.
var errTooManyFollowers = &httpError{code: 503, msg: "too many 'netward events --follow' readers; stop one and retry"}

// Follow returns the stored records since t and a subscription to every later
// one, atomically, so a follower neither misses nor repeats a record.
func (r *Ring) Follow(t time.Time) ([]telemetry.Record, *Subscription, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.subs) >= maxFollowers {
		return nil, nil, errTooManyFollowers
	}
	c := make(chan telemetry.Record, r.subBuf)
	s := &Subscription{C: c, c: c, Done: make(chan struct{}), r: r}
	r.subs[s] = struct{}{}
	return r.sinceLocked(t), s, nil
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if _, ok := s.r.subs[s]; ok {
		delete(s.r.subs, s)
		close(s.Done)
	}
}

// Dropped is how many records the follower missed when it was cut off (the
// stream ends there, so later records are not followed at all).
func (s *Subscription) Dropped() int {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return s.dropped
}
