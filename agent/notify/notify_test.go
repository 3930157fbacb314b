package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// countHandler counts log records by message.
type countHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Level >= slog.LevelInfo {
		h.msgs = append(h.msgs, r.Message)
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }
func (h *countHandler) lines() int                         { h.mu.Lock(); defer h.mu.Unlock(); return len(h.msgs) }

// TestNoSessionNotRetriedPerName (issue 21): on an endpoint nobody is signed
// in to, a stream of distinct blocked names costs one attempt to find a
// session per Recheck, not one per name, and one log line per cause per
// LogInterval, not one per notice. A session found again is used at once
// after Recheck.
func TestNoSessionNotRetriedPerName(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	rec := &recorder{err: ErrNoSession}
	logs := &countHandler{}
	undelivered := make(chan Notice, 100)
	n := New(Config{Backend: rec, Queue: 8, Recheck: 30 * time.Second, LogInterval: 10 * time.Minute, Now: clock,
		Log: slog.New(logs), Undelivered: func(nt Notice, _ error) { undelivered <- nt }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	attempts := func() int { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.got) }

	if !n.Notify(Notice{Name: "first.test", Blocked: true}) {
		t.Fatal("the first notice must be queued")
	}
	<-undelivered
	for i := range 1000 {
		if n.Notify(Notice{Name: fmt.Sprintf("ad%d.test", i), Blocked: true}) {
			t.Fatalf("notice %d queued while no session is known", i)
		}
	}
	if got := attempts(); got != 1 {
		t.Errorf("%d attempts to reach a session for 1001 names, want 1", got)
	}
	// After Recheck the next name is attempted again (still nobody): a
	// second attempt, and no second log line within LogInterval.
	advance(31 * time.Second)
	if !n.Notify(Notice{Name: "later.test", Blocked: true}) {
		t.Fatal("after Recheck a notice must be attempted again")
	}
	<-undelivered
	if got := attempts(); got != 2 {
		t.Errorf("attempts = %d after Recheck, want 2", got)
	}
	if got := logs.lines(); got != 1 {
		t.Errorf("%d log lines for one cause within LogInterval, want 1: %v", got, logs.msgs)
	}
	// Past LogInterval the cause is logged again, with the count not shown.
	advance(11 * time.Minute)
	n.Notify(Notice{Name: "much-later.test", Blocked: true})
	<-undelivered
	if got := logs.lines(); got != 2 {
		t.Errorf("%d log lines after LogInterval, want 2", got)
	}
	// A user signs in: the next notice after Recheck is shown.
	rec.mu.Lock()
	rec.err = nil
	rec.mu.Unlock()
	advance(31 * time.Second)
	if !n.Notify(Notice{Name: "shown.test", Blocked: true}) {
		t.Fatal("notice not queued once a session may exist")
	}
	for deadline := time.Now().Add(5 * time.Second); attempts() != 4; {
		if time.Now().After(deadline) {
			t.Fatalf("attempts = %d, want 4", attempts())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNoticeAtIsTheClock: a notice that says when it happened (the DNS
// fast path's clock read) is rate-limited by that time, not by the
// notifier's clock, which is then not read.
func TestNoticeAtIsTheClock(t *testing.T) {
	reads := 0
	n := New(Config{Backend: &recorder{}, Interval: time.Minute, Now: func() time.Time {
		reads++
		return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	}})
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	steps := []struct {
		at   time.Time
		want bool
	}{{at, true}, {at.Add(30 * time.Second), false}, {at.Add(61 * time.Second), true}}
	for i, s := range steps {
		if got := n.Notify(Notice{Name: "a.test", At: s.at}); got != s.want {
			t.Errorf("step %d: Notify at %v = %v, want %v", i, s.at, got, s.want)
		}
	}
	if reads != 0 {
		t.Errorf("the notifier read its clock %d times for notices that carried their time", reads)
	}
	// Without At the clock is read: 2030 is past the last notice's interval.
	if !n.Notify(Notice{Name: "a.test"}) || reads != 1 {
		t.Errorf("a notice without At: clock read %d times, want 1 (and queued)", reads)
	}
}
