package agent

import (
	"io"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

// The soft limit is set only when LimitMemory was called, to what the
// runtime holds plus memHeadroom, and follows a later load.
func TestLimitMemory(t *testing.T) {
	was := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(was) })
	debug.SetMemoryLimit(math.MaxInt64)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	a := &Agent{}
	a.limitMemory(log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("without LimitMemory the limit changed to %d", got)
	}

	a.LimitMemory()
	before := heldMemory()
	a.limitMemory(log)
	after := heldMemory()
	got := debug.SetMemoryLimit(-1)
	if got < before+memHeadroom || got > after+memHeadroom {
		t.Fatalf("limit %d, want held memory (%d..%d) + %d", got, before, after, memHeadroom)
	}

	// A bigger policy: the next load raises the limit with it.
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = 1
	}
	a.limitMemory(log)
	if raised := debug.SetMemoryLimit(-1); raised < got+48<<20 {
		t.Fatalf("limit %d after 64 MiB more were held, was %d", raised, got)
	}
	runtime.KeepAlive(big)
}
