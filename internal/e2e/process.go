package e2e

import (
	"bytes"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SyncBuf is a goroutine-safe buffer for a child process's log.
type SyncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *SyncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Start starts c and stops it when the test ends (SIGTERM, then SIGKILL
// after 10 s); stop does it earlier.
func Start(t testing.TB, c *exec.Cmd) (stop func()) {
	t.Helper()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = c.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = c.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// WaitFor polls cond until it holds, or fails the test after limit with
// the logs given. The limit is a failure bound, not a timing check: use it
// for what another process or a real socket does, where no signal reaches
// the test; within a process, wait on the component's own signal instead.
func WaitFor(t testing.TB, what string, limit time.Duration, cond func() bool, logs ...*SyncBuf) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			for _, l := range logs {
				t.Logf("log:\n%s", l.String())
			}
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
