package agent

import (
	"runtime"
	"runtime/debug"
)

// DefaultMemoryHeadroom is what `netward run` lets the Go runtime hold above
// what it holds right after an indicator set is loaded (issue 21). Under a
// DNS flood the live heap grows by the cache, the IP→name map and the
// queries in flight; with the runtime's default pacing (GOGC=100) the heap
// then doubles that, which took the agent from 77 MB to 155 MB. A soft limit
// makes the collector run earlier instead: more often, never more than the
// runtime's own cap of half the CPU, and never below what is live (a bigger
// set raises the limit with it at its load).
const DefaultMemoryHeadroom = 20 << 20

// BudgetMemory makes the agent set the runtime's soft memory limit to
// headroom above what the runtime holds after each indicator load, unless
// the GOMEMLIMIT environment variable set one (the admin's choice wins).
// Call before Run; 0 (the default, and tests) leaves the runtime alone.
func (a *Agent) BudgetMemory(headroom int64, getenv func(string) string) {
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	a.memHeadroom = headroom
}

// applyMemoryBudget sets the soft limit after a load (see BudgetMemory).
func (a *Agent) applyMemoryBudget() {
	if a.memHeadroom <= 0 {
		return
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	held := int64(ms.Sys - ms.HeapReleased)
	debug.SetMemoryLimit(held + a.memHeadroom)
	a.log.Debug("memory budget set", "heldBytes", held, "limitBytes", held+a.memHeadroom)
}
