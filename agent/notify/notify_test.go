package notify

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Backend that records what it was asked to show.
type recorder struct {
	mu  sync.Mutex
	got []Notice
	err error
}

func (r *recorder) Notify(_ context.Context, n Notice, _ func()) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, n)
	return r.err
}

func TestRateLimitPerNameAndUser(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	n := New(Config{Backend: &recorder{}, Interval: time.Minute, MaxKeys: 3, Now: func() time.Time { return now }})
	steps := []struct {
		advance time.Duration
		notice  Notice
		want    bool
	}{
		{0, Notice{Name: "a.test", User: "alice"}, true},
		{time.Second, Notice{Name: "a.test", User: "alice"}, false},
		{0, Notice{Name: "a.test", User: "bob"}, true},
		{0, Notice{Name: "b.test", User: "alice"}, true},
		{59 * time.Second, Notice{Name: "a.test", User: "alice"}, true},
		{0, Notice{Name: "a.test", User: "alice"}, false},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := n.Notify(s.notice); got != s.want {
			t.Errorf("step %d: Notify(%+v) = %v, want %v", i, s.notice, got, s.want)
		}
	}
	if len(n.last) > 3 {
		t.Errorf("rate-limit table has %d keys, bound 3", len(n.last))
	}
}

func TestQueueBoundedAndUndelivered(t *testing.T) {
	rec := &recorder{err: ErrNoSession}
	undelivered := make(chan Notice, 4)
	n := New(Config{Backend: rec, Queue: 2, Undelivered: func(nt Notice, err error) {
		if !errors.Is(err, ErrNoSession) {
			t.Errorf("undelivered err = %v", err)
		}
		undelivered <- nt
	}})
	for _, name := range []string{"a.test", "b.test", "c.test"} {
		n.Notify(Notice{Name: name})
	}
	if n.dropped != 1 {
		t.Errorf("dropped = %d, want 1 (queue bound 2)", n.dropped)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	for _, want := range []string{"a.test", "b.test"} {
		if got := <-undelivered; got.Name != want {
			t.Errorf("undelivered %q, want %q", got.Name, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestText(t *testing.T) {
	w := Notice{Name: "dropbox.com", App: "Dropbox", Reason: "Monitored app"}
	if !strings.Contains(w.Body(), "netward bypass dropbox.com") || !strings.Contains(w.Body(), "Dropbox") {
		t.Errorf("warn body %q lacks the command or app", w.Body())
	}
	b := Notice{Name: "bad.test", Blocked: true}
	if strings.Contains(b.Body(), "bypass") || !strings.Contains(b.Summary(), "blocked") {
		t.Errorf("block text %q / %q", b.Summary(), b.Body())
	}
}
