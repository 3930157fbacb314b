package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
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
// gcGoal: between the runtime's default (100) and gcMaxPercent.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return gcMaxPercent
	}
	p := int(gcGoal*100/live) - 100
	return min(gcMaxPercent, max(100, p/50*50)) // steps of 50: rare changes
}

// paceGC repaces the collector every gcRepace from the live heap of the
// last collection until ctx ends, unless the operator's GOGC says
// otherwise (it wins, GOGC=off included).
func paceGC(ctx context.Context, log *slog.Logger) {
	if os.Getenv("GOGC") != "" { // the runtime reads an empty GOGC as 100
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	pace := func(was int) int {
		metrics.Read(sample)
		p := gcPercentFor(sample[0].Value.Uint64())
		if p != was {
			debug.SetGCPercent(p)
			log.Debug("garbage collector paced", "gogc", p, "liveMiB", sample[0].Value.Uint64()>>20)
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
