package winsvc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

type states struct {
	mu  sync.Mutex
	got []State
}

func (s *states) report(st State) {
	s.mu.Lock()
	s.got = append(s.got, st)
	s.mu.Unlock()
}

func (s *states) list() []State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func TestServeReportsRunningBeforeTheAgentIsReady(t *testing.T) {
	var st states
	requests := make(chan Request)
	release := make(chan struct{})
	running := make(chan []State, 1)
	reportedRunning := make(chan struct{})
	var once sync.Once
	report := func(s State) {
		st.report(s)
		if s == Running {
			once.Do(func() { close(reportedRunning) })
		}
	}
	run := func(ctx context.Context) error {
		// The agent is still "loading its last good set" here and blocks
		// until the SCM has been told it runs: serve must not wait for it.
		<-reportedRunning
		running <- st.list()
		<-release
		<-ctx.Done()
		return nil
	}
	done := make(chan uint32)
	go func() {
		done <- serve(context.Background(), run, requests, report, slog.New(slog.DiscardHandler), time.Minute)
	}()
	if got := <-running; !slices.Equal(got, []State{StartPending, Running}) {
		t.Fatalf("states while the agent loads = %v, want [StartPending Running]", got)
	}
	close(release)
	requests <- RequestInterrogate
	requests <- RequestStop
	if code := <-done; code != 0 {
		t.Errorf("exit code after a stop request = %d, want 0", code)
	}
	if got := st.list(); !slices.Equal(got, []State{StartPending, Running, Running, StopPending}) {
		t.Errorf("states = %v", got)
	}
}

func TestServeExitCodes(t *testing.T) {
	stuck := make(chan struct{}) // released when the test ends, so no goroutine leaks
	tests := []struct {
		name    string
		run     func(ctx context.Context) error
		stop    bool
		want    uint32
		wantLog string
	}{
		{"agent fails", func(context.Context) error { return errors.New("bind 127.0.0.153:53: address in use") }, false, 1, "address in use"},
		{"agent returns without error", func(context.Context) error { return nil }, false, 1, "stopped unexpectedly"},
		{"stop", func(ctx context.Context) error { <-ctx.Done(); return nil }, true, 0, ""},
		{"error while stopping", func(ctx context.Context) error { <-ctx.Done(); return errors.New("cleanup failed") }, true, 0, "cleanup failed"},
		{"stuck on stop", func(ctx context.Context) error { <-stuck; return nil }, true, 0, "did not stop in time"},
	}
	defer close(stuck)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			var mu sync.Mutex
			log := slog.New(slog.NewTextHandler(&lockedWriter{&mu, &logs}, nil))
			requests := make(chan Request, 1)
			if tt.stop {
				requests <- RequestStop
			}
			var st states
			code := serve(context.Background(), tt.run, requests, st.report, log, 10*time.Millisecond)
			if code != tt.want {
				t.Errorf("exit code = %d, want %d", code, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if !bytes.Contains(logs.Bytes(), []byte(tt.wantLog)) {
				t.Errorf("log %q does not contain %q", logs.String(), tt.wantLog)
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestLineLevel(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: dropTime}))
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelError + 4} {
		buf.Reset()
		log.Log(context.Background(), l, "message", "k", "v")
		if got := lineLevel(buf.Bytes()); got != l {
			t.Errorf("lineLevel(%q) = %v, want %v", buf.String(), got, l)
		}
		if bytes.Contains(buf.Bytes(), []byte("time=")) {
			t.Errorf("line %q has a time attribute", buf.String())
		}
	}
	if got := lineLevel([]byte("garbage")); got != slog.LevelInfo {
		t.Errorf("lineLevel(garbage) = %v, want INFO", got)
	}
}
