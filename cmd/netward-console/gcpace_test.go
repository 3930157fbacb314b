package main

import (
	"context"
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

// The console lets a small live heap grow towards gcGoal, never past
// gcMaxPercent, and keeps the runtime's default for a big one.
func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, gcMaxPercent}, {50 << 20, gcMaxPercent}, {192 << 20, gcMaxPercent}, {256 << 20, 200},
		{300 << 20, 150}, {384 << 20, 100}, {600 << 20, 100}, {2 << 30, 100},
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}

// serve paces the collector unless GOGC is set.
func TestPaceGC(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	t.Setenv("GOGC", "")
	paceGC(ctx, log) // a test binary's live heap is small
	if got := debug.SetGCPercent(100); got != gcMaxPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, gcMaxPercent)
	}
	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50) // as the runtime read it at start
	paceGC(ctx, log)
	if got := debug.SetGCPercent(50); got != 50 {
		t.Errorf("GOGC=50: GC percent %d, want the operator's 50", got)
	}
}
