package dnsproxy

// Review evidence (branch rev41, reviewing i21lat). These tests are
// expected to FAIL on i21lat and pass on main where noted.

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// servedTotal is the datagrams read from every fast-path socket.
func servedTotal(p *Proxy) uint64 {
	var n uint64
	for _, c := range p.served {
		n += c.Load()
	}
	return n
}

// One reader waiting inside the processing of a datagram must not stop
// the socket: the other readers still answer what the fast path answers
// from the wire (here a blocked name). On main the socket's other reader
// does; on i21lat the helper sleeps on readerGroup.more (woken only by a
// busy batch), so the whole socket stalls while the first reader waits.
// The wait used here is generalUDP's slot bound (p.slots full: 2 ×
// MaxInFlight general-path datagrams in flight, as under a burst of
// unusual queries to a slow upstream); an upstream socket's Write that
// waits for room (fastMiss now writes on the reader) stalls it the same way.
func TestRev41BlockedFirstReaderStallsSocket(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t, testRules()...)})
	taken := 0
	for len(p.slots) < cap(p.slots) {
		p.slots <- struct{}{}
		taken++
	}
	defer func() {
		for range taken {
			select {
			case <-p.slots:
			default:
			}
		}
	}()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// An unusual query (a name outside the fast path's form): its reader
	// waits for a slot in generalUDP.
	odd := new(dns.Msg)
	odd.SetQuestion(`odd\$name.example.`, dns.TypeA)
	b, _ := odd.Pack()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	for servedTotal(p) < 1 {
		runtime.Gosched()
	}
	// A blocked name, from the same client socket (so to the same
	// listening socket of the SO_REUSEPORT group): answered from the wire
	// by whichever reader reads it.
	m := new(dns.Msg)
	m.SetQuestion("bad.example.", dns.TypeA)
	m.Id = 0xbad
	b, _ = m.Pack()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	k, err := c.Read(buf)
	if err != nil {
		t.Fatalf("a blocked name was not answered while one reader waits for a general-path slot (the socket stalled): %v", err)
	}
	var r dns.Msg
	if err := r.Unpack(buf[:k]); err != nil || r.Id != 0xbad || (r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0) {
		t.Errorf("reply %v (%v); want the refusal of bad.example", &r, err)
	}
}

// Run returns with fast-path misses still waiting for a silent upstream,
// and leaves no goroutine behind (timers, upstream readers, socket
// readers, helpers).
func TestRev41RunStopsWithFastMissesInFlight(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	before := runtime.NumGoroutine()
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{silent.LocalAddr().String()},
		Decider: newDecider(t), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-p.Ready()
	c, err := net.Dial("udp", p.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("w%d.example.", i), dns.TypeA)
		b, _ := m.Pack()
		_, _ = c.Write(b)
	}
	for p.Stats().InFlight < n {
		runtime.Gosched()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return with fast-path misses in flight")
	}
	c.Close()
	if got := p.Stats().InFlight; got != 0 {
		t.Errorf("in flight after Run returned: %d; want 0 (every miss answered or failed)", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Run, %d before:\n%s", g, before, buf[:runtime.Stack(buf, true)])
	}
}

// Off Linux x/net's ReadBatch reads one datagram per call (ipv4/batch.go:
// the default case, n = 1), and reusePortBuilt is false (one socket per
// address): a backlog of a hundred queries is read as a hundred batches of
// one, none of them busy (busyBatch = 8), so the helper readers are never
// woken and one goroutine serves the whole listen address — on Windows the
// host's whole DNS under NRPT capture, cache misses' upstream writes
// (fastMiss) included. On main every reader read the socket.
func TestRev41HelperWokenWhenReadsReturnOneDatagram(t *testing.T) {
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Decider: newDecider(t)})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	g := newReaderGroup()
	first := newUDPWorker(p, pc)
	first.group = g
	backlog := make([]int, 100)
	for i := range backlog {
		backlog[i] = 1 // what ReadBatch returns off Linux, whatever is queued
	}
	first.batch = &fakeBatch{reads: backlog}
	for range backlog {
		first.step()
	}
	select {
	case <-g.more:
	default:
		t.Fatal("a backlog read one datagram at a time (non-Linux ReadBatch) never woke a helper: one reader serves the socket")
	}
}

// Under a burst on shared sockets (one timer each), no query fails before
// its deadline: each of its attempts waited its share of the timeout
// (a lower bound: timers never fire early, so this is not timing-flaky).
func TestRev41NoAttemptFailsEarlyUnderBurst(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var st counters
	const timeout = 300 * time.Millisecond
	u := newUpstreams([]string{silent.LocalAddr().String()}, timeout, nil, &st)
	defer u.close()
	const n = 300
	type res struct {
		d   time.Duration
		err error
	}
	out := make(chan res, n)
	for i := range n {
		go func() {
			start := time.Now()
			_, _, err := u.exchangeWait(aQuestion(fmt.Sprintf("b%d.example", i)), false, false)
			out <- res{time.Since(start), err}
		}()
	}
	for range n {
		r := <-out
		if r.err == nil {
			t.Fatal("a silent upstream answered")
		}
		if r.d < timeout {
			t.Errorf("failed after %v, before its %v timeout: %v", r.d, timeout, r.err)
		}
	}
	if got := st.upErrors.Load(); got != 2*n {
		t.Errorf("failed attempts %d, want %d", got, 2*n)
	}
}
