package agent

import (
	"log/slog"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync/atomic"
)

// The agent's soft memory limit (issue 21). The runtime's default pacing
// (GOGC=100) lets the heap grow to twice what is live before collecting.
// Much of the agent's live heap is the policy (the StevenBlack list: ~20 MB
// of compiled rules, names and trie), which does not change under load yet
// is doubled all the same: under a DNS flood the peak RSS was 2.5–4× the
// idle RSS. After every policy load the runtime is told to collect before
// its memory passes what the agent holds then plus a headroom: room for
// what load adds and for garbage between collections (headroom). What load adds was
// measured with dnsperf (heap profiles at the peak, before the discovery
// window held 8,192 names): up to ~17 MB in the telemetry queue (its two
// buffers of up to 16,384 records each) when cached answers of 5,000 names
// overflowed the 4,096-name deduplication window, 8–10 MB of discovery
// window, queries in flight and events. 32 MiB of headroom made the
// collector run back to back on the cached workload (2.4× the CPU per
// query); 48 MiB cost no measurable CPU and cut the peak from 145 to
// 91–100 MiB (docs/dns.md "Performance"). Once the conntrack dump no longer
// read the whole table at once and the telemetry queue was bounded at 8,192
// records (docs/dns.md "Eighth part"), 26 MiB held the collector's share in
// a full run too and brought the peak from 82.7 to 66.5 MiB (the ninth
// part). 22 MiB since the eleventh part ("peak memory margin"): the peak
// is the binary's pages plus this limit, so only a smaller limit lowers
// it; with the answers window's entries and the raw batches' call state
// reused instead of allocated again under load (a fifth of the bytes
// allocated on the forwarded workloads, a seventh on blocked and cached), the
// collector's extra cycles at 22 MiB cost no measurable CPU on the
// allowed, blocked and cached workloads (mix 0.94×, within the rounds'
// spread) and the A/B peak fell from 62.8 to 59.2 MiB (max 60.9 against
// 65.4). 20 MiB gave 57.6 MiB but 2–9 % more CPU per query. A bigger heap
// gets a quarter of itself (headroom). It is a soft
// limit: a live heap past it is never refused, the runtime then collects
// more often and caps its collector at half the CPU
// (runtime/debug.SetMemoryLimit), so a bigger policy or a heavier burst
// costs CPU, never a failure. With 1,000,000 indicators the limit follows
// the larger policy.
//
// An operator's GOMEMLIMIT wins (the agent sets nothing), and so does
// GOMEMLIMIT=off (no limit at all: the runtime's default).

// memHeadroom is the least room above the memory held after a policy load.
const memHeadroom = 22 << 20

// headroom is the room above the memory held: memHeadroom, or a quarter of
// the live heap when that is more. A fixed figure is a smaller share of a
// bigger heap: with 1,000,000 indicators (a live heap of ~150 MB) 22 MiB
// would leave the collector running as if GOGC were 15, on every burst of
// garbage, for a heap that holds still; a quarter keeps the collector's
// share of the CPU alike for every policy size (the pacing of GOGC=25 at
// worst), and 22 MiB stays the floor the StevenBlack list was measured
// with (docs/dns.md).
func headroom(live int64) int64 { return max(memHeadroom, live/4) }

// memState is the soft limit's state: on is set by LimitMemory (the
// product's `netward run`); tests leave the process's limit alone.
type memState struct {
	on    bool
	limit atomic.Int64 // the last set, for logging a change
}

// LimitMemory makes every policy load set the process's soft memory limit
// (see memHeadroom). Call it before Run, in a process that runs one agent.
func (a *Agent) LimitMemory() { a.mem.on = true }

// limitMemory sets the soft limit from the memory the runtime holds now
// (after a load and its collection).
func (a *Agent) limitMemory(log *slog.Logger) {
	if !a.mem.on {
		return
	}
	limit := heldMemory() + headroom(liveHeap())
	debug.SetMemoryLimit(limit)
	if was := a.mem.limit.Swap(limit); was == 0 || limit > was+was/4 || limit < was-was/4 {
		log.Info("soft memory limit set from the policy's size", "limitMiB", limit>>20)
	}
}

// heldMemory is what the runtime's memory limit counts: every byte it has
// mapped minus what it gave back to the OS (runtime/debug.SetMemoryLimit).
func heldMemory() int64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	rtmetrics.Read(s)
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

// liveHeap is the heap the last collection found live (after a big load,
// the forced collection of FreeOSMemory).
func liveHeap() int64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}
