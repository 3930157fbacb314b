package indicators

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/e2e"
)

// waitLimit bounds every wait for an event in these tests. It is a
// failure bound against hangs, not a performance assertion.
const waitLimit = 20 * time.Second

// feed is a real feed server: the package's Handler behind httptest, with
// a switch that tampers with, unsigns or re-chunks what it serves.
type feed struct {
	h        *Handler
	srv      *httptest.Server
	requests atomic.Int64
	notMod   atomic.Int64
	mode     atomic.Value // "", "tamper", "unsigned", "chunked"
	mu       sync.Mutex
	inm      []string // If-None-Match of each request
}

func (f *feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	f.mu.Lock()
	f.inm = append(f.inm, r.Header.Get("If-None-Match"))
	f.mu.Unlock()
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, r) // blocks for long polls like the real thing
	// The mode in force when the answer leaves, not when the request came:
	// a long poll held across a switch must get the new treatment.
	mode, _ := f.mode.Load().(string)
	if rec.Code == http.StatusNotModified {
		f.notMod.Add(1)
	}
	body := rec.Body.Bytes()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	switch mode {
	case "tamper":
		body = bytes.Replace(body, []byte(".test"), []byte(".tost"), 1)
	case "unsigned":
		w.Header().Del(SignatureHeader)
	case "chunked":
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		for len(body) > 0 {
			n := min(len(body), 16)
			_, _ = w.Write(body[:n])
			w.(http.Flusher).Flush()
			body = body[n:]
		}
		return
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

func newFeed(t *testing.T, key ed25519.PrivateKey) *feed {
	t.Helper()
	f := &feed{h: NewHandler(HandlerConfig{Token: "device-token", Key: key})}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *feed) url() string { return f.srv.URL + "/v1/indicators" }

func (f *feed) publish(t testing.TB, version string, values ...string) {
	t.Helper()
	if err := f.h.SetDocument(doc(version, values...)); err != nil {
		t.Fatal(err)
	}
}

// run starts s.Run and stops it when the test ends.
func run(t *testing.T, s *Sync) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// updates collects what Sync applies.
type updates chan Update

func (u updates) apply(up Update) { u <- up }

func (u updates) next(t *testing.T) Update {
	t.Helper()
	select {
	case up := <-u:
		return up
	case <-time.After(waitLimit):
		t.Fatalf("no update within %v", waitLimit)
	}
	return Update{}
}

func (u updates) none(t *testing.T) {
	t.Helper()
	select {
	case up := <-u:
		t.Fatalf("unexpected update %s", up.Version)
	default:
	}
}

func openTestStore(t *testing.T, path string) *Store {
	t.Helper()
	st, err := OpenStore(StoreConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func action(p *filter.Policy, name string) string {
	m := p.MatchName(name)
	if m.Rule == nil {
		return "none"
	}
	return m.Rule.Action.String()
}

func TestSyncSignatureRejected(t *testing.T) {
	pub, priv := testKey(t)
	for _, mode := range []string{"tamper", "unsigned"} {
		t.Run(mode, func(t *testing.T) {
			f := newFeed(t, priv)
			f.publish(t, "1", "one.test")
			st := openTestStore(t, filepath.Join(t.TempDir(), "indicators.db"))
			ups := make(updates, 8)
			s, err := NewSync(SyncConfig{Source: f.url(), Token: "device-token", PublicKey: pub, Store: st, Apply: ups.apply,
				LongPoll: 30 * time.Second, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			run(t, s)
			if up := ups.next(t); up.Version != "1" || action(up.Policy, "one.test") != "Block" {
				t.Fatalf("first set: %s %s", up.Version, action(up.Policy, "one.test"))
			}
			f.mode.Store(mode)
			f.publish(t, "2", "two.test")
			e2e.WaitFor(t, "the rejection", waitLimit, func() bool { return strings.Contains(s.Status().LastError, "signature") })
			ups.none(t)
			if v := s.Status().Version; v != "1" {
				t.Errorf("version in force %q, want the last good 1", v)
			}
			r, ok, err := st.Load()
			if !ok || err != nil || r.Version != "1" {
				t.Errorf("store holds %q (%v %v), want the last good 1", r.Version, ok, err)
			}
			// Once the feed is honest again, the new set arrives.
			f.mode.Store("")
			if up := ups.next(t); up.Version != "2" || action(up.Policy, "two.test") != "Block" {
				t.Fatalf("after recovery: %s", up.Version)
			}
		})
	}
}

// TestSyncFailureClearedByNotModified: the feed goes away and comes back
// with the same set; its first 304 ends the failure in the status, without
// waiting for a new set (issue 23).
func TestSyncFailureClearedByNotModified(t *testing.T) {
	h := NewHandler(HandlerConfig{})
	if err := h.SetDocument(doc("7", "same.test")); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	addr := srv.Listener.Addr().String()
	ups := make(updates, 8)
	s, err := NewSync(SyncConfig{Source: srv.URL + "/v1/indicators", Apply: ups.apply,
		LongPoll: time.Second, MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	if up := ups.next(t); up.Version != "7" {
		t.Fatalf("first set %s", up.Version)
	}
	srv.CloseClientConnections()
	srv.Close()
	e2e.WaitFor(t, "a failed attempt", waitLimit, func() bool { return s.Status().Failures >= 2 })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	back := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	back.Start()
	defer back.Close()
	e2e.WaitFor(t, "the failure to clear on a 304", waitLimit, func() bool {
		st := s.Status()
		return st.Failures == 0 && st.LastError == ""
	})
	ups.none(t)
}

func TestSyncServerDownThenBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: connections are refused
	h := NewHandler(HandlerConfig{})
	if err := h.SetDocument(doc("7", "back.test")); err != nil {
		t.Fatal(err)
	}
	ups := make(updates, 8)
	s, err := NewSync(SyncConfig{Source: "http://" + addr + "/v1/indicators", Apply: ups.apply,
		LongPoll: 30 * time.Second, MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	e2e.WaitFor(t, "three failed attempts", waitLimit, func() bool { return s.Status().Failures >= 3 })
	if st := s.Status(); st.LastError == "" || st.Version != "" {
		t.Fatalf("while down: %+v", st)
	}
	ups.none(t)
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv := &httptest.Server{Listener: ln2, Config: &http.Server{Handler: h}}
	srv.Start()
	defer srv.Close()
	if up := ups.next(t); up.Version != "7" || action(up.Policy, "back.test") != "Block" {
		t.Fatalf("after the server came back: %s", up.Version)
	}
	if st := s.Status(); st.Failures != 0 || st.LastError != "" {
		t.Errorf("status after recovery: %+v", st)
	}
}

func TestSyncBackoff(t *testing.T) {
	s, err := NewSync(SyncConfig{Source: "https://console.example/v1/indicators", Apply: func(Update) {},
		MinBackoff: time.Second, MaxBackoff: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{4, 4 * time.Second, 8 * time.Second},
		{5, 8 * time.Second, 16 * time.Second},
		{6, 15 * time.Second, 30 * time.Second},
		{60, 15 * time.Second, 30 * time.Second},
	} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := s.backoff(tc.n)
			seen[d] = true
			if d < tc.min || d > tc.max {
				t.Errorf("backoff(%d) = %v, want within [%v, %v]", tc.n, d, tc.min, tc.max)
			}
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) has no jitter: %v", tc.n, seen)
		}
	}
}

func TestSyncNotModified(t *testing.T) {
	f := newFeed(t, nil)
	f.publish(t, "v1", "same.test")
	ups := make(updates, 8)
	// A wait under one second is sent as wait=0: the server answers 304 at
	// once and the client polls every LongPoll instead of holding requests.
	s, err := NewSync(SyncConfig{Source: f.url(), Token: "device-token", Apply: ups.apply, LongPoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	if up := ups.next(t); up.Version != "v1" {
		t.Fatalf("first: %s", up.Version)
	}
	e2e.WaitFor(t, "three 304 answers", waitLimit, func() bool { return f.notMod.Load() >= 3 })
	ups.none(t)
	f.mu.Lock()
	inm := append([]string(nil), f.inm...)
	f.mu.Unlock()
	if inm[0] != "" || inm[1] != `"v1"` {
		t.Errorf("If-None-Match sent: %q, want none then \"v1\"", inm)
	}
	if st := s.Status(); st.Version != "v1" || st.LastCheck.IsZero() || st.Failures != 0 {
		t.Errorf("status: %+v", st)
	}
}

func TestSyncWrongToken(t *testing.T) {
	f := newFeed(t, nil)
	f.publish(t, "1", "x.test")
	s, err := NewSync(SyncConfig{Source: f.url(), Token: "stolen", Apply: func(Update) { t.Error("applied with a wrong token") },
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	e2e.WaitFor(t, "the refusal", waitLimit, func() bool { return strings.Contains(s.Status().LastError, "tokenFile") })
}

// TestSyncLongPollPropagation publishes a change on a real feed server while
// the client holds a long poll of 30 s, and prints how long the change took
// to reach Apply (the README's propagation figure). Correctness: the change
// arrives on the held request, long before the poll would have expired,
// with no failed request in between.
func TestSyncLongPollPropagation(t *testing.T) {
	pub, priv := testKey(t)
	f := newFeed(t, priv)
	f.publish(t, "1", "old.test")
	ups := make(updates, 8)
	const wait = 30 * time.Second
	s, err := NewSync(SyncConfig{Source: f.url(), Token: "device-token", PublicKey: pub, Apply: ups.apply, LongPoll: wait,
		Store: openTestStore(t, filepath.Join(t.TempDir(), "indicators.db"))})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	ups.next(t)
	e2e.WaitFor(t, "the long poll to be held", waitLimit, func() bool { return f.requests.Load() == 2 })
	start := time.Now()
	f.publish(t, "2", "old.test", "new.test")
	up := ups.next(t)
	took := time.Since(start)
	if up.Version != "2" || action(up.Policy, "new.test") != "Block" {
		t.Fatalf("got %s, new.test %s", up.Version, action(up.Policy, "new.test"))
	}
	if took >= wait {
		t.Fatalf("the change took %v: it waited for the poll to expire instead of waking it", took)
	}
	if st := s.Status(); st.Failures != 0 || st.LastError != "" {
		t.Errorf("status: %+v", st)
	}
	t.Logf("propagation (publish → compiled policy handed to the agent, signed, stored in bbolt): %v", took)
}

// BenchmarkPropagation measures publish → Apply over a real loopback HTTP
// long poll with signature check, compile and bbolt save; ns/op is the
// propagation delay.
func BenchmarkPropagation(b *testing.B) {
	pub, priv := testKey(b)
	h := NewHandler(HandlerConfig{Key: priv})
	srv := httptest.NewServer(h)
	defer srv.Close()
	if err := h.SetDocument(doc("0", "a.test")); err != nil {
		b.Fatal(err)
	}
	st, err := OpenStore(StoreConfig{Path: filepath.Join(b.TempDir(), "indicators.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ups := make(chan string, 1)
	s, err := NewSync(SyncConfig{Source: srv.URL, PublicKey: pub, Store: st, LongPoll: time.Minute,
		Apply: func(u Update) { ups <- u.Version }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-ups
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		v := fmt.Sprint(i)
		if err := h.SetDocument(doc(v, "a.test", v+".test")); err != nil {
			b.Fatal(err)
		}
		for got := <-ups; got != v; got = <-ups {
		}
	}
	b.StopTimer()
	cancel()
	<-done
}

func TestSyncOversize(t *testing.T) {
	for _, mode := range []string{"", "chunked"} {
		t.Run("mode="+mode, func(t *testing.T) {
			f := newFeed(t, nil)
			f.mode.Store(mode)
			f.publish(t, "big", "a-rather-long-name-to-exceed-the-limit.test")
			s, err := NewSync(SyncConfig{Source: f.url(), Token: "device-token", MaxBody: 100,
				Apply: func(Update) { t.Error("an oversize body was applied") }, MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			run(t, s)
			e2e.WaitFor(t, "the rejection", waitLimit, func() bool { return strings.Contains(s.Status().LastError, ErrTooLarge.Error()) })
		})
	}
}

func TestSyncRestoreWithNetworkDown(t *testing.T) {
	pub, priv := testKey(t)
	dbPath := filepath.Join(t.TempDir(), "indicators.db")
	f := newFeed(t, priv)
	f.publish(t, "5", "stored.test")
	{
		st := openTestStore(t, dbPath)
		ups := make(updates, 8)
		s, err := NewSync(SyncConfig{Source: f.url(), Token: "device-token", PublicKey: pub, Store: st, Apply: ups.apply})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		ups.next(t)
		cancel()
		<-done
		st.Close()
	}
	url := f.url()
	f.srv.Close() // the network is down from now on

	for _, tc := range []struct {
		name    string
		key     ed25519.PublicKey
		applied bool
	}{
		{"same key", pub, true},
		{"no key", nil, true},
		{"other key", ed25519.PublicKey(bytes.Repeat([]byte{1}, ed25519.PublicKeySize)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openTestStore(t, dbPath)
			ups := make(updates, 8)
			s, err := NewSync(SyncConfig{Source: url, PublicKey: tc.key, Store: st, Apply: ups.apply,
				MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ok, err := s.Restore()
			if ok != tc.applied || (err != nil) == tc.applied {
				t.Fatalf("Restore = %v, %v; want applied=%v", ok, err, tc.applied)
			}
			if !tc.applied {
				ups.none(t)
				return
			}
			up := ups.next(t)
			if !up.FromStore || up.Version != "5" || action(up.Policy, "stored.test") != "Block" {
				t.Fatalf("restored: %+v", up)
			}
			run(t, s)
			e2e.WaitFor(t, "a failed fetch", waitLimit, func() bool { return s.Status().Failures > 0 })
			ups.none(t)
			if st := s.Status(); st.Version != "5" {
				t.Errorf("version in force %q, want the stored 5", st.Version)
			}
			st.Close()
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write then rename, as config tools do; the watcher must see it too.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestSyncFileWatched runs the watch in a synctest bubble: its interval
// passes on the bubble's clock, so every change is seen after exactly the
// ticks the debounce needs, whatever the machine's load.
func TestSyncFileWatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 5 * time.Millisecond
		// settle lets the watch see a change at one tick and the file
		// still at the next, and apply it.
		settle := func() {
			time.Sleep(3 * every)
			synctest.Wait()
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "indicators.txt")
		writeFile(t, path, "# a hosts file\n0.0.0.0 hosts.test\n")
		st := openTestStore(t, filepath.Join(dir, "indicators.db"))
		ups := make(updates, 8)
		s, err := NewSync(SyncConfig{Source: "file://" + filepath.ToSlash(path), Store: st, Apply: ups.apply, FileInterval: every})
		if err != nil {
			t.Fatal(err)
		}
		run(t, s)
		synctest.Wait()
		if up := ups.next(t); action(up.Policy, "hosts.test") != "Block" {
			t.Fatalf("hosts file: hosts.test %s", action(up.Policy, "hosts.test"))
		}
		// A change to another format is detected and applied.
		writeFile(t, path, "IndicatorType,IndicatorValue,Action\nDomainName,csv.test,Warn\n")
		settle()
		up := ups.next(t)
		if action(up.Policy, "csv.test") != "Warn" || action(up.Policy, "hosts.test") != "none" {
			t.Fatalf("after the change: csv.test %s hosts.test %s", action(up.Policy, "csv.test"), action(up.Policy, "hosts.test"))
		}
		if r, _, _ := st.Load(); r.Version != up.Version || !strings.Contains(string(r.Body), "csv.test") {
			t.Errorf("store holds %q, want %q", r.Version, up.Version)
		}
		// A broken file is refused, the last good set stays.
		writeFile(t, path, `{"indicators": [`)
		settle()
		if s.Status().LastError == "" {
			t.Error("the broken file was not refused")
		}
		ups.none(t)
		// A removed file is reported, the last good set stays.
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		settle()
		if e := s.Status().LastError; !strings.Contains(e, "does not exist") {
			t.Errorf("after the file was removed: last error %q", e)
		}
		ups.none(t)
		if v := s.Status().Version; v != up.Version {
			t.Errorf("version in force %q, want %q", v, up.Version)
		}
		writeFile(t, path, "feed.test\n")
		settle()
		if up := ups.next(t); action(up.Policy, "feed.test") != "Block" {
			t.Fatalf("after re-creating the file: %s", action(up.Policy, "feed.test"))
		}
	})
}

func TestSyncBuiltinDemo(t *testing.T) {
	ups := make(updates, 8)
	s, err := NewSync(SyncConfig{Source: BuiltinDemo, Apply: ups.apply})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	up := ups.next(t)
	if len(up.Set.Problems) != 0 {
		t.Errorf("the demo set has problems: %v", up.Set.Problems)
	}
	for name, want := range map[string]string{
		"blocked.netward.example": "Block", "www.blocked.netward.example": "Block",
		"allowed.blocked.netward.example": "Allowed", "warned.netward.example": "Warn", "example.net": "Block",
		"netward.example": "none",
	} {
		if got := action(up.Policy, name); got != want {
			t.Errorf("demo %s = %s, want %s", name, got, want)
		}
	}
}

func TestSourceKind(t *testing.T) {
	for _, tc := range []struct {
		src  string
		kind kind
		path string
		err  bool
	}{
		{"https://console.example/v1/indicators", kindHTTP, "", false},
		{"http://192.0.2.1:8470/v1/indicators", kindHTTP, "", false},
		{"file:///etc/netward/indicators.csv", kindFile, "/etc/netward/indicators.csv", false},
		{"file://localhost/etc/x.txt", kindFile, "/etc/x.txt", false},
		{"file:///C:/ProgramData/netward/x.csv", kindFile, "C:/ProgramData/netward/x.csv", false},
		{"builtin:demo", kindBuiltin, "", false},
		{"file://relative/x.csv", 0, "", true},
		{"file://", 0, "", true},
		{"ftp://console.example/x", 0, "", true},
		{"https:///nohost", 0, "", true},
		{"builtin:other", 0, "", true},
	} {
		k, p, err := sourceKind(tc.src)
		if (err != nil) != tc.err || (!tc.err && (k != tc.kind || p != tc.path)) {
			t.Errorf("sourceKind(%q) = %v, %q, %v; want %v, %q, err=%v", tc.src, k, p, err, tc.kind, tc.path, tc.err)
		}
	}
}

func TestPastStub(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("# systemd\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, path, want string }{
		{"127.0.0.53:53", conf, "192.0.2.53:53"},
		{"192.0.2.1:53", conf, "192.0.2.1:53"},
		{"127.0.0.53:53", filepath.Join(dir, "missing"), "127.0.0.53:53"},
	} {
		if got := pastStub(tc.in, tc.path); got != tc.want {
			t.Errorf("pastStub(%q, %s) = %q, want %q", tc.in, tc.path, got, tc.want)
		}
	}
}

func TestNewSyncErrors(t *testing.T) {
	for _, c := range []SyncConfig{
		{Apply: func(Update) {}},
		{Source: BuiltinDemo},
		{Source: BuiltinDemo, Apply: func(Update) {}, PublicKey: []byte{1, 2}},
		{Source: "gopher://x", Apply: func(Update) {}},
	} {
		if _, err := NewSync(c); err == nil {
			t.Errorf("NewSync(%+v) succeeded", c)
		}
	}
}

// A server that caps long polls below the client's wait is still followed
// with back-to-back long polls: after a capped 304 the next request is held
// at once, so a change is not delayed by a client-side pause.
func TestSyncServerCapsWait(t *testing.T) {
	f := &feed{h: NewHandler(HandlerConfig{MaxWait: 1500 * time.Millisecond})}
	f.srv = httptest.NewServer(f)
	defer f.srv.Close()
	f.publish(t, "1", "a.test")
	ups := make(updates, 8)
	const wait = 60 * time.Second
	s, err := NewSync(SyncConfig{Source: f.url(), Apply: ups.apply, LongPoll: wait})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	ups.next(t)
	e2e.WaitFor(t, "a capped 304 and the next held request", waitLimit, func() bool { return f.notMod.Load() >= 1 && f.requests.Load() >= 3 })
	start := time.Now()
	f.publish(t, "2", "b.test")
	if up := ups.next(t); up.Version != "2" {
		t.Fatalf("got %s", up.Version)
	}
	if took := time.Since(start); took >= wait/2 {
		t.Errorf("the change took %v: the client paused instead of long-polling again", took)
	}
}

// TestSyncReload: `netward reload` reads the source at once, while the long
// poll (held for 30 s here) or the file watch (every hour here) would not
// have looked yet; a failing source is reported and the last good set stays.
func TestSyncReload(t *testing.T) {
	t.Run("feed", func(t *testing.T) {
		pub, priv := testKey(t)
		f := newFeed(t, priv)
		f.publish(t, "1", "one.test")
		ups := make(updates, 8)
		s, err := NewSync(SyncConfig{Source: f.url(), Token: "device-token", PublicKey: pub, Apply: ups.apply, LongPoll: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := s.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if up := ups.next(t); up.Version != "1" || action(up.Policy, "one.test") != "Block" {
			t.Fatalf("first reload: %s", up.Version)
		}
		// Unchanged: 304, nothing applied, no error.
		if err := s.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		ups.none(t)
		if f.notMod.Load() != 1 {
			t.Errorf("unchanged reload got %d 304s, want 1", f.notMod.Load())
		}
		f.mode.Store("tamper")
		f.publish(t, "2", "two.test")
		if err := s.Reload(ctx); err == nil || !strings.Contains(err.Error(), "signature") {
			t.Fatalf("tampered reload = %v, want a signature error", err)
		}
		ups.none(t)
		if st := s.Status(); st.Version != "1" || st.LastError == "" {
			t.Errorf("status after the failed reload: %+v", st)
		}
		f.mode.Store("")
		if err := s.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if up := ups.next(t); up.Version != "2" {
			t.Fatalf("reload after the fix: %s", up.Version)
		}
	})
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "list.txt")
		writeFile(t, path, "one.test\n")
		ups := make(updates, 8)
		s, err := NewSync(SyncConfig{Source: "file://" + filepath.ToSlash(path), Apply: ups.apply, FileInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		run(t, s)
		ups.next(t) // read at start
		writeFile(t, path, "two.test\n")
		if err := s.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if up := ups.next(t); action(up.Policy, "two.test") != "Block" || action(up.Policy, "one.test") != "none" {
			t.Fatalf("after reload: two.test %s one.test %s", action(up.Policy, "two.test"), action(up.Policy, "one.test"))
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("reload of a removed file = %v", err)
		}
	})
}

// TestSyncInvalidEntriesKeepTheLastGoodSet is issue 14 §3: a file:// CSV
// whose one row lost a quote loaded as an empty set (blocking off, status
// "errors none", reload exit 0). Now such a set is refused with a reason,
// the last good set stays, Reload returns the error, and OnError hears it
// once; sets made smaller on purpose, or with few invalid entries, apply.
func TestSyncInvalidEntriesKeepTheLastGoodSet(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "indicators.csv")
	const header = "IndicatorType,IndicatorValue,Action\n"
	writeFile(t, path, header+"DomainName,shop.test,Block\nDomainName,a.test,Block\nDomainName,b.test,Block\nDomainName,c.test,Block\n")
	ups := make(updates, 8)
	var mu sync.Mutex
	var told []string
	s, err := NewSync(SyncConfig{Source: "file://" + filepath.ToSlash(path), Apply: ups.apply, FileInterval: time.Hour,
		OnError: func(err error) { mu.Lock(); told = append(told, err.Error()); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if up := ups.next(t); action(up.Policy, "shop.test") != "Block" {
		t.Fatal("first set not applied")
	}
	steps := []struct {
		name    string
		body    string
		refused string // "" = applied
	}{
		{"the issue's file: the header and one row with a stray quote", header + "DomainName,\"oops,Block\n", "every entry of the new set is invalid"},
		{"three of four rows invalid", header + "DomainName,shop.test,Block\nDomainName,a..test,Block\nDomainName,b..test,Block\nDomainName,c..test,Block\n", "more than indicators.maxDropPercent (50%) of the 4 indicators in force"},
		{"one of four invalid", header + "DomainName,shop.test,Block\nDomainName,a.test,Block\nDomainName,b.test,Block\nDomainName,c..test,Block\n", ""},
		{"removed on purpose: one indicator left, none invalid", header + "DomainName,shop.test,Block\n", ""},
		{"a whole-file parse failure", "IndicatorType,IndicatorValue\nDomainName,x.test\n", "header lacks column(s) Action"},
	}
	for _, st := range steps {
		writeFile(t, path, st.body)
		err := s.Reload(ctx)
		if st.refused == "" {
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			ups.next(t)
			continue
		}
		if err == nil || !strings.Contains(err.Error(), st.refused) {
			t.Fatalf("%s: Reload = %v, want an error with %q", st.name, err, st.refused)
		}
		ups.none(t)
		if got := s.Status().LastError; got != err.Error() {
			t.Errorf("%s: status lastError %q", st.name, got)
		}
		if err := s.Reload(ctx); err == nil {
			t.Fatalf("%s: a second reload must fail the same way", st.name)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(told) != 3 {
		t.Errorf("OnError heard %d failures, want 3 (one per distinct failure):\n%s", len(told), strings.Join(told, "\n"))
	}
	for i, w := range []string{"every entry", "maxDropPercent", "header lacks"} {
		if i < len(told) && !strings.Contains(told[i], w) {
			t.Errorf("OnError %d = %q, want %q", i, told[i], w)
		}
	}
}

func TestSyncMaxDropPercentSettings(t *testing.T) {
	for _, tc := range []struct {
		setting int
		ok      bool // 1 invalid entry of 4 held (25 %)
	}{{0, true}, {NoInvalidEntries, false}, {20, false}, {25, true}, {100, true}} {
		path := filepath.Join(t.TempDir(), "l.txt")
		writeFile(t, path, "a.test\nb.test\nc.test\nd.test\n")
		ups := make(updates, 8)
		s, err := NewSync(SyncConfig{Source: "file://" + filepath.ToSlash(path), Apply: ups.apply, MaxDropPercent: tc.setting})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, "a.test\nb.test\nc.test\nbad..test\n")
		if err := s.Reload(context.Background()); (err == nil) != tc.ok {
			t.Errorf("MaxDropPercent %d: Reload = %v, want ok=%v", tc.setting, err, tc.ok)
		}
	}
	if _, err := NewSync(SyncConfig{Source: BuiltinDemo, Apply: func(Update) {}, MaxDropPercent: 101}); err == nil {
		t.Error("MaxDropPercent 101 accepted")
	}
}
