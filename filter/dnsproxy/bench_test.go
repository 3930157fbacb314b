package dnsproxy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// benchProxy is a proxy wired to a real loopback upstream, driven in-process
// through its handler (no client sockets), so the benchmarks measure the
// request path itself.
func benchProxy(b *testing.B, cacheSize int) handler {
	up := newTestUpstream(b, testRecords...)
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr}, Decider: newDecider(b, testRules()...),
		Sink: netip.MustParseAddr("127.0.0.154"), CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	p.ups.Store(newUpstreams([]string{up.addr}, time.Second, nil, &p.stats))
	p.baseCtx = b.Context()
	return handler{p: p, proto: "udp"}
}

func benchQuery(name string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.SetEdns0(1232, false)
	return m
}

// BenchmarkBaseline is the floor: a handler that only builds a reply to the
// question, as a bare miekg server would.
func BenchmarkBaseline(b *testing.B) {
	req := benchQuery("allowed.example.")
	w := &fakeWriter{}
	a, _ := dns.NewRR("allowed.example. 300 IN A 192.0.2.10")
	b.ReportAllocs()
	for b.Loop() {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Answer = []dns.RR{a}
		_ = w.WriteMsg(m)
	}
}

func BenchmarkBlocked(b *testing.B) {
	h := benchProxy(b, DefaultCacheSize)
	req := benchQuery("www.bad.example.")
	w := &fakeWriter{}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeDNS(w, req)
	}
}

func BenchmarkCached(b *testing.B) {
	h := benchProxy(b, DefaultCacheSize)
	req := benchQuery("allowed.example.")
	w := &fakeWriter{}
	h.ServeDNS(w, req)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeDNS(w, req)
	}
}

func BenchmarkUncached(b *testing.B) {
	h := benchProxy(b, -1)
	req := benchQuery("allowed.example.")
	w := &fakeWriter{}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeDNS(w, req)
	}
}

// TestAllocationBudget pins the allocations of the blocked and cached paths
// (reply building included; the fake writer packs the reply like the server).
func TestAllocationBudget(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr}, Decider: newDecider(t, testRules()...)})
	if err != nil {
		t.Fatal(err)
	}
	p.ups.Store(newUpstreams([]string{up.addr}, time.Second, nil, &p.stats))
	p.baseCtx = t.Context()
	h := handler{p: p, proto: "udp"}
	w := &fakeWriter{}
	for _, tt := range []struct {
		name   string
		req    *dns.Msg
		budget float64
	}{
		{"blocked", benchQuery("www.bad.example."), 24},
		{"cached", benchQuery("allowed.example."), 16},
	} {
		h.ServeDNS(w, tt.req)
		if n := testing.AllocsPerRun(200, func() { h.ServeDNS(w, tt.req) }); n > tt.budget {
			t.Errorf("%s: %.0f allocations per query, budget %.0f", tt.name, n, tt.budget)
		}
	}
}

// BenchmarkCachedWire is BenchmarkCached on the wire fast path the UDP
// readers take: parse the datagram, look up, decide, build the reply bytes.
func BenchmarkCachedWire(b *testing.B) {
	h := benchProxy(b, DefaultCacheSize)
	req := benchQuery("allowed.example.")
	h.ServeDNS(&fakeWriter{}, req)
	pkt, _ := req.Pack()
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	var q wireQuery
	name := make([]byte, 0, 256)
	out := make([]byte, 0, upstreamUDPSize)
	b.ReportAllocs()
	for b.Loop() {
		var ok bool
		if name, ok = parseQuery(pkt, &q, name[:0]); !ok {
			b.Fatal("refused")
		}
		if out, ok = h.p.fastReply(&q, &name, time.Now(), from, out[:0]); !ok {
			b.Fatal("declined")
		}
	}
}
