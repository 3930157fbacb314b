package dnsproxy

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// A reply batch sends every reply to its client in the order added, from
// the listening socket it was added for; a destination the socket cannot
// send to (port 0: EINVAL from sendmmsg; an IPv6 or no address on an IPv4
// socket) is dropped without keeping back the ones after it — first in
// the batch, in its middle and last — and the buffers go back to the pool.
func TestReplyBatchOrderAndFailures(t *testing.T) {
	p := &Proxy{}
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	ln1, ln2 := listen(), listen()
	c1, c2 := listen(), listen()
	ap := func(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }
	bad := []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 0),
		netip.AddrPortFrom(netip.MustParseAddr("::1"), 53),
		{},
	}
	r := newReplyBatch()
	add := func(ln *net.UDPConn, to netip.AddrPort, s string) {
		bp := p.getBuf()
		b := append((*bp)[:0], s...)
		r.add(p, ln, bp, b, to)
	}
	for round := range 2 { // the second reuses the first's slots
		add(ln1, bad[0], "lost")
		add(ln1, ap(c1), fmt.Sprint(round, "a1"))
		add(ln2, ap(c2), fmt.Sprint(round, "b1"))
		add(ln1, bad[1], "lost")
		add(ln1, ap(c2), fmt.Sprint(round, "b2"))
		add(ln1, ap(c1), fmt.Sprint(round, "a2"))
		add(ln1, bad[2], "lost")
		add(ln1, ap(c1), fmt.Sprint(round, "a3"))
		add(ln2, bad[0], "lost")
		r.flush()
		expect := func(c *net.UDPConn, want ...string) {
			t.Helper()
			buf := make([]byte, 64)
			for _, w := range want {
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("round %d: waiting for %q: %v", round, w, err)
				}
				if got := string(buf[:n]); got != w {
					t.Fatalf("round %d: got %q, want %q", round, got, w)
				}
				_ = from
			}
		}
		expect(c1, fmt.Sprint(round, "a1"), fmt.Sprint(round, "a2"), fmt.Sprint(round, "a3"))
		// c2's replies come from two sockets: each in its socket's order.
		got := map[string]bool{}
		buf := make([]byte, 64)
		for range 2 {
			_ = c2.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c2.Read(buf)
			if err != nil {
				t.Fatalf("round %d: c2: %v", round, err)
			}
			got[string(buf[:n])] = true
		}
		if !got[fmt.Sprint(round, "b1")] || !got[fmt.Sprint(round, "b2")] {
			t.Fatalf("round %d: c2 got %v", round, got)
		}
		for _, s := range r.socks {
			if s.n != 0 {
				t.Fatalf("round %d: %d replies still held after flush", round, s.n)
			}
			for k := range s.ms {
				if s.ms[k].Buffers[0] != nil || s.bufs[k].bp != nil {
					t.Fatalf("round %d: slot %d still holds its buffer", round, k)
				}
			}
		}
	}
	if len(r.socks) != 2 {
		t.Errorf("%d sockets kept, want 2", len(r.socks))
	}
}

// Forwarded answers an upstream sends together (so that its sockets read
// several per batch) all reach their clients through the proxy.
func TestForwardedBurstAllAnswered(t *testing.T) {
	const n = 32
	up := newTestUpstream(t, testRecords...)
	for i := range n {
		up.add(t, fmt.Sprintf("n%d.example. 300 IN A 192.0.2.%d", i, i+1))
	}
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	up.setHook(func(w dns.ResponseWriter, r *dns.Msg) bool {
		mu.Lock()
		arrived++
		if arrived == n {
			close(all)
		}
		mu.Unlock()
		select { // hold every answer until all queries are in, then let them go at once
		case <-all:
		case <-time.After(3 * time.Second):
		}
		return false
	})
	_, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t)})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			c := new(dns.Client)
			c.Timeout = 5 * time.Second
			m := new(dns.Msg)
			m.SetQuestion(fmt.Sprintf("n%d.example.", i), dns.TypeA)
			r, _, err := c.Exchange(m, addr)
			if err != nil {
				errs <- fmt.Errorf("n%d: %w", i, err)
				return
			}
			want := fmt.Sprintf("192.0.2.%d", i+1)
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != want {
				errs <- fmt.Errorf("n%d: answer %v, want %s", i, r.Answer, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
