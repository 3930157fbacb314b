package guard

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestRecoveredCountsAndRateLimitsTheLog(t *testing.T) {
	var buf logBuf
	p := New(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	boom := func() {
		defer func() {
			if v := recover(); v != nil {
				p.Recovered("dns", v)
			}
		}()
		var s []int
		_ = s[0] // index out of range, like the bare-header query of issue 14
	}
	for range 1000 {
		boom()
	}
	if got := p.Count("dns"); got != 1000 {
		t.Fatalf("Count = %d, want 1000", got)
	}
	if n := strings.Count(buf.String(), "recovered from a panic"); n != 1 {
		t.Fatalf("%d log lines for 1000 panics within a minute, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "guard_test.go") || !strings.Contains(buf.String(), "index out of range") {
		t.Errorf("the log line lacks the panicking stack or value:\n%s", buf.String())
	}
	now = now.Add(DefaultLogEvery)
	boom()
	out := buf.String()
	if n := strings.Count(out, "recovered from a panic"); n != 2 {
		t.Fatalf("after the interval: %d log lines, want 2", n)
	}
	if !strings.Contains(out, "notLoggedSinceLast=999") || !strings.Contains(out, "total=1001") {
		t.Errorf("the second line must say how many were not logged:\n%s", out)
	}
	if c := p.Counts(); len(c) != 1 || c[0] != (Count{"dns", 1001}) {
		t.Errorf("Counts = %v", c)
	}
	var nilP *Panics
	nilP.Recovered("x", "y") // must not panic
	if nilP.Count("x") != 0 || nilP.Counts() != nil {
		t.Error("a nil Panics counts nothing")
	}
}

func TestHTTP(t *testing.T) {
	p := New(nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "99")
		panic("before the response")
	})
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		panic("after the response started")
	})
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through the wrapper: %v", err)
		}
		_, _ = io.WriteString(w, "fine")
	})
	srv := httptest.NewServer(p.HTTP("control", mux))
	defer srv.Close()
	srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)

	resp, err := http.Get(srv.URL + "/early")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "internal error") {
		t.Errorf("/early: %d %q, want 500", resp.StatusCode, b)
	}
	if resp, err := http.Get(srv.URL + "/late"); err == nil {
		_, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Errorf("/late: the response must be cut, got a complete %d", resp.StatusCode)
		}
	}
	if _, err := http.Get(srv.URL + "/abort"); err == nil {
		t.Errorf("/abort: want the connection aborted")
	}
	resp, err = http.Get(srv.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "fine" {
		t.Errorf("/ok = %q", b)
	}
	if got := p.Count("control"); got != 2 {
		t.Errorf("Count = %d, want 2 (ErrAbortHandler is not a panic to count)", got)
	}
}
