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
		live, scan uint64
		want       int
	}{
		{0, 0, gcMaxPercent}, {50 << 20, 1 << 20, gcMaxPercent}, {192 << 20, 0, gcMaxPercent}, {256 << 20, 0, 200},
		{300 << 20, 0, 150}, {384 << 20, 0, 100}, {600 << 20, 0, 100}, {2 << 30, 0, 100},
		// 20,000 held polls: their stacks count in the runtime's goal.
		{161 << 20, 160 << 20, 150},
	} {
		got := gcPercentFor(c.live, c.scan, gcGoal)
		if got != c.want {
			t.Errorf("gcPercentFor(%d MiB live, %d MiB stacks) = %d, want %d", c.live>>20, c.scan>>20, got, c.want)
		}
		// The runtime's goal with it stays within gcGoal, unless the
		// default's already passes it.
		if goal := c.live + (c.live+c.scan)*uint64(got)/100; got > 100 && goal > gcGoal {
			t.Errorf("live %d MiB, stacks %d MiB: GOGC %d lets the heap reach %d MiB", c.live>>20, c.scan>>20, got, goal>>20)
		}
	}
	if got := gcPercentFor(100<<20, 0, 256<<20); got != 150 {
		t.Errorf("a 512 MiB container (goal 256 MiB), 100 MiB live: GOGC %d, want 150", got)
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
	t.Setenv("GOMEMLIMIT", "900MiB")
	debug.SetGCPercent(100)
	paceGC(ctx, log)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOMEMLIMIT set: GC percent %d, want the runtime's 100", got)
	}
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50) // as the runtime read it at start
	paceGC(ctx, log)
	if got := debug.SetGCPercent(50); got != 50 {
		t.Errorf("GOGC=50: GC percent %d, want the operator's 50", got)
	}
}
