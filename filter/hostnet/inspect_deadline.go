package hostnet

import (
	"context"
	"sync"
	"time"
)

// inspWatch enforces the per-packet deadline (InspectConfig.Deadline) without
// a goroutine per packet: decisions run inline on the queue reader (the
// policy lookup is in memory and lock-free, the parsers are bounded), and one
// watchdog goroutine answers for a packet whose decision overruns — a stalled
// machine, or a bug — with the documented default verdict, so that packet is
// never held. Packets behind it wait in the kernel queue, which accepts on its
// own once full (fail-open flag). A goroutine per packet cost a cross-thread
// wake-up each and doubled the queue's added latency on a busy host.
type inspWatch struct {
	deadline time.Duration

	mu       sync.Mutex
	id       uint32
	start    time.Time
	active   bool // a decision is running for id
	answered bool // the watchdog gave id its verdict
}

// begin marks the start of packet id's decision.
func (w *inspWatch) begin(id uint32) {
	w.mu.Lock()
	w.id, w.start, w.active, w.answered = id, time.Now(), true, false
	w.mu.Unlock()
}

// end marks the end of the decision and reports whether the watchdog has
// already answered for the packet (then the caller must not).
func (w *inspWatch) end() (answered bool) {
	w.mu.Lock()
	answered = w.answered
	w.active = false
	w.mu.Unlock()
	return answered
}

// overdue returns, once, the packet whose decision has run past the deadline.
func (w *inspWatch) overdue() (uint32, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.active || w.answered || time.Since(w.start) <= w.deadline {
		return 0, false
	}
	w.answered = true
	return w.id, true
}

// run checks every quarter deadline until ctx ends and calls answer for each
// overdue packet.
func (w *inspWatch) run(ctx context.Context, answer func(id uint32)) {
	t := time.NewTicker(max(w.deadline/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if id, ok := w.overdue(); ok {
				answer(id)
			}
		}
	}
}
