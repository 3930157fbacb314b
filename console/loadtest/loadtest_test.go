package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/server"
	"github.com/netward/netward/internal/pgtest"
)

// TestMain doubles as the poller process of the tests with Procs > 1.
func TestMain(m *testing.M) {
	if os.Getenv("NETWARD_LOADTEST_WORKER") == "1" {
		if err := Worker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if role := os.Getenv("NETWARD_LOADTEST_CPU"); role != "" {
		os.Exit(cpuHelper(role))
	}
	os.Exit(m.Run())
}

// testWorker starts this test binary as a poller process.
func testWorker() *exec.Cmd {
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), "NETWARD_LOADTEST_WORKER=1")
	c.Stderr = os.Stderr
	return c
}

// startConsole runs a console in this process on dsn ("" for SQLite).
func startConsole(t *testing.T, dsn string) (url, fingerprint, password string) {
	return startReplica(t, dsn, true)
}

// startReplica runs a console on dsn; a later replica (not first) on a
// store that has its admin prints no password.
func startReplica(t *testing.T, dsn string, first bool) (url, fingerprint, password string) {
	t.Helper()
	dir := t.TempDir()
	store := ""
	if dsn != "" {
		store = fmt.Sprintf(`,"store":{"dsn":%q}`, dsn)
	}
	cfg, err := server.ParseConfig([]byte(fmt.Sprintf(`{"listen":"127.0.0.1:0","dataDir":%q%s,"ingest":{"retryAfterSeconds":1}}`, filepath.Join(dir, "data"), store)), "test")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := server.New(cfg, nil, pw)
	s.Argon2 = auth.Argon2Params{Time: 1, Memory: 64, Threads: 1}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("console: %v", err)
		}
	})
	sc := bufio.NewScanner(pr)
	for (password == "" || url == "") && sc.Scan() {
		line := sc.Text()
		last := line[strings.LastIndexByte(line, ' ')+1:]
		switch {
		case strings.HasPrefix(line, "netward-console serving "):
			url = last
		case strings.HasPrefix(line, "certificate SHA-256"):
			fingerprint = last
		case strings.HasPrefix(line, "initial admin account"):
			password = last
		}
		if !first && url != "" && strings.HasPrefix(line, "feed public key") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if url == "" || first && password == "" {
		t.Fatal("console did not start")
	}
	return url, fingerprint, password
}

// The short correctness run of `make loadtest`: a small fleet enrolls,
// holds polls and uploads for a few seconds; every tag change reaches
// every poll, and the aggregates count exactly what was acknowledged.
// Timing is reported, never asserted (docs/scale.md has the figures).
func TestFleetShort(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			dsn := ""
			if kind == "postgres" {
				dsn = postgres(t, "fleet")
			}
			url, fp, pw := startConsole(t, dsn)
			names, err := LoadNames(existing("../../../shared/data/blocklist-stevenblack.txt"), "")
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), Config{Console: url, Fingerprint: fp, AdminPassword: pw, PID: os.Getpid(),
				Devices: 30, Polls: 25, Uploaders: 6, Duration: 3 * time.Second, FullEvery: 3, FullRecords: 800, SmallRecords: 40,
				FeedChanges: 2, FeedTimeout: 20 * time.Second, Names: names, DatabaseDSN: dsn})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", *rep)
			if !rep.Check.OK || rep.Check.SentTransactions == 0 {
				t.Errorf("check: %+v", rep.Check)
			}
			if rep.Chunks == 0 || rep.Errors != 0 || rep.Unacknowledged != 0 {
				t.Errorf("uploads: %d chunks, %d errors (%v), %d unacknowledged", rep.Chunks, rep.Errors, rep.FirstErrors, rep.Unacknowledged)
			}
			var windowed int64
			for _, w := range rep.Windows {
				windowed += int64(w.Uploads)
			}
			if windowed != rep.Chunks || rep.SmallP99ms <= 0 || rep.FullP99ms <= 0 {
				t.Errorf("%d uploads in the windows of %d chunks; p99 small %v ms, full %v ms", windowed, rep.Chunks, rep.SmallP99ms, rep.FullP99ms)
			}
			// Every window was sampled: the host (Linux), and the
			// PostgreSQL (which took the uploads' WAL); the contrasts
			// cover every upload.
			var wal int64
			for _, w := range rep.Windows {
				if runtime.GOOS == "linux" && (w.Host == nil || w.Host.Samples == 0 || w.Host.BusyPct <= 0) {
					t.Errorf("window %v: host %+v", w.Start, w.Host)
				}
				if kind == "postgres" {
					if w.PG == nil || w.PG.Samples == 0 {
						t.Fatalf("window %v: PostgreSQL not sampled: %+v", w.Start, w.PG)
					}
					wal += w.PG.WALBytes
				} else if w.PG != nil {
					t.Errorf("window %v: SQLite run with PostgreSQL samples %+v", w.Start, w.PG)
				}
			}
			if kind == "postgres" {
				if wal == 0 || len(rep.Contrasts) != 2 {
					t.Errorf("%d WAL bytes in the windows; contrasts %+v", wal, rep.Contrasts)
				}
				for _, c := range rep.Contrasts {
					if int64(c.Uploads+c.OtherUploads) != rep.Chunks || c.Windows+c.OtherWindows != len(rep.Windows) {
						t.Errorf("contrast %+v: not every upload and window (%d, %d)", c, rep.Chunks, len(rep.Windows))
					}
				}
			} else if rep.Contrasts != nil {
				t.Errorf("SQLite run with contrasts %+v", rep.Contrasts)
			}
			if rep.HeldPolls != 25 || len(rep.Feed) != 2 {
				t.Fatalf("held %d polls, %d feed changes measured", rep.HeldPolls, len(rep.Feed))
			}
			for _, f := range rep.Feed {
				if f.Delivered != 25 || f.BytesSent <= 0 {
					t.Errorf("feed change %+v: not every poll got it", f)
				}
			}
		})
	}
}

// Held polls spread over two poller processes and two console replicas
// on one PostgreSQL: every poll, on either replica, gets every change made
// through the first one (it reaches the second through the database), and
// the children's arrivals and bytes add up in the report.
func TestFleetProcsReplicas(t *testing.T) {
	dsn := postgres(t, "replicas")
	urlA, _, pw := startReplica(t, dsn, true)
	urlB, _, _ := startReplica(t, dsn, false)
	const polls = 40
	// Fingerprint "": the two in-test replicas made certificates of their own.
	rep, err := Run(context.Background(), Config{Console: urlA, Replicas: []string{urlB}, AdminPassword: pw,
		Procs: 2, Worker: testWorker, Devices: 44, Polls: polls, Uploaders: 4, Duration: 3 * time.Second,
		FullEvery: 3, FullRecords: 400, SmallRecords: 40, FeedChanges: 2, FeedTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *rep)
	if rep.PollerProcs != 2 || rep.HeldPolls != polls || !slices.Equal(rep.HeldPerConsole, []int{polls / 2, polls / 2}) {
		t.Fatalf("%d processes held %d polls (%v per replica), want 2 holding %d, half on each", rep.PollerProcs, rep.HeldPolls, rep.HeldPerConsole, polls)
	}
	if len(rep.Feed) != 2 {
		t.Fatalf("%d feed changes measured, want 2", len(rep.Feed))
	}
	for _, f := range rep.Feed {
		// At least a response's headers per poll came through the children.
		if f.Delivered != polls || f.P100ms < 0 || f.BytesSent < 200*polls {
			t.Errorf("feed change %+v: not every poll got it through the poller processes", f)
		}
	}
	if !rep.Check.OK || rep.Check.SentTransactions == 0 || rep.Errors != 0 {
		t.Errorf("uploads over both replicas: check %+v, %d errors (%v)", rep.Check, rep.Errors, rep.FirstErrors)
	}
	if len(rep.Replicas) != 1 {
		t.Errorf("stats of %d replicas, want 1", len(rep.Replicas))
	}
}

// A poller process's events become arrivals and bytes read: its cumulative
// byte counts add their growth only, across processes.
func TestReadEventsAggregates(t *testing.T) {
	var cnt counter
	var mu sync.Mutex
	got := map[string]int{}
	arrived := func(v string, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if at.UnixNano() != 1_000 {
			t.Errorf("arrival at %d, want 1000", at.UnixNano())
		}
		got[v]++
	}
	a := `{"v":"v2","at":1000,"read":500}` + "\n" + `{"read":500}` + "\n" + `{"v":"v2","at":1000,"read":900}` + "\n"
	b := `{"read":100}` + "\n" + `{"v":"v2","at":1000,"read":700}` + "\n" + `{"v":"v3","at":1000,"read":800}` + "\n"
	var wg sync.WaitGroup
	for _, in := range []string{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := readEvents(strings.NewReader(in), arrived, &cnt); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got["v2"] != 3 || got["v3"] != 1 || cnt.read.Load() != 900+800 {
		t.Errorf("arrivals %v, %d bytes read; want v2×3, v3×1, 1700 bytes", got, cnt.read.Load())
	}
	if err := readEvents(strings.NewReader(`{"v":`), arrived, &cnt); err == nil {
		t.Error("broken output from a poller process read without an error")
	}
}

// Every device goes to exactly one poller process.
func TestShareCoversAll(t *testing.T) {
	for _, n := range []int{1, 3, 7} {
		var all []int
		for i := range n {
			all = append(all, share([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, i, n)...)
		}
		if !slices.Equal(all, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Errorf("%d shares: %v", n, all)
		}
	}
}

// postgres starts a private PostgreSQL cluster for the test and returns
// the DSN of a fresh database on it (skips where there is none, unless
// required).
func postgres(t *testing.T, name string) string {
	t.Helper()
	return pgtest.Database(t, name, pgtest.Options{})
}

func existing(p string) string {
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// The generated chunk says what it holds.
func TestMakeChunkCounts(t *testing.T) {
	names := Names{Apps: []string{"dropbox.com", "mega.nz"}, Blocklist: []string{"ads.example"}}
	c, err := makeChunk(newRand(1), names, "dev", 500, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.sent.Records != 500 || c.sent.Transactions != 499 || len(c.gz) == 0 {
		t.Errorf("chunk: %+v", c.sent)
	}
}

// summarize splits the uploads by kind and by window: a slow full chunk
// shows in the full p99 and in the window it was acknowledged in, not in
// the small chunks' p99 or another window.
func TestSummarizeWindows(t *testing.T) {
	var s []sample
	for i := range 100 {
		s = append(s, sample{ms: 10, at: float64(i) / 10})    // window 0
		s = append(s, sample{ms: 20, at: 20 + float64(i)/10}) // window 2
	}
	s = append(s, sample{ms: 900, at: 25, full: true}, sample{ms: 30, at: 5, full: true})
	p50, p99, pmax, small, full, ws := summarize(s)
	if p50 != 10 && p50 != 20 || pmax != 900 || p99 != 20 {
		t.Errorf("p50 %v, p99 %v, max %v: want 10 or 20, 20, 900", p50, p99, pmax)
	}
	if small != 20 || full != 900 {
		t.Errorf("p99 small %v, full %v: want 20, 900", small, full)
	}
	if len(ws) != 3 || ws[0].Uploads != 101 || ws[1].Uploads != 0 || ws[2].Uploads != 101 || ws[2].Maxms != 900 || ws[0].Maxms != 30 || ws[2].Start != 20 {
		t.Errorf("windows %+v", ws)
	}
	if _, _, _, _, _, ws := summarize(nil); ws != nil {
		t.Errorf("no uploads: windows %+v", ws)
	}
}
