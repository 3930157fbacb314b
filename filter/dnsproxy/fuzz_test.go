package dnsproxy

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/internal/guard"
)

// bareHeader is the 12-byte message of issue 14: a query header announcing
// one question (QDCOUNT=1) followed by no question bytes. miekg/dns unpacks
// it without error and without a question.
var bareHeader = []byte{0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}

// hostileSeeds are requests a client can send: truncated headers, header
// counts that lie, wrong class, giant EDNS0, long labels, compression loops.
func hostileSeeds() [][]byte {
	pack := func(f func(m *dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion("allowed.example.", dns.TypeA)
		f(m)
		b, _ := m.Pack()
		return b
	}
	ok := pack(func(*dns.Msg) {})
	withCounts := func(b []byte, qd, an, ns, ar uint16) []byte {
		b = append([]byte(nil), b...)
		binary.BigEndian.PutUint16(b[4:], qd)
		binary.BigEndian.PutUint16(b[6:], an)
		binary.BigEndian.PutUint16(b[8:], ns)
		binary.BigEndian.PutUint16(b[10:], ar)
		return b
	}
	seeds := [][]byte{
		ok,
		bareHeader,
		withCounts(ok[:12], 1, 0, 0, 1), // an OPT announced, nothing there
		withCounts(ok, 1, 0, 0, 1),      // the question, the OPT missing
		withCounts(ok, 2, 0, 0, 0),      // two questions announced, one sent
		withCounts(ok, 0, 0, 0, 0),      // no question announced, one sent
		ok[:5],                          // truncated header
		ok[:14],                         // truncated question
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
		pack(func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }),
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

// captured are real queries captured from dig (testdata/*.bin).
func captured(t testing.TB) [][]byte {
	files, _ := filepath.Glob("testdata/*.bin")
	if len(files) == 0 {
		t.Fatal("no captured queries in testdata/")
	}
	var out [][]byte
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// exchangeRaw sends b as one DNS message to addr over netw ("udp": one
// datagram from a fresh socket; "tcp": one length-prefixed message on a fresh
// connection) and returns the reply, or nil when none came within wait.
func exchangeRaw(t testing.TB, netw, addr string, b []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.Dial(netw, addr)
	if err != nil {
		t.Fatalf("dial %s %s: %v", netw, addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	msg := b
	if netw == "tcp" {
		msg = binary.BigEndian.AppendUint16(nil, uint16(len(b)))
		msg = append(msg, b...)
	}
	if _, err := c.Write(msg); err != nil {
		return nil // the proxy closed a TCP connection it did not like
	}
	if netw == "udp" {
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err != nil {
			return nil
		}
		return buf[:n]
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil
	}
	return buf
}

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

// fuzzProxy is a proxy on real loopback sockets for the fuzz targets and the
// entry-point tests: the policy of testRules, a real upstream, the cache
// warmed with the allowed names so cached queries take the UDP wire fast path.
type fuzzProxy struct {
	p         *Proxy
	dec       *policyDecider
	udp, tcp  string // the fast-path UDP servers and TCP on 127.0.0.1
	plainUDP  string // miekg's own UDP reader, as on 0.0.0.0 (a second proxy)
	plainProx *Proxy
}

func startFuzzProxy(t testing.TB) *fuzzProxy {
	t.Helper()
	up := newTestUpstream(t, testRecords...)
	dec := newDecider(t, testRules()...)
	cfg := Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr}, Decider: dec, Sink: netip.MustParseAddr("127.0.0.154"),
		StripECH: true, Timeout: 300 * time.Millisecond, Panics: guard.New(nil)}
	p, _ := startProxy(t, cfg)
	fp := &fuzzProxy{p: p, dec: dec}
	for _, a := range p.Addrs() {
		switch a.Network() {
		case "udp":
			fp.udp = a.String()
		case "tcp":
			fp.tcp = a.String()
		}
	}
	mp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mp.noFastPath = true
	fp.plainUDP, fp.plainProx = runProxy(t, mp), mp
	for _, n := range []string{"allowed.example", "goodalias.example", "audited.example"} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			query(t, fp.udp, "udp", n, qt, true)
			query(t, fp.udp, "udp", n, qt, false)
		}
	}
	return fp
}

// checkReply checks a reply to the raw request b: it unpacks, it is a
// response with b's ID, and a blocked name never gets a relayed address.
func (fp *fuzzProxy) checkReply(t *testing.T, b, reply []byte) {
	t.Helper()
	r := new(dns.Msg)
	if err := r.Unpack(reply); err != nil {
		t.Fatalf("reply to %x does not unpack: %v (%x)", b, err, reply)
	}
	if !r.Response || r.Id != binary.BigEndian.Uint16(b) {
		t.Fatalf("reply to %x is not its response: %v", b, r)
	}
	if len(r.Question) == 1 {
		if d := fp.dec.DecideName(canonical(r.Question[0].Name)); d.Verdict == filter.VerdictBlock {
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok && !a.A.Equal(net.IPv4zero) {
					t.Fatalf("blocked name answered %v", rr)
				}
			}
		}
	}
}

// wantsReply reports whether the proxy must answer b: every message with a
// header that is not a response gets an answer (an error code at worst).
func wantsReply(b []byte) bool { return len(b) >= 12 && b[2]&0x80 == 0 }

// replyWait is how long to wait for a reply to b: long enough for a
// SERVFAIL after the upstream timeout when one is due, a moment otherwise.
func replyWait(b []byte) time.Duration {
	if wantsReply(b) {
		return 3 * time.Second
	}
	return 50 * time.Millisecond
}

// stillServes fails t unless the proxy still answers an ordinary query on
// every entry point: the process and its servers survived the input.
func (fp *fuzzProxy) stillServes(t *testing.T) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	b, _ := m.Pack()
	for _, ep := range []struct{ netw, addr string }{{"udp", fp.udp}, {"tcp", fp.tcp}, {"udp", fp.plainUDP}} {
		if reply := exchangeRaw(t, ep.netw, ep.addr, b, 2*time.Second); reply == nil {
			t.Fatalf("the proxy no longer answers over %s %s", ep.netw, ep.addr)
		}
	}
}

// TestBareHeaderQuery is issue 14's crash: the 12-byte header with QDCOUNT=1
// and no question, sent over each entry point, gets FORMERR and the proxy
// goes on. Before the fix the general path read Question[0] of an empty
// slice and the panic ended the process.
func TestBareHeaderQuery(t *testing.T) {
	fp := startFuzzProxy(t)
	for _, ep := range []struct{ name, netw, addr string }{
		{"udp fast path socket", "udp", fp.udp}, {"udp unspecified-address reader", "udp", fp.plainUDP}, {"tcp", "tcp", fp.tcp},
	} {
		t.Run(ep.name, func(t *testing.T) {
			reply := exchangeRaw(t, ep.netw, ep.addr, bareHeader, 2*time.Second)
			if reply == nil {
				t.Fatal("no reply to the bare header")
			}
			r := new(dns.Msg)
			if err := r.Unpack(reply); err != nil {
				t.Fatal(err)
			}
			if r.Rcode != dns.RcodeFormatError || r.Id != 1 || !r.RecursionDesired {
				t.Errorf("reply = %v; want FORMERR with ID 1 and RD copied", r)
			}
			fp.stillServes(t)
		})
	}
	if n := fp.p.Stats().Rejected + fp.plainProx.Stats().Rejected; n < 3 {
		t.Errorf("rejected = %d; each bare header must be counted", n)
	}
}

// panicDecider panics for one name, as a bug deep in a decision would.
type panicDecider struct {
	filter.Decider
	name string
}

func (d panicDecider) DecideName(name string) filter.Decision {
	if name == d.name {
		var rules []filter.Rule
		_ = rules[len(name)] // index out of range
	}
	return d.Decider.DecideName(name)
}

// TestHandlerPanicRecovered: a panic while answering one query (here in the
// decision, on the general path, the wire fast path and TCP) costs that
// query a SERVFAIL, is counted, and the proxy goes on.
func TestHandlerPanicRecovered(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	panics := guard.New(nil)
	dec := &switchDecider{}
	dec.d.Store(&decHolder{newDecider(t, testRules()...)})
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: dec, Panics: panics})
	// Warm the cache so the next query of allowed.example takes the fast path.
	query(t, addr, "udp", "allowed.example", dns.TypeA, false)
	for i, tc := range []struct {
		netw, name string
	}{{"udp", "allowed.example"}, {"udp", "www.allowed.example"}, {"tcp", "allowed.example"}} {
		dec.d.Store(&decHolder{panicDecider{newDecider(t, testRules()...), tc.name}})
		r := query(t, addr, tc.netw, tc.name, dns.TypeA, false)
		if r.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s over %s: rcode %s, want SERVFAIL", tc.name, tc.netw, dns.RcodeToString[r.Rcode])
		}
		if got := panics.Count("dns"); got != uint64(i+1) {
			t.Errorf("after %d panics: counted %d", i+1, got)
		}
	}
	dec.d.Store(&decHolder{newDecider(t, testRules()...)})
	if r := query(t, addr, "udp", "allowed.example", dns.TypeA, false); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("after the panics: %v", r)
	}
	if st := p.Stats(); st.Panics != 3 {
		t.Errorf("Stats().Panics = %d, want 3", st.Panics)
	}
}

// TestUnpackPanicRecovered (review of issue 15, #3): a panic while
// unpacking a datagram on the UDP general path (miekg/dns's unpacker; its
// own UDP server has no recover) costs that query a SERVFAIL with its ID and
// RD bit, is counted, and the proxy goes on answering.
func TestUnpackPanicRecovered(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	panics := guard.New(nil)
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr},
		Decider: newDecider(t, testRules()...), Panics: panics})
	if err != nil {
		t.Fatal(err)
	}
	p.unpackHook = func(m *dns.Msg, b []byte) error {
		if err := m.Unpack(b); err != nil {
			return err
		}
		if len(m.Question) == 1 && m.Question[0].Name == "panic.example." {
			var rrs []dns.RR
			_ = rrs[len(b)] // index out of range, as a bug in the unpacker would
		}
		return nil
	}
	addr := runProxy(t, p)
	m := new(dns.Msg)
	m.SetQuestion("panic.example.", dns.TypeA)
	m.Id = 0x5151
	b, _ := m.Pack()
	reply := exchangeRaw(t, "udp", addr, b, 3*time.Second)
	r := new(dns.Msg)
	if err := r.Unpack(reply); err != nil {
		t.Fatalf("reply %x: %v", reply, err)
	}
	if r.Id != 0x5151 || r.Rcode != dns.RcodeServerFailure || !r.RecursionDesired {
		t.Errorf("reply = %v; want SERVFAIL with the query's ID and RD", r)
	}
	if got := panics.Count("dns"); got != 1 || p.Stats().Panics != 1 {
		t.Errorf("panics counted %d (Stats %d), want 1", got, p.Stats().Panics)
	}
	if r := query(t, addr, "udp", "allowed.example", dns.TypeA, false); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("after the panic: %v", r)
	}
}

// TestOversizedQueryDatagram: a datagram longer than the fast-path reader's
// buffer (udpReadSize; recvmmsg flags it MSG_TRUNC) is not read as the cut
// query it would look like: it gets FORMERR, and the proxy goes on.
func TestOversizedQueryDatagram(t *testing.T) {
	fp := startFuzzProxy(t)
	m := new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	m.Id = 0x7777
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 5000)})
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	reply := exchangeRaw(t, "udp", fp.udp, b, 3*time.Second)
	r := new(dns.Msg)
	if err := r.Unpack(reply); err != nil {
		t.Fatalf("reply %x: %v", reply, err)
	}
	if r.Id != 0x7777 || r.Rcode != dns.RcodeFormatError || len(r.Answer) != 0 {
		t.Errorf("reply = %v; want FORMERR", r)
	}
	fp.stillServes(t)
}

type decHolder struct{ filter.Decider }

// switchDecider lets a test swap the decider under a running proxy.
type switchDecider struct{ d atomic.Pointer[decHolder] }

func (s *switchDecider) DecideName(name string) filter.Decision  { return s.d.Load().DecideName(name) }
func (s *switchDecider) DecideAddr(a netip.Addr) filter.Decision { return s.d.Load().DecideAddr(a) }
func (s *switchDecider) DecideURL(host, path string) filter.Decision {
	return s.d.Load().DecideURL(host, path)
}

// FuzzServeUDP sends arbitrary bytes as one datagram to the proxy's real UDP
// sockets — the wire fast path and general path of the socket bound to
// 127.0.0.1, and miekg/dns's server used for unspecified addresses — exactly
// as a local client would. Every message with a query header must get a
// well-formed reply with its ID, a blocked name never an address, and the
// proxy must still answer afterwards.
func FuzzServeUDP(f *testing.F) {
	for _, s := range append(hostileSeeds(), captured(f)...) {
		f.Add(s)
	}
	fp := startFuzzProxy(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 65507 {
			return // not a UDP datagram
		}
		for _, addr := range []string{fp.udp, fp.plainUDP} {
			reply := exchangeRaw(t, "udp", addr, b, replyWait(b))
			if wantsReply(b) {
				if reply == nil {
					t.Fatalf("no reply from %s to %x", addr, b)
				}
				fp.checkReply(t, b, reply)
			}
		}
		fp.stillServes(t)
	})
}

// FuzzServeTCP sends arbitrary bytes as one length-prefixed message over a
// real TCP connection to the proxy (miekg/dns's TCP server and the same
// handler). A reply, when one comes, must be well-formed; the proxy must
// still answer afterwards.
func FuzzServeTCP(f *testing.F) {
	for _, s := range append(hostileSeeds(), captured(f)...) {
		f.Add(s)
	}
	fp := startFuzzProxy(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 65535 {
			return
		}
		reply := exchangeRaw(t, "tcp", fp.tcp, b, replyWait(b))
		if reply != nil {
			fp.checkReply(t, b, reply)
		} else if wantsReply(b) {
			t.Fatalf("no reply over TCP to %x", b)
		}
		fp.stillServes(t)
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
	e2e.WaitFor(t, "an answer after the flood", 20*time.Second, func() bool {
		m := new(dns.Msg)
		m.SetQuestion("allowed.example.", dns.TypeA)
		r, _, err = (&dns.Client{Timeout: time.Second}).Exchange(m, addr)
		return err == nil && r.Rcode == dns.RcodeSuccess
	})
	if len(r.Answer) != 1 {
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
