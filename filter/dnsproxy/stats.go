package dnsproxy

import (
	"sync/atomic"
	"time"

	"github.com/netward/netward/filter"
)

// LatencyBounds are the upper bounds of the latency histogram buckets (the
// last bucket, beyond the final bound, is +Inf). Fixed so Prometheus can
// export them as a histogram.
var LatencyBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
}

// Stats is a snapshot of the proxy's counters. `netward status` shows them
// as control.DNSStats, whose JSON names are the stable ones (docs/dns.md).
type Stats struct {
	Queries uint64
	// ByVerdict counts answered queries by verdict: allow, audit, block,
	// warn, bypassed (a CNAME target's verdict counts when it decided).
	ByVerdict map[string]uint64
	// Special counts the DoH canary and iCloud Private Relay NXDOMAINs.
	Special uint64

	CacheHits    uint64
	CacheMisses  uint64
	CacheEntries int

	UpstreamQueries uint64
	// UpstreamErrors counts failed attempts (timeouts, refused, bad replies);
	// ServFail counts queries answered SERVFAIL because every upstream failed.
	UpstreamErrors uint64
	ServFail       uint64
	// BadReplies counts upstream datagrams ignored because they did not
	// match the question and ID (spoofing attempts, late replies).
	BadReplies uint64
	// LateReplies counts upstream answers that came after their attempt
	// had ended (timed out, or failed by an ICMP error).
	LateReplies uint64
	TCPRetries  uint64

	InFlight int64
	// Refused counts queries refused because MaxInFlight was reached.
	Refused uint64
	// Rejected counts queries answered with an error for what they asked
	// (wrong class, zone transfer, malformed, not a query).
	Rejected uint64
	// Panics counts queries answered SERVFAIL because answering them
	// panicked (a bug; the panic is logged with its stack).
	Panics uint64

	// Latency is the histogram of answer times: Counts[i] is the number of
	// queries answered within LatencyBounds[i] (and above the previous
	// bound); the last count is beyond the last bound.
	LatencyCounts [len(LatencyBounds) + 1]uint64
	LatencySum    time.Duration

	Upstreams []string
}

type counters struct {
	queries, special             atomic.Uint64
	verdicts                     [5]atomic.Uint64 // indexed by filter.Verdict
	cacheHits, cacheMisses       atomic.Uint64
	upQueries, upErrors, srvFail atomic.Uint64
	badReplies, tcpRetries       atomic.Uint64
	lateReplies                  atomic.Uint64
	inFlight                     atomic.Int64
	refused, rejected, panics    atomic.Uint64
	latency                      [len(LatencyBounds) + 1]atomic.Uint64
	latencySum                   atomic.Int64
}

func (c *counters) observe(d time.Duration) {
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	c.latency[i].Add(1)
	c.latencySum.Add(int64(d))
}

func (c *counters) verdict(v filter.Verdict) {
	if int(v) < len(c.verdicts) {
		c.verdicts[v].Add(1)
	}
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Queries:         c.queries.Load(),
		ByVerdict:       map[string]uint64{},
		Special:         c.special.Load(),
		CacheHits:       c.cacheHits.Load(),
		CacheMisses:     c.cacheMisses.Load(),
		UpstreamQueries: c.upQueries.Load(),
		UpstreamErrors:  c.upErrors.Load(),
		ServFail:        c.srvFail.Load(),
		BadReplies:      c.badReplies.Load(),
		LateReplies:     c.lateReplies.Load(),
		TCPRetries:      c.tcpRetries.Load(),
		InFlight:        c.inFlight.Load(),
		Refused:         c.refused.Load(),
		Rejected:        c.rejected.Load(),
		Panics:          c.panics.Load(),
		LatencySum:      time.Duration(c.latencySum.Load()),
	}
	for v := range c.verdicts {
		s.ByVerdict[filter.Verdict(v).String()] = c.verdicts[v].Load()
	}
	for i := range c.latency {
		s.LatencyCounts[i] = c.latency[i].Load()
	}
	return s
}
