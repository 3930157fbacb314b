package hostnet

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestInspWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &inspWatch{deadline: 200 * time.Millisecond}
		answered := make(chan uint32, 4)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go w.run(ctx, func(id uint32) { answered <- id })

		// A decision within the deadline: the caller answers.
		w.begin(1)
		time.Sleep(150 * time.Millisecond)
		if w.end() {
			t.Fatal("packet 1 answered by the watchdog within its deadline")
		}
		// An overrunning decision: the watchdog answers once, the caller not.
		w.begin(2)
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
		if !w.end() {
			t.Fatal("end() = false after the watchdog answered; the packet would get two verdicts")
		}
		// Idle: nothing to answer.
		time.Sleep(time.Second)
		synctest.Wait()
		if len(answered) != 0 {
			t.Fatal("watchdog answered while idle")
		}
	})
}
