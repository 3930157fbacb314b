package telemetry

import (
	"testing"
	"testing/synctest"
	"time"
)

// WaitRoom holds a producer while the queue holds n records or more, until
// the writer takes them, the producer stops, or maxRoomWait passes; it
// never holds one when there is room (issue 21).
func TestWaitRoom(t *testing.T) {
	tests := []struct {
		name     string
		queued   int
		wantHeld bool
		release  func(p *Pipeline, stop chan struct{})
	}{
		{"room", 3, false, nil},
		{"taken by the writer", 4, true, func(p *Pipeline, _ chan struct{}) { p.takeQueue() }},
		{"producer stops", 5, true, func(_ *Pipeline, stop chan struct{}) { close(stop) }},
		{"writer never takes", 4, true, func(*Pipeline, chan struct{}) { time.Sleep(maxRoomWait) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, err := New(Config{Dir: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				for i := range tc.queued {
					p.Add(rec(i))
				}
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() {
					p.WaitRoom(stop, 4)
					close(done)
				}()
				synctest.Wait()
				if held := !isClosed(done); held != tc.wantHeld {
					t.Fatalf("WaitRoom(4) with %d queued: held %v, want %v", tc.queued, held, tc.wantHeld)
				}
				if !tc.wantHeld {
					return
				}
				tc.release(p, stop)
				synctest.Wait()
				if !isClosed(done) {
					t.Errorf("WaitRoom still waits after %s", tc.name)
				}
			})
		})
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
