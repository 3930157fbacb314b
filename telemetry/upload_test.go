package telemetry

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
)

// collected reads every chunk the collector stored for dev-1 and counts each
// record's IndicatorId, so tests can check zero lost and zero duplicated.
func collected(t *testing.T, dir string) (counts map[string]int, chunks int) {
	t.Helper()
	counts = map[string]int{}
	des, _ := os.ReadDir(filepath.Join(dir, "dev-1"))
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), chunkSuffix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "dev-1", de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		chunks++
		for _, r := range decodeChunk(t, b) {
			if r.ActionType != ActionTelemetryGap {
				counts[r.IndicatorId]++
			}
		}
	}
	return counts, chunks
}

// checkExactlyOnce fails unless records 0..n-1 each arrived exactly once.
func checkExactlyOnce(t *testing.T, counts map[string]int, n int) {
	t.Helper()
	if len(counts) != n {
		t.Errorf("collector has %d distinct records, want %d", len(counts), n)
	}
	for i := range n {
		if c := counts[strconv.Itoa(i)]; c != 1 {
			t.Errorf("record %d arrived %d times, want exactly once", i, c)
		}
	}
}

// faulty wraps the real collector and misbehaves for the first n requests.
type faulty struct {
	real  http.Handler
	mode  string
	left  atomic.Int32
	calls atomic.Int32
}

func (f *faulty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if f.left.Add(-1) < 0 {
		f.real.ServeHTTP(w, r)
		return
	}
	switch f.mode {
	case "500":
		http.Error(w, "boom", http.StatusInternalServerError)
	case "503 retry-after":
		w.Header().Set("Retry-After", "7")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	case "slow":
		// Slower than the client's timeout: the answer comes only after
		// the client gave up (once the body is read, the request's context
		// ends with the connection). The collector still stores the chunk,
		// so the retry must get 200, not a duplicate.
		body, _ := io.ReadAll(r.Body)
		<-r.Context().Done()
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.real.ServeHTTP(httptest.NewRecorder(), r)
	case "drop after body":
		rec := httptest.NewRecorder()
		f.real.ServeHTTP(rec, r) // stored...
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // ...but the agent never hears about it
		}
	case "400":
		http.Error(w, "no", http.StatusBadRequest)
	}
}

func TestUploadThroughFaults(t *testing.T) {
	for _, mode := range []string{"none", "refuse", "500", "503 retry-after", "slow", "drop after body"} {
		t.Run(mode, func(t *testing.T) {
			cdir := t.TempDir()
			coll, err := NewCollector(CollectorConfig{Dir: cdir, Authorize: TokenAuthorizer("secret")})
			if err != nil {
				t.Fatal(err)
			}
			f := &faulty{real: coll, mode: mode}
			if mode != "none" && mode != "refuse" {
				f.left.Store(3)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			srv := &http.Server{Handler: f}
			if mode == "refuse" {
				ln.Close() // connection refused until the collector comes back
			} else {
				go srv.Serve(ln)
			}
			defer srv.Close()

			var mu sync.Mutex
			var delays []time.Duration
			refusedUntilRetry := 3
			// Only "slow" needs the client to give up (its handler answers
			// after that): elsewhere a short timeout is a fault of its own
			// on a loaded machine (the collector syncs each chunk and its
			// rollup to disk), retried after a backoff instead of the
			// Retry-After checked below (failed "503 retry-after" that way).
			timeout := 30 * time.Second
			if mode == "slow" {
				timeout = 100 * time.Millisecond
			}
			cfg := Config{
				Dir: t.TempDir(), DeviceID: "dev-1", Endpoint: "http://" + addr, Token: "secret",
				ChunkRecords: 50, RetryBase: time.Millisecond, RetryMax: 10 * time.Millisecond,
				Client: &http.Client{Timeout: timeout},
			}
			cfg.sleep = func(ctx context.Context, d time.Duration) error {
				mu.Lock()
				delays = append(delays, d)
				n := len(delays)
				mu.Unlock()
				if mode == "refuse" && n == refusedUntilRetry {
					ln2, err := net.Listen("tcp", addr)
					if err != nil {
						t.Errorf("re-listen on %s: %v", addr, err)
						return err
					}
					go srv.Serve(ln2)
				}
				return sleepCtx(ctx, time.Millisecond)
			}
			p, _ := startPipeline(t, cfg)
			const n = 500
			for i := range n {
				p.Add(rec(i))
			}
			flush(t, p)
			e2e.WaitFor(t, "all chunks uploaded", 30*time.Second, func() bool {
				s := p.Status()
				return s.SpoolChunks == 0 && s.UploadedChunks == n/50
			})
			counts, chunks := collected(t, cdir)
			checkExactlyOnce(t, counts, n)
			if chunks != n/50 {
				t.Errorf("collector stored %d chunks, want %d", chunks, n/50)
			}
			mu.Lock()
			defer mu.Unlock()
			if mode != "none" && len(delays) == 0 {
				t.Error("no retry happened")
			}
			if mode == "503 retry-after" {
				for _, d := range delays {
					if d != 7*time.Second {
						t.Errorf("retry delay %v, want Retry-After 7s", d)
					}
				}
			}
			if s := p.Status(); mode != "none" && s.LastError == "" {
				t.Error("status shows no last error after failures")
			}
		})
	}
}

func TestUploadQuarantinesRefusedChunk(t *testing.T) {
	cdir := t.TempDir()
	coll, _ := NewCollector(CollectorConfig{Dir: cdir, Authorize: TokenAuthorizer("secret")})
	f := &faulty{real: coll, mode: "400"}
	f.left.Store(1)
	srv := httptest.NewServer(f)
	defer srv.Close()
	dir := t.TempDir()
	p, _ := startPipeline(t, Config{Dir: dir, DeviceID: "dev-1", Endpoint: srv.URL, Token: "secret", ChunkRecords: 10})
	for i := range 30 {
		p.Add(rec(i))
	}
	flush(t, p)
	e2e.WaitFor(t, "spool drained", 30*time.Second, func() bool { return p.Status().SpoolChunks == 0 && p.Status().UploadedChunks == 2 })
	s := p.Status()
	if s.Quarantined != 1 || len(s.QuarantinedIDs) != 1 || !strings.Contains(s.LastError, "400") {
		t.Errorf("status = %+v, want one quarantined chunk", s)
	}
	des, _ := os.ReadDir(filepath.Join(dir, "quarantine"))
	if len(des) != 1 {
		t.Errorf("quarantine dir holds %d files, want 1", len(des))
	}
	counts, _ := collected(t, cdir)
	for i := range 10 {
		if counts[strconv.Itoa(i)] != 0 {
			t.Errorf("record %d of the quarantined chunk reached the collector", i)
		}
	}
	for i := 10; i < 30; i++ {
		if counts[strconv.Itoa(i)] != 1 {
			t.Errorf("record %d arrived %d times", i, counts[strconv.Itoa(i)])
		}
	}
}

// Uploads verify TLS: an untrusted certificate is an error to retry (never
// a quarantine, never a success); a client that trusts the CA uploads.
func TestUploadVerifiesTLS(t *testing.T) {
	coll, _ := NewCollector(CollectorConfig{Dir: t.TempDir(), Authorize: TokenAuthorizer("secret")})
	srv := httptest.NewTLSServer(coll)
	defer srv.Close()
	dir := t.TempDir()
	tried := make(chan struct{}, 1)
	cfg := Config{Dir: dir, DeviceID: "dev-1", Endpoint: srv.URL, Token: "secret", ChunkRecords: 1}
	cfg.sleep = func(ctx context.Context, d time.Duration) error {
		select {
		case tried <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	p, stop := startPipeline(t, cfg)
	p.Add(rec(0))
	flush(t, p)
	<-tried
	if s := p.Status(); s.UploadedChunks != 0 || s.Quarantined != 0 || !strings.Contains(s.LastError, "certificate") {
		t.Errorf("status with an untrusted certificate = %+v, want a certificate error and the chunk kept", s)
	}
	stop()
	cfg.Client = srv.Client() // trusts the test CA
	cfg.sleep = nil
	p2, _ := startPipeline(t, cfg)
	e2e.WaitFor(t, "upload over verified TLS", 30*time.Second, func() bool { return p2.Status().UploadedChunks == 1 })
}

// TestUploadWrongTokenKeepsChunks: a 401 is a configuration error: the
// chunks stay in the spool (retried with backoff), none is quarantined; and
// chunks an older agent quarantined under the wrong token are queued again
// at the first start with another token, and all arrive once (issue 20 #10).
func TestUploadWrongTokenKeepsChunks(t *testing.T) {
	cdir := t.TempDir()
	coll, _ := NewCollector(CollectorConfig{Dir: cdir, Authorize: TokenAuthorizer("secret")})
	srv := httptest.NewServer(coll)
	defer srv.Close()
	dir := t.TempDir()
	cfg := Config{Dir: dir, DeviceID: "dev-1", Endpoint: srv.URL, Token: "wrong", ChunkRecords: 10,
		RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond}
	p, stop := startPipeline(t, cfg)
	for i := range 30 {
		p.Add(rec(i))
	}
	flush(t, p)
	e2e.WaitFor(t, "the token refusal", 30*time.Second, func() bool {
		s := p.Status()
		return s.SpoolChunks == 3 && strings.Contains(s.LastError, "refused the device token (HTTP 401)")
	})
	if s := p.Status(); s.Quarantined != 0 || s.UploadedChunks != 0 {
		t.Errorf("status = %+v, want the 3 chunks kept in the spool, none quarantined", s)
	}
	stop()

	// What an older agent left: every chunk quarantined under the wrong
	// token.
	spool := filepath.Join(dir, "spool")
	des, _ := os.ReadDir(spool)
	for _, de := range des {
		if err := os.Rename(filepath.Join(spool, de.Name()), filepath.Join(dir, "quarantine", de.Name())); err != nil {
			t.Fatal(err)
		}
	}
	// Same token again: nothing changes, the chunks stay parked.
	p2, stop2 := startPipeline(t, cfg)
	e2e.WaitFor(t, "the quarantine read", 30*time.Second, func() bool { return p2.Status().Quarantined == 3 })
	if s := p2.Status(); s.Quarantined != 3 || s.SpoolChunks != 0 {
		t.Errorf("restart with the same token: status %+v, want 3 quarantined", s)
	}
	stop2()
	// The token is fixed: they are queued again and uploaded.
	cfg.Token = "secret"
	p3, _ := startPipeline(t, cfg)
	e2e.WaitFor(t, "the requeued chunks uploaded", 30*time.Second, func() bool { return p3.Status().UploadedChunks == 3 })
	counts, _ := collected(t, cdir)
	checkExactlyOnce(t, counts, 30)
	if s := p3.Status(); s.Quarantined != 0 {
		t.Errorf("status after the requeue = %+v, want nothing quarantined", s)
	}
}

// TestRequeueQuarantined: the admin's requeue (netward telemetry requeue)
// sends a chunk the collector refused once with 400 again, in order.
func TestRequeueQuarantined(t *testing.T) {
	cdir := t.TempDir()
	coll, _ := NewCollector(CollectorConfig{Dir: cdir, Authorize: TokenAuthorizer("secret")})
	f := &faulty{real: coll, mode: "400"}
	f.left.Store(1)
	srv := httptest.NewServer(f)
	defer srv.Close()
	p, _ := startPipeline(t, Config{Dir: t.TempDir(), DeviceID: "dev-1", Endpoint: srv.URL, Token: "secret", ChunkRecords: 10})
	for i := range 30 {
		p.Add(rec(i))
	}
	flush(t, p)
	e2e.WaitFor(t, "the other chunks uploaded", 30*time.Second, func() bool { return p.Status().UploadedChunks == 2 && p.Status().Quarantined == 1 })
	n, err := p.Requeue()
	if err != nil || n != 1 {
		t.Fatalf("Requeue = %d, %v; want 1", n, err)
	}
	e2e.WaitFor(t, "the requeued chunk uploaded", 30*time.Second, func() bool { return p.Status().UploadedChunks == 3 })
	counts, _ := collected(t, cdir)
	checkExactlyOnce(t, counts, 30)
	if s := p.Status(); s.Quarantined != 0 || len(s.QuarantinedIDs) != 0 {
		t.Errorf("status = %+v, want nothing quarantined", s)
	}
}
