package dnsproxy

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
)

// fakeWriter is a dns.ResponseWriter that keeps what the handler wrote.
type fakeWriter struct {
	out *dns.Msg
}

func (w *fakeWriter) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *fakeWriter) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (w *fakeWriter) WriteMsg(m *dns.Msg) error   { w.out = m; _, err := m.Pack(); return err }
func (w *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *fakeWriter) Close() error                { return nil }
func (w *fakeWriter) TsigStatus() error           { return nil }
func (w *fakeWriter) TsigTimersOnly(bool)         {}
func (w *fakeWriter) Hijack()                     {}

// hostileSeeds are requests a client can send: truncated headers, wrong
// class, giant EDNS0, long labels, compression loops.
func hostileSeeds() [][]byte {
	pack := func(f func(m *dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion("allowed.example.", dns.TypeA)
		f(m)
		b, _ := m.Pack()
		return b
	}
	ok := pack(func(*dns.Msg) {})
	seeds := [][]byte{
		ok,
		ok[:5],  // truncated header
		ok[:14], // truncated question
		pack(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }),
		pack(func(m *dns.Msg) {
			m.SetEdns0(65535, true)
			o := m.IsEdns0()
			for range 200 {
				o.Option = append(o.Option, &dns.EDNS0_PADDING{Padding: make([]byte, 200)})
			}
		}),
		pack(func(m *dns.Msg) { m.Question[0].Name = "bad.example." }),
		pack(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeHTTPS }),
	}
	// A label of 64 octets (RFC 1035 allows 63).
	long := append([]byte(nil), ok[:12]...)
	long = append(long, 64)
	long = append(long, []byte(strings.Repeat("a", 64))...)
	long = append(long, 0, 0, 1, 0, 1)
	seeds = append(seeds, long)
	// A question name that is a compression pointer to itself.
	loop := append([]byte(nil), ok[:12]...)
	loop = append(loop, 0xC0, 12, 0, 1, 0, 1)
	seeds = append(seeds, loop)
	return seeds
}

// FuzzRequest drives the request path as the server does — header accept
// check, unpack, handler — with arbitrary bytes. A reply must always pack,
// and a blocked name must never get a relayed answer.
func FuzzRequest(f *testing.F) {
	for _, s := range hostileSeeds() {
		f.Add(s)
	}
	// Real queries captured from dig (testdata/*.bin).
	files, _ := filepath.Glob("testdata/*.bin")
	if len(files) == 0 {
		f.Fatal("no captured queries in testdata/")
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	up := newTestUpstream(f, testRecords...)
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr}, Decider: newDecider(f, testRules()...),
		Sink: netip.MustParseAddr("127.0.0.154"), StripECH: true, Timeout: 200 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	p.ups.Store(newUpstreams([]string{up.addr}, 200*time.Millisecond, nil, &p.stats))
	p.baseCtx = f.Context()
	h := handler{p: p, proto: "udp"}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 12 {
			return // the server drops what has no header
		}
		var dh dns.Header
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return // the server answers FORMERR from the header alone (miekg)
		}
		dh.Id = req.Id
		dh.Qdcount = uint16(len(req.Question))
		dh.Ancount = uint16(len(req.Answer))
		dh.Nscount = uint16(len(req.Ns))
		dh.Arcount = uint16(len(req.Extra))
		if req.Response {
			dh.Bits |= 1 << 15
		}
		dh.Bits |= uint16(req.Opcode&0xF) << 11
		if acceptQuery(dh) != dns.MsgAccept {
			return
		}
		w := &fakeWriter{}
		h.ServeDNS(w, req)
		if w.out == nil {
			t.Fatal("no reply")
		}
		if d := p.cfg.Decider.DecideName(canonical(req.Question[0].Name)); d.Verdict == filter.VerdictBlock {
			for _, rr := range w.out.Answer {
				if a, ok := rr.(*dns.A); ok && !a.A.Equal(net.IPv4zero) {
					t.Fatalf("blocked name answered %v", rr)
				}
			}
		}
	})
}

func TestHostileOverTheWire(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t, testRules()...)})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, s := range hostileSeeds() {
		if _, err := c.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	// A flood of valid queries; every one gets some answer or is dropped,
	// and the proxy still answers afterwards.
	q := new(dns.Msg)
	q.SetQuestion("allowed.example.", dns.TypeA)
	wire, _ := q.Pack()
	for range 2000 {
		_, _ = c.Write(wire)
	}
	// The flood may still fill the socket buffer, and while its cache
	// misses wait on the upstream the in-flight bound answers REFUSED (as
	// documented): retry like a stub resolver.
	var r *dns.Msg
	for range 20 {
		m := new(dns.Msg)
		m.SetQuestion("allowed.example.", dns.TypeA)
		if r, _, err = (&dns.Client{Timeout: time.Second}).Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r == nil || len(r.Answer) != 1 {
		t.Fatalf("after hostile input: %v", r)
	}
	r = query(t, addr, "tcp", "bad.example", dns.TypeA, true)
	if r.Rcode != dns.RcodeNameError {
		t.Fatalf("after hostile input: %v", r)
	}
	if st := p.Stats(); st.Rejected == 0 {
		t.Errorf("rejected = 0; the malformed and wrong-class queries must be counted")
	}
}
