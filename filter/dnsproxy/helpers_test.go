package dnsproxy

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
)

// testUpstream is a real miekg authoritative server on loopback (UDP and
// TCP, same port) answering from a zone of RRs in presentation format.
type testUpstream struct {
	addr    string
	queries atomic.Int64
	mu      sync.Mutex
	zone    map[string][]dns.RR // key: lowercase fqdn + "/" + type
	hook    atomic.Pointer[func(w dns.ResponseWriter, r *dns.Msg) bool]
}

// setHook installs f, called first for every query; returning true means
// it answered.
func (u *testUpstream) setHook(f func(w dns.ResponseWriter, r *dns.Msg) bool) { u.hook.Store(&f) }

func newTestUpstream(t testing.TB, records ...string) *testUpstream {
	t.Helper()
	u := newTestUpstreamAt(t, "127.0.0.1:0", records...)
	if u == nil {
		t.Fatal("cannot listen on loopback")
	}
	return u
}

// newTestUpstreamAt is newTestUpstream on a given address; nil if it cannot
// be bound.
func newTestUpstreamAt(t testing.TB, at string, records ...string) *testUpstream {
	t.Helper()
	u := &testUpstream{zone: map[string][]dns.RR{}}
	for _, r := range records {
		u.add(t, r)
	}
	var pc net.PacketConn
	var ln net.Listener
	for {
		var err error
		if pc, err = net.ListenPacket("udp", at); err != nil {
			return nil
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if !strings.HasSuffix(at, ":0") {
			return nil
		}
	}
	u.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(u.serve)
	us := &dns.Server{PacketConn: pc, Handler: h}
	ts := &dns.Server{Listener: ln, Handler: h}
	go func() { _ = us.ActivateAndServe() }()
	go func() { _ = ts.ActivateAndServe() }()
	t.Cleanup(func() { _ = us.Shutdown(); _ = ts.Shutdown() })
	return u
}

func (u *testUpstream) add(t testing.TB, r string) {
	rr, err := dns.NewRR(r)
	if err != nil {
		t.Fatalf("bad test record %q: %v", r, err)
	}
	k := strings.ToLower(rr.Header().Name) + "/" + dns.TypeToString[rr.Header().Rrtype]
	u.mu.Lock()
	u.zone[k] = append(u.zone[k], rr)
	u.mu.Unlock()
}

// serve answers like a recursive resolver would: it follows CNAMEs inside
// its zone; unknown names get NXDOMAIN with a SOA (negative TTL 30 s).
func (u *testUpstream) serve(w dns.ResponseWriter, r *dns.Msg) {
	u.queries.Add(1)
	if h := u.hook.Load(); h != nil && (*h)(w, r) {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), o.Do())
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	u.mu.Lock()
	found := false
	for range 8 {
		if rrs := u.zone[name+"/"+dns.TypeToString[q.Qtype]]; len(rrs) > 0 {
			m.Answer = append(m.Answer, rrs...)
			found = true
			break
		}
		if c := u.zone[name+"/CNAME"]; len(c) > 0 {
			m.Answer = append(m.Answer, c...)
			name = strings.ToLower(c[0].(*dns.CNAME).Target)
			found = true
			continue
		}
		break
	}
	anyType := false
	for k := range u.zone {
		if strings.HasPrefix(k, name+"/") {
			anyType = true
		}
	}
	u.mu.Unlock()
	if len(m.Answer) == 0 || !found {
		if !anyType {
			m.Rcode = dns.RcodeNameError
		}
		soa, _ := dns.NewRR("example. 300 IN SOA ns.example. h.example. 1 3600 600 86400 30")
		m.Ns = []dns.RR{soa}
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := 512
		if o := r.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// policyDecider is a decision point whose policy a test swaps at run time.
type policyDecider struct{ *filter.DecisionPoint }

func newDecider(t testing.TB, rules ...filter.Rule) *policyDecider {
	d := &policyDecider{filter.NewDecisionPoint(filter.Settings{}, nil)}
	d.set(t, rules...)
	return d
}

func (d *policyDecider) set(t testing.TB, rules ...filter.Rule) {
	t.Helper()
	p, err := filter.Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	d.Set(p, d.State().Settings)
}

func rule(value string, a filter.Action, id string) filter.Rule {
	return filter.Rule{Value: value, Type: filter.TypeDomain, Action: a, ID: id}
}

// startProxy runs a proxy on 127.0.0.1:0 and returns it with its address.
func startProxy(t testing.TB, cfg Config) (*Proxy, string) {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, runProxy(t, p)
}

// runProxy runs p until the test ends and returns its first address.
func runProxy(t testing.TB, p *Proxy) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return p.Addrs()[0].String()
}

// query sends one question with EDNS0 (when edns) over net and returns the reply.
func query(t testing.TB, addr, netw, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	c := &dns.Client{Net: netw, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, dns.TypeToString[qtype], netw, err)
	}
	return r
}

func ede(m *dns.Msg) *dns.EDNS0_EDE {
	if o := m.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if e, ok := opt.(*dns.EDNS0_EDE); ok {
				return e
			}
		}
	}
	return nil
}
