package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/internal/e2e"
)

// Several SO_REUSEPORT sockets share the listen address: clients spread
// over them and every one answers (fast path, general path, refusals); TCP
// still serves; Addrs names the address once; at shutdown every socket of
// the group is closed, so the address can be bound again without
// SO_REUSEPORT.
func TestReusePortSocketsServeAndClose(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr}, Decider: newDecider(t, testRules()...),
		UDPSockets: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	addrs := p.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("Addrs = %v, want the address once over UDP and TCP", addrs)
	}
	addr := addrs[0].String()
	p.mu.Lock()
	socks, served := p.udp, p.served
	p.mu.Unlock()
	if len(socks) != 3 {
		t.Fatalf("%d UDP sockets, want 3", len(socks))
	}
	for _, s := range socks {
		if s.LocalAddr().String() != addr {
			t.Fatalf("socket on %s, want %s", s.LocalAddr(), addr)
		}
	}

	// 48 clients, each from a port of its own: the kernel picks a socket by
	// the client's address and port.
	for i := range 48 {
		name := []string{"allowed.example", "bad.example", fmt.Sprintf("n%d.other.example", i)}[i%3]
		r := query(t, addr, "udp", name, dns.TypeA, i%2 == 0)
		want := map[string]int{"allowed.example": dns.RcodeSuccess, "bad.example": dns.RcodeNameError}[name]
		if !strings.HasPrefix(name, "n") && r.Rcode != want {
			t.Fatalf("%s: rcode %s, want %s", name, dns.RcodeToString[r.Rcode], dns.RcodeToString[want])
		}
	}
	for i, s := range socks {
		if served[s].Load() == 0 {
			t.Errorf("socket %d of 3 read no datagram from 48 clients", i)
		}
	}
	if r := query(t, addr, "tcp", "allowed.example", dns.TypeA, false); len(r.Answer) != 1 {
		t.Errorf("TCP answer = %v", r)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i, s := range socks {
		if _, _, err := s.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("socket %d after Run: read = %v, want closed", i, err)
		}
	}
	// Bound again without SO_REUSEPORT: no socket of the group is left.
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("the address is still held after Run: %v", err)
	}
	pc.Close()
}

// An address already held by a SO_REUSEPORT socket (of this user, which
// the kernel would let the proxy's sockets join and share queries with) is
// refused like any taken address.
func TestReusePortRefusesHeldGroup(t *testing.T) {
	pc, err := reuseConfig(&net.ListenConfig{}).ListenPacket(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	p, err := New(Config{Listen: []string{pc.LocalAddr().String()}, Upstreams: []string{"192.0.2.1"}, Decider: newDecider(t), UDPSockets: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen udp") {
		t.Errorf("Run on an address a SO_REUSEPORT socket holds = %v, want a listen error", err)
	}
}

// The default is one socket per core; an unspecified address gets one.
func TestUDPSocketsDefault(t *testing.T) {
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Decider: newDecider(t)})
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.UDPSockets != runtime.GOMAXPROCS(0) {
		t.Errorf("UDPSockets = %d, want GOMAXPROCS %d", p.cfg.UDPSockets, runtime.GOMAXPROCS(0))
	}
	if specificListen("0.0.0.0:53") || specificListen("[::]:53") || !specificListen("127.0.0.153:53") || !specificListen("[::1]:53") {
		t.Error("specificListen misjudges an address")
	}
}

// A burst of queries for an upstream that never answers does not grow the
// goroutines past the general path's slots (2 × MaxInFlight): the readers
// wait and the kernel's socket buffer holds the rest. When the upstream
// times out every slot comes back and the goroutines end.
func TestBurstBoundsGoroutines(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	const inFlight = 8
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{silent.LocalAddr().String()}, Decider: newDecider(t),
		MaxInFlight: inFlight, Timeout: 300 * time.Millisecond, UDPSockets: 2})
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	addr := runProxy(t, p)
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peak, slots := 0, 0
	for i := range 2000 {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("q%d.burst.example.", i), dns.TypeA)
		b, _ := m.Pack()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			peak, slots = max(peak, runtime.NumGoroutine()), max(slots, len(p.slots))
		}
	}
	// Readers (2 per socket at most), the Run's own (TCP servers, waiters),
	// and a goroutine per slot at most.
	limit := before + 2*inFlight + 2*max(runtime.GOMAXPROCS(0), 2) + 16
	for range 20 {
		peak, slots = max(peak, runtime.NumGoroutine()), max(slots, len(p.slots))
		time.Sleep(10 * time.Millisecond)
	}
	if peak > limit {
		t.Errorf("%d goroutines during the burst, want at most %d (%d before, %d slots)", peak, limit, before, 2*inFlight)
	}
	if slots == 0 {
		t.Error("no slot taken by the burst: the queries never reached the general path")
	}
	e2e.WaitFor(t, "every slot given back", 30*time.Second, func() bool { return len(p.slots) == 0 })
}
