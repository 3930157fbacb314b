package agent

import (
	"log/slog"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync/atomic"
)

// The agent's soft memory limit (issue 21). The runtime's default pacing
// (GOGC=100) lets the heap grow to twice what is live before collecting.
// Most of the agent's live heap is the policy (the StevenBlack list: ~20 MB
// of compiled rules, names and trie) which does not change under load, yet
// is doubled all the same: under a DNS flood the peak was 2.5–4× the idle
// RSS (issue 21's profile: 28–30 MB live, heap goal 62–68 MB, 17 MB of
// binary pages). After every policy load the runtime is told to collect
// before its memory passes what the agent holds then plus memHeadroom: room
// for what load adds (telemetry and discovery queues, queries in flight:
// 8–10 MB measured under dnsperf) and for garbage between collections. It
// is a soft limit: a live heap past it is never refused, the runtime then
// collects more often and caps its collector at half the CPU
// (runtime/debug.SetMemoryLimit), so a bigger policy or a heavier burst
// costs CPU, never a failure. With 1,000,000 indicators the limit follows
// the larger policy.
//
// An operator's GOMEMLIMIT wins (the agent sets nothing), and so does
// GOMEMLIMIT=off (no limit at all: the runtime's default).

// memHeadroom is the room above the memory held after a policy load.
const memHeadroom = 32 << 20

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
	limit := heldMemory() + memHeadroom
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
