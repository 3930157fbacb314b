package dnsproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/internal/guard"
)

// Regression tests for the hostile review of the event-driven upstream
// path (rev21): panics, forged ICMP errors, shutdown, drained sets.

// recorder is an exchanged that records its one outcome and signals it.
type recorder struct {
	mu  sync.Mutex
	n   int
	m   *dns.Msg
	err error
	ch  chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{})} }

func (r *recorder) exchanged(m *dns.Msg, addr string, err error, _ *replyBatch) {
	r.mu.Lock()
	r.n++
	n := r.n
	r.m, r.err = m, err
	r.mu.Unlock()
	if n == 1 {
		close(r.ch)
	}
}

func (r *recorder) wait(t *testing.T, d time.Duration) (*dns.Msg, error) {
	t.Helper()
	select {
	case <-r.ch:
	case <-time.After(d):
		t.Fatalf("no outcome within %v", d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m, r.err
}

func aQuestion(name string) dns.Question {
	return dns.Question{Name: dns.Fqdn(name), Qtype: dns.TypeA, Qclass: dns.ClassINET}
}

// A panic while a socket's reader unpacks an answer answers that query
// SERVFAIL (errPanic), is counted and logged once per interval, and the
// reader goes on: the next queries on the same sockets are answered.
func TestUpstreamReaderPanicAnswersServfail(t *testing.T) {
	up := newTestUpstream(t, "allowed.example. 60 IN A 192.0.2.1")
	var st counters
	var log bytes.Buffer
	u := newUpstreams([]string{up.addr}, 2*time.Second, nil, &st)
	u.panics = guard.New(slog.New(slog.NewTextHandler(&log, nil)))
	defer u.close()
	var boom atomic.Bool
	u.unpackHook = func(m *dns.Msg, b []byte) error {
		if boom.Load() {
			panic("hostile answer")
		}
		return m.Unpack(b)
	}
	boom.Store(true)
	for range 3 {
		if _, _, err := u.exchangeWait(aQuestion("allowed.example"), false, false); !errors.Is(err, errPanic) {
			t.Fatalf("err = %v, want errPanic", err)
		}
	}
	if got := st.panics.Load(); got != 3 {
		t.Errorf("panics = %d, want 3", got)
	}
	if got := strings.Count(log.String(), "recovered from a panic"); got != 1 {
		t.Errorf("logged %d times for 3 panics, want once per interval:\n%s", got, log.String())
	}
	boom.Store(false)
	for range 2 * upSocks {
		if _, _, err := u.exchangeWait(aQuestion("allowed.example"), false, false); err != nil {
			t.Fatalf("after the panics: %v", err)
		}
	}
}

// A panic on the TCP retry's goroutine (after a truncated UDP answer)
// answers SERVFAIL instead of ending the process.
func TestUpstreamTCPRetryPanicRecovered(t *testing.T) {
	up := newTestUpstream(t, "allowed.example. 60 IN A 192.0.2.1")
	up.setHook(func(w dns.ResponseWriter, r *dns.Msg) bool {
		if w.RemoteAddr().Network() != "udp" {
			return false
		}
		m := new(dns.Msg)
		m.SetReply(r)
		m.Truncated = true
		_ = w.WriteMsg(m)
		return true
	})
	var st counters
	u := newUpstreams([]string{up.addr}, 2*time.Second, nil, &st)
	defer u.close()
	u.unpackHook = func(m *dns.Msg, b []byte) error {
		if err := m.Unpack(b); err != nil || m.Truncated {
			return err
		}
		panic("hostile TCP answer")
	}
	_, _, err := u.exchangeWait(aQuestion("allowed.example"), false, false)
	if !errors.Is(err, errPanic) || st.panics.Load() != 1 || st.tcpRetries.Load() != 1 {
		t.Fatalf("err %v, panics %d, tcpRetries %d; want errPanic, 1, 1", err, st.panics.Load(), st.tcpRetries.Load())
	}
}

// panicking is an exchanged whose outcome handling panics.
type panicking struct{ calls atomic.Int32 }

func (p *panicking) exchanged(*dns.Msg, string, error, *replyBatch) {
	p.calls.Add(1)
	panic("outcome handler")
}

// A panic on a timer's goroutine (an attempt's deadline) is recovered and
// counted; the outcome is handed over once.
func TestUpstreamTimerPanicRecovered(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var st counters
	u := newUpstreams([]string{silent.LocalAddr().String()}, 100*time.Millisecond, nil, &st)
	defer u.close()
	p := &panicking{}
	u.exchange(aQuestion("allowed.example"), false, false, p)
	deadline := time.Now().Add(5 * time.Second)
	for st.panics.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if st.panics.Load() != 1 || p.calls.Load() != 1 {
		t.Fatalf("panics %d, outcome calls %d; want 1, 1", st.panics.Load(), p.calls.Load())
	}
}

// One forged ICMP port unreachable (ECONNREFUSED on a connected socket)
// fails only the attempts sent on that socket before it, which move on to
// a fresh socket and are answered; the socket is retired. A flood of them
// at every socket of the upstream never marks it down, and later queries
// succeed.
func TestForgedICMPDoesNotSwitchFilteringOff(t *testing.T) {
	up := newTestUpstream(t, "allowed.example. 60 IN A 192.0.2.1")
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the upstream's shutdown (cleanups run last first)
	up.setHook(func(w dns.ResponseWriter, r *dns.Msg) bool {
		if !strings.HasPrefix(r.Question[0].Name, "slow") {
			return false
		}
		<-release
		m := new(dns.Msg)
		m.SetReply(r)
		a, _ := dns.NewRR(r.Question[0].Name + " 60 IN A 192.0.2.7")
		m.Answer = []dns.RR{a}
		_ = w.WriteMsg(m)
		return true
	})
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t), Timeout: 6 * time.Second})
	const n = 2 * upSocks
	var wg sync.WaitGroup
	answers := make([]*dns.Msg, n)
	for i := range n {
		wg.Go(func() {
			m := new(dns.Msg)
			m.SetQuestion(fmt.Sprintf("slow%d.allowed.example.", i), dns.TypeA)
			answers[i], _, _ = (&dns.Client{Timeout: 10 * time.Second}).Exchange(m, addr)
		})
	}
	u := p.ups.Load()
	pending := func() (socks []*upSock, total int) {
		u.mu.Lock()
		defer u.mu.Unlock()
		for s := range u.all {
			s.mu.Lock()
			if len(s.pending) > 0 {
				socks = append(socks, s)
				total += len(s.pending)
			}
			s.mu.Unlock()
		}
		return socks, total
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, k := pending(); k < n; _, k = pending() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d queries waiting on the upstream", k, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	socks, _ := pending()
	// One forged error on one socket: only its attempts are failed.
	s := socks[0]
	s.mu.Lock()
	onS := len(s.pending)
	s.mu.Unlock()
	errsBefore := p.stats.upErrors.Load()
	s.unreachable(syscall.ECONNREFUSED)
	if got := p.stats.upErrors.Load() - errsBefore; got != uint64(onS) {
		t.Errorf("one ICMP error failed %d attempts, want the %d sent on its socket", got, onS)
	}
	if s.usable() {
		t.Error("the socket that got the ICMP error is not retired")
	}
	// A flood of them at every socket the spoofer could have found (those
	// open before its first error; the fresh ones the attempts moved to
	// have new random ports).
	for range 3 {
		for _, s := range socks {
			s.unreachable(syscall.ECONNREFUSED)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.downUntil.Load() != 0 || p.consecFails.Load() != 0 {
		t.Fatalf("forged ICMP errors marked the upstreams down (consecutive failures %d)", p.consecFails.Load())
	}
	free()
	wg.Wait()
	ok := 0
	for _, a := range answers {
		if a != nil && a.Rcode == dns.RcodeSuccess && len(a.Answer) == 1 {
			ok++
		}
	}
	// Attempts refused three times in a row (1 s each) may have run out of
	// tries; the rest are answered.
	if ok == 0 {
		t.Fatalf("no query answered after the forged ICMP errors")
	}
	for range 5 {
		if r := query(t, addr, "udp", "allowed.example.", dns.TypeA, false); r.Rcode != dns.RcodeSuccess {
			t.Fatalf("after the forged ICMP errors: %s", dns.RcodeToString[r.Rcode])
		}
	}
}

// failSent fails only the attempts added before the error was read.
func TestICMPErrorFailsOnlyEarlierAttempts(t *testing.T) {
	var st counters
	up := newTestUpstream(t)
	u := newUpstreams([]string{up.addr}, time.Hour, nil, &st)
	defer u.close()
	before, after := &deliverRecorder{}, &deliverRecorder{}
	s, a1 := pendingSock(t, u, aQuestion("a.example"), before)
	upTo := a1.seq
	f := &upFetch{u: u, req: upQuery{q: aQuestion("b.example")}, done: after, deadline: time.Now().Add(time.Hour), attempts: 1, k: 1}
	a2 := &upAttempt{f: f, s: s, dl: f.deadline}
	if err := s.add(a2); err != nil {
		t.Fatal(err)
	}
	s.failSent(upTo, syscall.ECONNREFUSED)
	if before.done != 1 || !errors.Is(before.err, syscall.ECONNREFUSED) {
		t.Errorf("earlier attempt: done %d err %v", before.done, before.err)
	}
	if after.done != 0 || a2.state.Load() {
		t.Errorf("the attempt added after the error was failed: %v", after.err)
	}
}

// A real closed port (ICMP errors on the old socket and on the fresh one)
// still fails fast, and the failure counts against the upstream.
func TestClosedPortUpstreamFailsFast(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	var st counters
	u := newUpstreams([]string{addr}, 4*time.Second, nil, &st)
	defer u.close()
	for i := range 3 {
		start := time.Now()
		_, _, err := u.exchangeWait(aQuestion("a.example"), false, false)
		if !errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, errNotCounted) || time.Since(start) > time.Second {
			t.Fatalf("try %d: %v after %v; want a counted ECONNREFUSED at once", i, err, time.Since(start))
		}
	}
}

// An answer that comes after its attempt timed out is counted as late,
// not as a forgery.
func TestLateAnswerCountedLate(t *testing.T) {
	var st counters
	up := newTestUpstream(t)
	u := newUpstreams([]string{up.addr}, time.Hour, nil, &st)
	defer u.close()
	rec := &deliverRecorder{}
	s, a := pendingSock(t, u, aQuestion("allowed.example"), rec)
	a.expire()
	m := new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	m.Response, m.Id = true, a.id
	b, _ := m.Pack()
	s.deliver(b, 0, s.peer, nil)
	if st.lateReplies.Load() != 1 || st.badReplies.Load() != 0 {
		t.Fatalf("late %d bad %d, want 1, 0", st.lateReplies.Load(), st.badReplies.Load())
	}
}

// A datagram that fills the read buffer (possibly cut) sends its attempt to
// TCP only if its header and question match; else it is dropped and the
// attempt keeps waiting.
func TestFullBufferDatagramQuestionChecked(t *testing.T) {
	var st counters
	up := newTestUpstream(t)
	u := newUpstreams([]string{up.addr}, time.Hour, nil, &st)
	defer u.close()
	rec := &deliverRecorder{}
	s, a := pendingSock(t, u, aQuestion("allowed.example"), rec)
	m := new(dns.Msg)
	m.SetQuestion("other.example.", dns.TypeA)
	m.Response, m.Id = true, a.id
	b, _ := m.Pack()
	b = append(b, make([]byte, upstreamReadSize-len(b))...)
	s.deliver(b, 0, s.peer, nil)
	if st.badReplies.Load() != 1 || st.tcpRetries.Load() != 0 || a.state.Load() {
		t.Fatalf("bad %d tcpRetries %d taken %v; want 1, 0, false", st.badReplies.Load(), st.tcpRetries.Load(), a.state.Load())
	}
	if !questionMatches(append([]byte(nil), packQ(t, "Allowed.Example.", a.id)...), a.id, aQuestion("allowed.example")) {
		t.Error("a matching question (other case) is not recognised")
	}
}

func packQ(t *testing.T, name string, id uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.Response, m.Id = true, id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An exchange that runs out of time before any attempt says so (not
// "%!w(<nil>)").
func TestNoAttemptError(t *testing.T) {
	var st counters
	u := newUpstreams([]string{"127.0.0.1:1"}, time.Second, nil, &st)
	defer u.close()
	rec := newRecorder()
	f := &upFetch{u: u, done: rec, deadline: time.Now().Add(-time.Second), attempts: 2}
	f.next(nil, nil)
	_, err := rec.wait(t, time.Second)
	if !errors.Is(err, errNoAttempt) || strings.Contains(err.Error(), "%!") {
		t.Fatalf("err = %v", err)
	}
}

// Run's shutdown does not wait out the upstream timeout for a TCP client's
// query waiting on a silent upstream (it took the whole timeout).
func TestShutdownDoesNotWaitForUpstream(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{silent.LocalAddr().String()},
		Decider: newDecider(t, testRules()...), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { _ = p.Run(ctx); close(ran) }()
	<-p.Ready()
	var tcpAddr string
	for _, a := range p.Addrs() {
		if a.Network() == "tcp" {
			tcpAddr = a.String()
		}
	}
	go func() {
		m := new(dns.Msg)
		m.SetQuestion("allowed.example.", dns.TypeA)
		_, _, _ = (&dns.Client{Net: "tcp", Timeout: 20 * time.Second}).Exchange(m, tcpAddr)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for p.stats.cacheMisses.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	<-ran
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Run returned %v after cancel; want well under the 10 s upstream timeout", d)
	}
}

// A drained upstream set sends its queries' failover attempts on shared
// sockets, not on a new socket (and reader) per attempt.
func TestDrainedSetSharesSockets(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var st counters
	u := newUpstreams([]string{silent.LocalAddr().String()}, 2*time.Second, nil, &st)
	defer u.close()
	for i := range 10 {
		u.exchange(dns.Question{Name: fmt.Sprintf("n%d.example.", i), Qtype: dns.TypeA, Qclass: dns.ClassINET}, false, false, newRecorder())
	}
	u.drain()
	g0 := runtime.NumGoroutine()
	for i := range 300 {
		u.exchange(dns.Question{Name: fmt.Sprintf("d%d.example.", i), Qtype: dns.TypeA, Qclass: dns.ClassINET}, false, false, newRecorder())
	}
	u.mu.Lock()
	n := len(u.all)
	u.mu.Unlock()
	if n > upSocks || runtime.NumGoroutine()-g0 > 10 {
		t.Fatalf("drained set: %d sockets, goroutines +%d after 300 exchanges; want at most %d sockets",
			n, runtime.NumGoroutine()-g0, upSocks)
	}
}

// Run closes the upstream sets it replaced (host resolvers changed) when
// it returns: no query goes to an old upstream afterwards.
func TestRunClosesDrainedSets(t *testing.T) {
	s1, err := net.ListenPacket("udp", "127.0.0.78:53")
	if err != nil {
		t.Skip(err)
	}
	defer s1.Close()
	s2, err := net.ListenPacket("udp", "127.0.0.79:53")
	if err != nil {
		t.Skip(err)
	}
	defer s2.Close()
	got2 := make(chan time.Time, 10)
	go func() {
		b := make([]byte, 2048)
		for {
			if _, _, err := s2.ReadFrom(b); err != nil {
				return
			}
			got2 <- time.Now()
		}
	}()
	rc := t.TempDir() + "/resolv.conf"
	if err := os.WriteFile(rc, []byte("nameserver 127.0.0.78\nnameserver 127.0.0.79\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, ResolvConf: rc, Decider: newDecider(t, testRules()...), Timeout: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p.resolverEvery = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { _ = p.Run(ctx); close(ran) }()
	<-p.Ready()
	c, err := net.Dial("udp", p.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	b, _ := m.Pack()
	_, _ = c.Write(b)
	time.Sleep(100 * time.Millisecond)
	if err := os.WriteFile(rc, []byte("nameserver 127.0.0.80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(p.Stats().Upstreams, []string{"127.0.0.80:53"}) {
		if time.Now().After(deadline) {
			t.Fatal("the new resolvers were not taken")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-ran
	ret := time.Now()
	select {
	case at := <-got2:
		if at.After(ret) {
			t.Errorf("the drained set's second upstream got a query %v after Run returned", at.Sub(ret))
		}
	case <-time.After(2500 * time.Millisecond):
	}
}
