// Package guard keeps a panic in one request from stopping the process. A
// request handler (a DNS query, a queued packet, an HTTP request) recovers
// its own panic and hands it to a Panics: the panic is counted by component
// (the agent exports the counts as a Prometheus metric) and logged with its
// stack at most once per interval per component, so a hostile client
// repeating the same input can neither stop the agent nor flood its log.
//
// The request that panicked gets an error answer (SERVFAIL, HTTP 500, the
// packet's default verdict); the others are not affected.
package guard

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sort"
	"sync"
	"time"
)

// DefaultLogEvery is how often one component may log a recovered panic.
const DefaultLogEvery = time.Minute

// Panics counts and logs recovered panics. The zero value is not usable;
// call New. A nil *Panics is valid and records nothing (handlers still
// recover).
type Panics struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu sync.Mutex
	by map[string]*component
}

type component struct {
	count      uint64
	lastLog    time.Time
	suppressed uint64 // panics since the last logged one that were not logged
}

// New returns a Panics that logs to log (nil: discarded) at most once per
// DefaultLogEvery per component.
func New(log *slog.Logger) *Panics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Panics{log: log, every: DefaultLogEvery, now: time.Now, by: map[string]*component{}}
}

// Recovered records the panic value v, recovered in component. Call it from
// the deferred function that called recover(): the stack it logs is then the
// panicking goroutine's, down to the faulty line.
func (p *Panics) Recovered(name string, v any) {
	if p == nil {
		return
	}
	now := p.now()
	p.mu.Lock()
	c := p.by[name]
	if c == nil {
		c = &component{}
		p.by[name] = c
	}
	c.count++
	logIt := c.lastLog.IsZero() || now.Sub(c.lastLog) >= p.every
	var suppressed uint64
	if logIt {
		c.lastLog, suppressed, c.suppressed = now, c.suppressed, 0
	} else {
		c.suppressed++
	}
	total := c.count
	p.mu.Unlock()
	if !logIt {
		return
	}
	p.log.Error("recovered from a panic while handling one request; the request got an error answer and the agent goes on — please report this with the stack",
		"component", name, "panic", fmt.Sprint(v), "total", total, "notLoggedSinceLast", suppressed,
		"stack", string(debug.Stack()))
}

// Count returns how many panics component has recovered.
func (p *Panics) Count(component string) uint64 {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.by[component]; c != nil {
		return c.count
	}
	return 0
}

// Counts returns the number of recovered panics by component, components in
// name order.
func (p *Panics) Counts() []Count {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Count, 0, len(p.by))
	for name, c := range p.by {
		out = append(out, Count{Component: name, Panics: c.count})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Component < out[j].Component })
	return out
}

// Count is one component's number of recovered panics.
type Count struct {
	Component string `json:"component"`
	Panics    uint64 `json:"panics"`
}

// HTTP wraps h so that a panic while serving one request is recovered and
// recorded under component. The request gets a 500 when nothing of its
// response was written yet; otherwise its connection is aborted, so the
// client sees a cut response rather than a well-formed wrong one.
// http.ErrAbortHandler passes through: it is net/http's own way to abort.
func (p *Panics) HTTP(component string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way
				panic(v)
			}
			p.Recovered(component, v)
			if tw.wrote {
				panic(http.ErrAbortHandler)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Del("Content-Length")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = fmt.Fprintln(w, "internal error while handling this request; it was logged and the server goes on")
		}()
		h.ServeHTTP(tw, r)
	})
}

// trackingWriter notes whether the response has started. Unwrap lets
// http.ResponseController reach the real writer (Flush, deadlines).
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *trackingWriter) WriteHeader(code int) {
	if code >= 200 { // 1xx informational responses do not start the response
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *trackingWriter) Flush() {
	w.wrote = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
