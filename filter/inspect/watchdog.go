package inspect

import (
	"context"
	"sync"
	"time"
)

// Watchdog enforces a per-packet deadline on decisions without a goroutine
// per packet: decisions run inline on the queue reader (the policy lookup is
// in memory and lock-free, the parsers are bounded), and one watchdog
// goroutine answers for a packet whose decision overruns — a stalled
// machine, or a bug — with the documented default verdict, so that packet
// is never held. Packets behind it wait in the kernel queue, which accepts on its
// own once full (fail-open flag). A goroutine per packet cost a cross-thread
// wake-up each and doubled the queue's added latency on a busy host.
type Watchdog struct {
	deadline time.Duration

	mu       sync.Mutex
	id       uint32
	start    time.Time
	active   bool // a decision is running for id
	answered bool // the watchdog gave id its verdict
}

// NewWatchdog returns a watchdog for decisions that must end within
// deadline.
func NewWatchdog(deadline time.Duration) *Watchdog { return &Watchdog{deadline: deadline} }

// Begin marks the start of packet id's decision.
func (w *Watchdog) Begin(id uint32) {
	w.mu.Lock()
	w.id, w.start, w.active, w.answered = id, time.Now(), true, false
	w.mu.Unlock()
}

// End marks the end of the decision and reports whether the watchdog has
// already answered for the packet (then the caller must not).
func (w *Watchdog) End() (answered bool) {
	w.mu.Lock()
	answered = w.answered
	w.active = false
	w.mu.Unlock()
	return answered
}

// overdue returns, once, the packet whose decision has run past the deadline.
func (w *Watchdog) overdue() (uint32, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.active || w.answered || time.Since(w.start) <= w.deadline {
		return 0, false
	}
	w.answered = true
	return w.id, true
}

// Run checks every quarter deadline until ctx ends and calls answer for
// each overdue packet, once.
func (w *Watchdog) Run(ctx context.Context, answer func(id uint32)) {
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
