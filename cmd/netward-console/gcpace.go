package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// The console's collector pacing when the operator sets no GOGC. Under
// fleet ingest the collector took ~11 % of the console's CPU at the
// runtime's default of 100 (a collection whenever the heap doubles what
// is live): a chunk's decoding and aggregation allocate a lot that dies
// at its commit, while what stays live is small (peak RSS 101–123 MB in
// the 15-s ingest runs, 304 MB with 2,000 held polls over 10 minutes). So
// while the live heap is small the heap may grow to gcGoal before a
// collection (GOGC up to gcMaxPercent: a quarter as many collections for
// the same garbage), within the 1 GiB RSS the console is sized for; a
// live heap of more than half of gcGoal (tens of thousands of held polls:
// ~80 KB each) keeps the runtime's default, so memory never grows past
// what it did before. A fixed GOGC or memory limit cannot do both: 300
// would let 1.5 GB of held polls grow to 6 GB, a limit below the live
// heap makes the runtime collect back to back. docs/scale.md "Fifth
// round" has the A/B.
const (
	gcGoal       = 768 << 20
	gcMaxPercent = 300
	gcRepace     = 5 * time.Second
)

// gcPercentFor is the GOGC that lets a heap with live bytes live grow to
// goal: between the runtime's default (100) and gcMaxPercent. The runtime's
// goal is live + (live + scan) × GOGC/100, where scan is the goroutine
// stacks and globals it also scans (runtime/mgcpacer.go): held polls'
// stacks count, so they are not multiplied past the goal (review).
func gcPercentFor(live, scan, goal uint64) int {
	if live >= goal {
		return 100
	}
	p := int((goal - live) * 100 / max(1, live+scan))
	return min(gcMaxPercent, max(100, p/50*50)) // steps of 50: rare changes
}

// paceGC repaces the collector every gcRepace from the live heap of the
// last collection until ctx ends, unless the operator's GOGC or GOMEMLIMIT
// says otherwise (they win, GOGC=off included). Under a cgroup memory
// limit (a container) the goal is at most half of it.
func paceGC(ctx context.Context, log *slog.Logger) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" { // the runtime reads an empty GOGC as 100
		return
	}
	goal := uint64(gcGoal)
	if lim := cgroupMemoryMax(); lim > 0 {
		goal = min(goal, lim/2)
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	pace := func(was int) int {
		metrics.Read(sample)
		live := sample[0].Value.Uint64()
		p := gcPercentFor(live, sample[1].Value.Uint64()+sample[2].Value.Uint64(), goal)
		if p != was {
			debug.SetGCPercent(p)
			log.Debug("garbage collector paced", "gogc", p, "liveMiB", live>>20)
		}
		return p
	}
	was := pace(100)
	go func() {
		t := time.NewTicker(gcRepace)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				was = pace(was)
			}
		}
	}()
}

// cgroupMemoryMax is the cgroup v2 memory limit of this process's cgroup
// (a container's), 0 when there is none or it cannot be read (no cgroup v2,
// another OS).
func cgroupMemoryMax() uint64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil { // "max": no limit
		return 0
	}
	return n
}
