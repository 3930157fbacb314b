package inspect

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestWatchdog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := NewWatchdog(200 * time.Millisecond)
		answered := make(chan uint32, 4)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go w.Run(ctx, func(id uint32) { answered <- id })

		// A decision within the deadline: the caller answers.
		w.Begin(1)
		time.Sleep(150 * time.Millisecond)
		if w.End() {
			t.Fatal("packet 1 answered by the watchdog within its deadline")
		}
		// An overrunning decision: the watchdog answers once, the caller not.
		w.Begin(2)
		time.Sleep(300 * time.Millisecond)
		synctest.Wait()
		select {
		case id := <-answered:
			if id != 2 {
				t.Fatalf("watchdog answered %d, want 2", id)
			}
		default:
			t.Fatal("watchdog did not answer the overdue packet")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if len(answered) != 0 {
			t.Fatalf("watchdog answered packet 2 again")
		}
		if !w.End() {
			t.Fatal("End() = false after the watchdog answered; the packet would get two verdicts")
		}
		// Idle: nothing to answer.
		time.Sleep(time.Second)
		synctest.Wait()
		if len(answered) != 0 {
			t.Fatal("watchdog answered while idle")
		}
	})
}
