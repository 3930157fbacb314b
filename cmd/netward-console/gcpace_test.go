package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

// serve paces the collector at consoleGCPercent unless GOGC is set.
func TestPaceGC(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	t.Setenv("GOGC", "")
	paceGC(log)
	if got := debug.SetGCPercent(100); got != consoleGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, consoleGCPercent)
	}
	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50) // as the runtime read it at start
	paceGC(log)
	if got := debug.SetGCPercent(100); got != 50 {
		t.Errorf("GOGC=50: GC percent %d, want the operator's 50", got)
	}
}
