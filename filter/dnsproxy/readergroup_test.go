package dnsproxy

// The readers of a fast-path socket (readerGroup): a reader that waits
// never leaves its socket unread, and the fast path's misses end with Run.
// (Review 41's evidence, renamed once fixed.)

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
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
// from the wire (here a blocked name). The helpers sleep on
// readerGroup.more, so the reader about to wait wakes one (without that
// the whole socket stalled while the first reader waited). The wait used
// here is generalUDP's slot bound (p.slots full: 2 × MaxInFlight
// general-path datagrams in flight, as under a burst of unusual queries to
// a slow upstream).
func TestFirstReaderWaitingForSlotDoesNotStallSocket(t *testing.T) {
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
	r, err := askBlocked(t, c)
	if err != nil {
		t.Fatalf("a blocked name was not answered while one reader waits for a general-path slot (the socket stalled): %v", err)
	}
	if r.Id != 0xbad || (r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0) {
		t.Errorf("reply %v; want the refusal of bad.example", r)
	}
}

// askBlocked sends bad.example (id 0xbad) on c and reads one reply, waiting
// at most 3 s: the error is the read's (a stalled socket) or the unpack's.
func askBlocked(t *testing.T, c net.Conn) (*dns.Msg, error) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("bad.example.", dns.TypeA)
	m.Id = 0xbad
	b, _ := m.Pack()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	k, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:k]); err != nil {
		return nil, fmt.Errorf("unpack the reply: %w", err)
	}
	return r, nil
}

// Run returns with fast-path misses still waiting for a silent upstream,
// and leaves no goroutine behind (timers, upstream readers, socket
// readers, helpers).
func TestRunStopsWithFastMissesInFlight(t *testing.T) {
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
// one, none of them busy, so a helper waiting for a busy batch would never
// be woken and one goroutine would serve the whole listen address — on
// Windows the host's whole DNS under NRPT capture. There every reader of
// the group reads the socket (readerGroup.every), unwoken.
func TestEveryReaderReadsWhereReadsAreSingle(t *testing.T) {
	if g := newReaderGroup(); g.every != (runtime.GOOS != "linux") {
		t.Errorf("every reader reads: %v on %s; want it wherever ReadBatch is not recvmmsg (all but linux)", g.every, runtime.GOOS)
	}
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
	g.every = true
	helper := newUDPWorker(p, pc)
	helper.group, helper.helper = g, true
	backlog := make([]int, 100)
	for i := range backlog {
		backlog[i] = 1 // what ReadBatch returns off Linux, whatever is queued
	}
	helper.batch = &fakeBatch{reads: backlog}
	done := make(chan struct{})
	go func() { helper.run(); close(done) }() // nobody wakes it
	select {
	case <-done: // read everything, then ErrClosed
	case <-time.After(5 * time.Second):
		t.Fatal("a helper of a group whose reads are single datagrams waited to be woken: one reader serves the socket")
	}
	if got := p.Stats().Rejected; got != uint64(len(backlog)) {
		t.Errorf("the helper read %d datagrams, want %d", got, len(backlog))
	}
}

// Under a burst on shared sockets (one timer each), no query fails before
// its deadline: each of its attempts waited its share of the timeout
// (a lower bound: timers never fire early, so this is not timing-flaky).
// The count of attempts is: a second attempt is begun only before the
// query's deadline (upFetch.next), so a first attempt's expiry run half the
// timeout late leaves its query one. The timeout is long beside a loaded
// machine's scheduling delays (at 300 ms: 1 failed run of 50 beside two
// busy loops).
func TestNoAttemptFailsEarlyUnderBurst(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var st counters
	const timeout = 2 * time.Second
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

// A first reader whose cache miss waits for a new upstream socket's dial
// (held here in Config.UpstreamControl) wakes a helper first: the socket's
// blocked names are still answered meanwhile.
func TestFirstReaderDialingDoesNotStallSocket(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	dialing, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	hold := func(string, string, syscall.RawConn) error {
		once.Do(func() { close(dialing); <-release })
		return nil
	}
	_, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t, testRules()...), UpstreamControl: hold})
	free := func() { released.Do(func() { close(release) }) }
	t.Cleanup(free) // before Run stops (cleanups run last first)
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	miss := new(dns.Msg)
	miss.SetQuestion("allowed.example.", dns.TypeA)
	miss.Id = 0xa11
	b, _ := miss.Pack()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	<-dialing
	r, err := askBlocked(t, c)
	if err != nil {
		t.Fatalf("a blocked name was not answered while one reader dials an upstream socket (the socket stalled): %v", err)
	}
	if r.Id != 0xbad {
		t.Fatalf("first reply %v; want the refusal of bad.example before the held miss", r)
	}
	free()
	buf := make([]byte, 1500)
	k, err := c.Read(buf)
	if err != nil {
		t.Fatalf("the held miss was not answered once its dial went on: %v", err)
	}
	var held dns.Msg
	if err := held.Unpack(buf[:k]); err != nil || held.Id != 0xa11 || held.Rcode != dns.RcodeSuccess || len(held.Answer) != 1 {
		t.Errorf("reply %v (%v); want the answer for allowed.example", &held, err)
	}
}

// A panic while a cache miss's upstream query is begun (here in the dial,
// through Config.UpstreamControl) ends its call: the query gets SERVFAIL,
// its in-flight count is given back, and the next query for the name
// starts a new call and is answered instead of joining one that never
// completes.
func TestPanicBeginningFetchEndsCall(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	var dials atomic.Int32
	control := func(string, string, syscall.RawConn) error {
		if dials.Add(1) == 1 {
			panic("dial")
		}
		return nil
	}
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t), UpstreamControl: control})
	if r := query(t, addr, "udp", "allowed.example", dns.TypeA, false); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("the query whose fetch panicked: %v; want SERVFAIL", r)
	}
	if r := query(t, addr, "udp", "allowed.example", dns.TypeA, false); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("the next query for the name: %v; want its answer", r)
	}
	waitInFlightZero(p)
	if st := p.Stats(); st.Panics != 1 || st.InFlight != 0 {
		t.Errorf("panics %d, in flight %d; want 1, 0", st.Panics, st.InFlight)
	}
	p.callsMu.Lock()
	n := len(p.calls)
	p.callsMu.Unlock()
	if n != 0 {
		t.Errorf("%d calls left; want none", n)
	}
}
