package telemetry

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
)

// TestCrashChild is the agent side of the kill -9 tests, run in a child
// process (the test binary re-executed). It prints "acked N" once records
// 0..N-1 are durable (Flush returned), then keeps going until killed.
func TestCrashChild(t *testing.T) {
	if !e2e.IsChild(t) {
		t.Skip("child process of the kill -9 tests")
	}
	dir := os.Getenv("NETWARD_TEL_CHILD_DIR")
	p, err := New(Config{Dir: dir, DeviceID: "dev-1", Endpoint: os.Getenv("NETWARD_TEL_CHILD_URL"), Token: "secret",
		ChunkRecords: 50, RetryBase: time.Millisecond, RetryMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go p.Run(context.Background())
	total, _ := strconv.Atoi(os.Getenv("NETWARD_TEL_CHILD_N"))
	for i := 0; total == 0 || i < total; {
		for range 100 {
			p.Add(rec(i))
			i++
		}
		if err := p.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("acked %d\n", i)
	}
	select {} // upload until killed
}

// startChild runs TestCrashChild and returns it with a channel of its acks.
func startChild(t *testing.T, dir, url string, n int) (*exec.Cmd, <-chan int) {
	t.Helper()
	cmd, sc := runChild(t, "TestCrashChild", "NETWARD_TEL_CHILD_DIR="+dir, "NETWARD_TEL_CHILD_URL="+url, "NETWARD_TEL_CHILD_N="+strconv.Itoa(n))
	acks := make(chan int, 1024)
	go func() {
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
				n, _ := strconv.Atoi(v)
				select {
				case acks <- n:
				default:
				}
			}
		}
		close(acks)
	}()
	return cmd, acks
}

// runChild starts the child test with env and returns it with a scanner of
// its output; it is killed when the test ends.
func runChild(t *testing.T, test string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	cmd := e2e.ChildCmd(test, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

func kill9(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

// kill -9 while records stream into the journal: every acknowledged record
// survives, in order, with no duplicates and no holes.
func TestKill9MidJournal(t *testing.T) {
	dir := t.TempDir()
	cmd, acks := startChild(t, dir, "", 0)
	acked := 0
	for a := range acks {
		acked = a
		if a >= 3000 {
			break
		}
	}
	kill9(t, cmd)
	for a := range acks { // acks printed before the kill landed
		acked = max(acked, a)
	}
	if acked < 3000 {
		t.Fatalf("child acked only %d records", acked)
	}
	_, stop := startPipeline(t, Config{Dir: dir})
	stop()
	next := 0
	for _, c := range readSpool(t, dir) {
		for _, r := range c.records {
			if r.IndicatorId != strconv.Itoa(next) {
				t.Fatalf("after kill -9: record %s where %d was expected (hole or duplicate)", r.IndicatorId, next)
			}
			next++
		}
	}
	if next < acked {
		t.Errorf("after kill -9: %d records recovered, but %d were acknowledged", next, acked)
	}
	t.Logf("acknowledged %d, recovered %d (the rest were never acknowledged)", acked, next)
}

// kill -9 during an upload that the collector stored but never answered,
// then a collector outage (500s): after a restart every record reaches the
// collector exactly once.
func TestKill9DuringUpload(t *testing.T) {
	cdir := t.TempDir()
	coll, _ := NewCollector(CollectorConfig{Dir: cdir, Authorize: TokenAuthorizer("secret")})
	var (
		mu      sync.Mutex
		hang    = true
		stored  = make(chan struct{})
		release = make(chan struct{})
		outage  = 0
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h, o := hang, outage > 0
		hang = false
		if o {
			outage--
		}
		mu.Unlock()
		if o {
			http.Error(w, "outage", http.StatusInternalServerError)
			return
		}
		if h {
			coll.ServeHTTP(httptest.NewRecorder(), r) // stored...
			close(stored)
			<-release // ...and the agent dies before it hears back
			return
		}
		coll.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer close(release)
	dir := t.TempDir()
	const n = 1000
	cmd, acks := startChild(t, dir, srv.URL, n)
	acked := 0
	for a := range acks {
		acked = a
		if a == n {
			break
		}
	}
	if acked != n {
		t.Fatalf("child acked %d of %d", acked, n)
	}
	<-stored
	kill9(t, cmd)
	mu.Lock()
	outage = 5
	mu.Unlock()
	p, _ := startPipeline(t, Config{Dir: dir, DeviceID: "dev-1", Endpoint: srv.URL, Token: "secret",
		RetryBase: time.Millisecond, RetryMax: 10 * time.Millisecond})
	flush(t, p)
	e2e.WaitFor(t, "spool drained after restart", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return p.Status().SpoolChunks == 0 && outage == 0
	})
	counts, _ := collected(t, cdir)
	checkExactlyOnce(t, counts, n)
}
