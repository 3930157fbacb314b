package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// consoleGCPercent is the console's GOGC when the operator sets none.
// Under fleet ingest the collector took ~11 % of the console's CPU at the
// runtime's default of 100 (heap collected whenever it doubles what is
// live): a chunk's decoding and aggregation allocate a lot that dies at
// its commit, while what stays live is small (the feed's bodies, held
// polls, the memory budget of uploads in flight: peak RSS 101–123 MB in
// the 15-s runs, 304 MB with 2,000 held polls over 10 minutes). At 300
// the heap may grow to four times what is live before a collection, a
// third as many collections for the same garbage; docs/scale.md "Fifth
// round" has the A/B. No memory limit is set: with 20,000 held polls the
// live heap alone can pass any fixed figure below a GiB, and the runtime
// would then collect back to back.
const consoleGCPercent = 300

// paceGC sets the collector's pacing for serve, unless the operator's
// GOGC says otherwise (it wins, GOGC=off included).
func paceGC(log *slog.Logger) {
	if os.Getenv("GOGC") != "" { // the runtime reads an empty GOGC as 100
		return
	}
	debug.SetGCPercent(consoleGCPercent)
	log.Debug("garbage collector paced for ingest", "gogc", consoleGCPercent)
}
