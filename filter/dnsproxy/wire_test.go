package dnsproxy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
)

// wireProxy is a proxy with a settable clock, driven in-process: general
// runs the general path (handler), fast the wire fast path, on the same
// proxy and cache.
type wireProxy struct {
	p   *Proxy
	d   *policyDecider
	mu  sync.Mutex
	now time.Time
}

func newWireProxy(t *testing.T, records ...string) *wireProxy {
	t.Helper()
	up := newTestUpstream(t, records...)
	w := &wireProxy{d: newDecider(t, testRules()...), now: time.Unix(1_700_000_000, 0)}
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr}, Decider: w.d,
		Sink: netip.MustParseAddr("127.0.0.154"), StripECH: true, MinTTL: 20 * time.Second,
		Now: func() time.Time { w.mu.Lock(); defer w.mu.Unlock(); return w.now }})
	if err != nil {
		t.Fatal(err)
	}
	p.ups.Store(newUpstreams([]string{up.addr}, time.Second, nil, &p.stats))
	p.baseCtx = t.Context()
	w.p = p
	return w
}

func (w *wireProxy) advance(d time.Duration) { w.mu.Lock(); w.now = w.now.Add(d); w.mu.Unlock() }

var wireClient = netip.MustParseAddrPort("127.0.0.1:40000")

// general answers req through the handler and returns the packed reply.
func (w *wireProxy) general(t *testing.T, req *dns.Msg) *dns.Msg {
	t.Helper()
	fw := &fakeWriter{}
	handler{p: w.p, proto: "udp"}.ServeDNS(fw, req.Copy())
	b, err := fw.out.Pack()
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return m
}

// fast answers req on the fast path; nil if it declines.
func (w *wireProxy) fast(t *testing.T, req *dns.Msg) *dns.Msg {
	t.Helper()
	b, err := req.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var q wireQuery
	name, ok := parseQuery(b, &q, nil)
	if !ok {
		t.Fatalf("parseQuery refused %v", req)
	}
	out, ok := w.p.fastReply(&q, &name, w.p.cfg.Now(), wireClient, nil)
	if !ok {
		return nil
	}
	if len(out) > q.maxReply() {
		t.Fatalf("fast reply of %d octets beyond the client's %d", len(out), q.maxReply())
	}
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		t.Fatalf("fast reply does not unpack: %v", err)
	}
	return m
}

// sameReply compares two replies field by field (the general path may send
// uncompressed what the fast path sends compressed; the content must match).
func sameReply(a, b *dns.Msg) string {
	if a.MsgHdr != b.MsgHdr {
		return "header: " + a.MsgHdr.String() + " vs " + b.MsgHdr.String()
	}
	if len(a.Question) != 1 || len(b.Question) != 1 || a.Question[0] != b.Question[0] {
		return "question differs"
	}
	for _, s := range [][2][]dns.RR{{a.Answer, b.Answer}, {a.Ns, b.Ns}, {a.Extra, b.Extra}} {
		if len(s[0]) != len(s[1]) {
			return "section lengths differ"
		}
		for i := range s[0] {
			if s[0][i].String() != s[1][i].String() {
				return s[0][i].String() + " vs " + s[1][i].String()
			}
		}
	}
	return ""
}

// TestFastPathMatchesGeneral: for every cached answer shape, the fast
// path's reply is the general path's reply, byte for byte in content,
// including the client's name case, flags, aged TTLs and the OPT record.
func TestFastPathMatchesGeneral(t *testing.T) {
	w := newWireProxy(t, append(testRecords,
		"short.example. 5 IN A 192.0.2.12",
		"long.example. 600 IN A 192.0.2.13",
		"long.example. 600 IN A 192.0.2.14",
		"under_score-x.example. 300 IN A 192.0.2.15")...)
	type variant struct {
		name       string
		edns, do   bool
		cd, ad, rd bool
		cookie     bool
		size       uint16
	}
	var variants []variant
	for _, name := range []string{"allowed.example.", "AlLoWeD.ExAmPlE.", "goodalias.example.", "audited.example.",
		"nodata.example.", "missing.example.", "short.example.", "long.example.", "under_score-x.example.", "ech.example."} {
		variants = append(variants,
			variant{name: name, rd: true},
			variant{name: name, edns: true, size: 1232, rd: true},
			variant{name: name, edns: true, do: true, size: 4096, ad: true},
			variant{name: name, edns: true, cd: true, size: 100, cookie: true},
		)
	}
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeHTTPS} {
		for _, v := range variants {
			req := new(dns.Msg)
			req.SetQuestion(v.name, qtype)
			req.RecursionDesired, req.CheckingDisabled, req.AuthenticatedData = v.rd, v.cd, v.ad
			req.Id = 0x1234
			if v.edns {
				req.SetEdns0(v.size, v.do)
				if v.cookie {
					o := req.IsEdns0()
					o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
				}
			}
			w.general(t, req) // fills the cache
			w.advance(3 * time.Second)
			want := w.general(t, req)
			got := w.fast(t, req)
			if got == nil {
				t.Errorf("%s %s %+v: fast path declined a cached allowed answer", v.name, dns.TypeToString[qtype], v)
				continue
			}
			if diff := sameReply(got, want); diff != "" {
				t.Errorf("%s %s %+v: %s\nfast:\n%v\ngeneral:\n%v", v.name, dns.TypeToString[qtype], v, diff, got, want)
			}
			w.advance(7 * time.Second) // past short.example's TTL: MinTTL keeps it, remaining time applies
		}
	}
	if st := w.p.Stats(); st.CacheHits == 0 || st.ByVerdict["audit"] == 0 {
		t.Errorf("fast path must count hits and verdicts: %+v", st)
	}
}

// TestFastPathDecides: the fast path takes the decision on every query,
// for the question and for every CNAME target, and leaves refusals to the
// general path.
func TestFastPathDecides(t *testing.T) {
	w := newWireProxy(t, testRecords...)
	q := func(name string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		return m
	}
	for _, n := range []string{"allowed.example.", "goodalias.example."} {
		w.general(t, q(n))
		if w.fast(t, q(n)) == nil {
			t.Fatalf("%s: not served from the cache", n)
		}
	}
	// allowed.example becomes Block: the fast path refuses the name itself
	// (never from the cache), and leaves the alias pointing at it to the
	// general path, which blocks it.
	w.d.set(t, rule("allowed.example", filter.Block, "7"))
	if r := w.fast(t, q("allowed.example.")); r == nil || r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
		t.Errorf("allowed.example: fast path answered a blocked name with %v", r)
	}
	if r := w.fast(t, q("goodalias.example.")); r != nil {
		t.Errorf("goodalias.example: fast path answered an alias of a blocked name: %v", r)
	}
	for _, n := range []string{"allowed.example.", "goodalias.example."} {
		if r := w.general(t, q(n)); r.Rcode != dns.RcodeNameError {
			t.Errorf("%s: general path rcode %s, want NXDOMAIN", n, dns.RcodeToString[r.Rcode])
		}
	}
	// Warn also refuses: the answer is the sink, never the cached address.
	w.d.set(t, rule("allowed.example", filter.Warn, "8"))
	if r := w.fast(t, q("allowed.example.")); r == nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.154" {
		t.Errorf("fast path answered a warned name with %v", r)
	}
	// Unblocked again: served from the cache at once.
	w.d.set(t)
	if r := w.fast(t, q("allowed.example.")); r == nil || len(r.Answer) != 1 {
		t.Errorf("after unblocking: %v", r)
	}
	// Expired entries are not served.
	w.advance(time.Hour)
	if r := w.fast(t, q("allowed.example.")); r != nil {
		t.Errorf("expired entry served: %v", r)
	}
}

// TestFastRefusalMatchesGeneral: a blocked or warned question answered on
// the wire fast path gets the general path's reply byte for byte (both
// packed uncompressed), for every refusal shape — each block answer mode,
// Warn with and without an IPv4 sink, A, AAAA and other types, with and
// without EDNS0 and DO, the client's flags and name case — and is counted
// and reported the same way.
func TestFastRefusalMatchesGeneral(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	type mode struct {
		ba   BlockAnswer
		sink string
	}
	for _, md := range []mode{{BlockNXDomain, "127.0.0.154"}, {BlockNullIP, "127.0.0.154"}, {BlockSink, "127.0.0.154"}, {BlockNXDomain, "2001:db8::154"}} {
		var evs []Event
		p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr},
			Decider: newDecider(t, rule("bad.example", filter.Block, "101"), rule("warned.example", filter.Warn, "102"),
				rule("noid.example", filter.Block, "")),
			BlockAnswer: md.ba, Sink: netip.MustParseAddr(md.sink), SyntheticTTL: 7 * time.Second,
			OnDecision: func(e Event) { evs = append(evs, e) }})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"bad.example.", "www.Bad.Example.", "warned.example.", "WARNED.example.", "noid.example.",
			"x-y_z.sub.bad.example."} {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeHTTPS, dns.TypeMX} {
				for _, v := range []struct {
					edns, do, rd, cd, ad bool
					size                 uint16
				}{{rd: true}, {edns: true, size: 1232, rd: true}, {edns: true, do: true, cd: true, size: 4096, ad: true}, {edns: true, size: 100}} {
					req := new(dns.Msg)
					req.SetQuestion(name, qtype)
					req.Id = 0xbeef
					req.RecursionDesired, req.CheckingDisabled, req.AuthenticatedData = v.rd, v.cd, v.ad
					if v.edns {
						req.SetEdns0(v.size, v.do)
					}
					what := fmt.Sprintf("%v %s %s %+v", md, name, dns.TypeToString[qtype], v)
					evs = nil
					fw := &fakeWriter{}
					handler{p: p, proto: "udp"}.ServeDNS(fw, req.Copy())
					want, err := fw.out.Pack()
					if err != nil {
						t.Fatal(err)
					}
					b, _ := req.Pack()
					var q wireQuery
					qn, ok := parseQuery(b, &q, nil)
					if !ok {
						t.Fatalf("%s: parseQuery refused", what)
					}
					at := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
					got, ok := p.fastReply(&q, &qn, at, wireClient, nil)
					if !ok {
						t.Errorf("%s: fast path declined a refusal", what)
						continue
					}
					if !bytes.Equal(got, want) {
						t.Errorf("%s:\nfast    %x\ngeneral %x\n%v", what, got, want, fw.out)
					}
					if len(evs) != 2 || evs[0].Name != evs[1].Name || evs[0].Decision.Verdict != evs[1].Decision.Verdict ||
						evs[0].QType != evs[1].QType || evs[1].Client != wireClient {
						t.Errorf("%s: events general/fast = %+v", what, evs)
					} else if !evs[0].At.IsZero() || !evs[1].At.Equal(at) {
						// The fast path's clock read dates its event (the
						// agent's record and notice read no clock again).
						t.Errorf("%s: event times general %v, fast %v; want zero and %v", what, evs[0].At, evs[1].At, at)
					}
				}
			}
		}
		if st := p.Stats(); st.Queries == 0 || st.Queries != st.ByVerdict["block"]+st.ByVerdict["warn"] || st.CacheHits+st.CacheMisses != 0 {
			t.Errorf("%v: stats %+v", md, st)
		}
	}
}

// TestFastRefusalTooBig: a refusal larger than the client's buffer (a long
// name's NXDOMAIN with its SOA, no EDNS0: over 512 octets) is left to the
// general path, which truncates it.
func TestFastRefusalTooBig(t *testing.T) {
	w := newWireProxy(t, testRecords...)
	long := strings.Repeat(strings.Repeat("a", 60)+".", 3) + strings.Repeat("b", 40) + ".bad.example."
	m := new(dns.Msg)
	m.SetQuestion(long, dns.TypeA)
	if r := w.fast(t, m); r != nil {
		t.Fatalf("fast path sent a %d-record refusal beyond 512 octets", len(r.Ns))
	}
	m.SetEdns0(1232, false)
	if r := w.fast(t, m); r == nil || r.Rcode != dns.RcodeNameError {
		t.Fatalf("with EDNS0 1232 the refusal fits: %v", r)
	}
}

// TestFastPathEvents: an audited name served from the cache is reported
// like on the general path, with the client's address.
func TestFastPathEvents(t *testing.T) {
	w := newWireProxy(t, testRecords...)
	var mu sync.Mutex
	var evs []Event
	w.p.cfg.OnDecision = func(e Event) { mu.Lock(); evs = append(evs, e); mu.Unlock() }
	m := new(dns.Msg)
	m.SetQuestion("Audited.Example.", dns.TypeA)
	w.general(t, m)
	if w.fast(t, m) == nil {
		t.Fatal("not served from the cache")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(evs) != 2 || evs[1].Name != "audited.example" || evs[1].Client != wireClient || evs[1].Decision.Verdict != filter.VerdictAudit {
		t.Fatalf("events = %+v", evs)
	}
	// The fast path's clock read dates its event (the agent's record):
	// the general path's is left to the receiver's clock.
	if !evs[0].At.IsZero() || !evs[1].At.Equal(w.now) {
		t.Errorf("event times general %v, fast %v; want zero and %v", evs[0].At, evs[1].At, w.now)
	}
}

// TestFastPathTooBig: an answer larger than the client's buffer is left to
// the general path, which truncates it (TC set, RFC 1035 §4.2.1).
func TestFastPathTooBig(t *testing.T) {
	var recs []string
	for i := range 40 {
		recs = append(recs, "big.example. 300 IN TXT \""+strings.Repeat("x", 40)+string(rune('a'+i%26))+"\"")
	}
	w := newWireProxy(t, recs...)
	m := new(dns.Msg)
	m.SetQuestion("big.example.", dns.TypeTXT)
	m.SetEdns0(4096, false)
	w.general(t, m) // over UDP the upstream truncates at 1232: TCP retry fills the cache
	small := new(dns.Msg)
	small.SetQuestion("big.example.", dns.TypeTXT)
	if r := w.fast(t, small); r != nil {
		t.Fatalf("fast path sent %d answers to a 512-octet client", len(r.Answer))
	}
	if r := w.general(t, small); !r.Truncated {
		t.Errorf("general path: TC not set on an oversize answer")
	}
}

// TestFastPathOverTheWire: queries to a running proxy on a specific
// address take the fast path once cached (the upstream sees one query),
// stats count every one, and the client's case and ID come back.
func TestFastPathOverTheWire(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t, testRules()...)})
	c := &dns.Client{Timeout: 5 * time.Second}
	for i := range 50 {
		m := new(dns.Msg)
		m.SetQuestion("ALLOWED.example.", dns.TypeA)
		if i%2 == 1 {
			m.SetEdns0(1232, true)
		}
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != m.Id || r.Question[0].Name != "ALLOWED.example." || len(r.Answer) != 1 || (r.IsEdns0() != nil) != (i%2 == 1) {
			t.Fatalf("reply %d: %v", i, r)
		}
	}
	if n := up.queries.Load(); n != 2 { // one per DO bit value
		t.Errorf("upstream saw %d queries, want 2", n)
	}
	if st := p.Stats(); st.Queries != 50 || st.CacheHits != 48 || st.ByVerdict["allow"] != 50 {
		t.Errorf("stats = queries %d hits %d allow %d, want 50/48/50", st.Queries, st.CacheHits, st.ByVerdict["allow"])
	}
}

// TestUnspecifiedUDPServer: a socket on an unspecified address (which needs
// the reply's source chosen per datagram) is served by miekg's own reader,
// without the fast path; the answers are the same.
func TestUnspecifiedUDPServer(t *testing.T) {
	if specific(&net.UDPAddr{IP: net.IPv4zero}) || specific(&net.UDPAddr{IP: net.IPv6unspecified}) || !specific(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}) {
		t.Fatal("specific() misjudges addresses")
	}
	up := newTestUpstream(t, testRecords...)
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr}, Decider: newDecider(t, testRules()...)})
	if err != nil {
		t.Fatal(err)
	}
	p.noFastPath = true
	addr := runProxy(t, p)
	for range 2 {
		if r := query(t, addr, "udp", "allowed.example", dns.TypeA, true); len(r.Answer) != 1 {
			t.Fatalf("allowed: %v", r)
		}
	}
	if r := query(t, addr, "udp", "bad.example", dns.TypeA, true); r.Rcode != dns.RcodeNameError || ede(r) == nil {
		t.Fatalf("blocked: %v", r)
	}
	if st := p.Stats(); st.CacheHits != 1 {
		t.Errorf("cache hits = %d, want 1", st.CacheHits)
	}
}

// TestFastPathAllocations: a cached answer is served without allocating.
func TestFastPathAllocations(t *testing.T) {
	w := newWireProxy(t, testRecords...)
	m := new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	m.SetEdns0(1232, false)
	w.general(t, m)
	b, _ := m.Pack()
	var q wireQuery
	name := make([]byte, 0, 256)
	out := make([]byte, 0, upstreamUDPSize)
	now := w.p.cfg.Now()
	n := testing.AllocsPerRun(200, func() {
		var ok bool
		if name, ok = parseQuery(b, &q, name[:0]); !ok {
			t.Fatal("refused")
		}
		if _, ok = w.p.fastReply(&q, &name, now, wireClient, out[:0]); !ok {
			t.Fatal("declined")
		}
	})
	if n != 0 {
		t.Errorf("%.0f allocations per cached query, want 0", n)
	}
}

// FuzzParseQuery: whatever parseQuery accepts, miekg/dns reads the same
// way — a query the header check accepts, with that one question (name
// case-insensitively, type, class IN) and that EDNS0 state.
func FuzzParseQuery(f *testing.F) {
	for _, s := range hostileSeeds() {
		f.Add(s)
	}
	files, _ := filepath.Glob("testdata/*.bin")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var q wireQuery
		name, ok := parseQuery(b, &q, nil)
		if !ok {
			return
		}
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatalf("accepted what miekg cannot unpack: %v", err)
		}
		h := dns.Header{Id: m.Id, Qdcount: uint16(len(m.Question)), Ancount: uint16(len(m.Answer)),
			Nscount: uint16(len(m.Ns)), Arcount: uint16(len(m.Extra))}
		h.Bits = uint16(m.Opcode&0xF) << 11
		if m.Response {
			h.Bits |= flagQR
		}
		if acceptQuery(h) != dns.MsgAccept {
			t.Fatalf("accepted what the header check refuses: %v", m)
		}
		mq := m.Question[0]
		if dns.CanonicalName(mq.Name) != string(name) || mq.Qtype != q.qtype || mq.Qclass != dns.ClassINET {
			t.Fatalf("question %v, parsed %q type %d", mq, name, q.qtype)
		}
		if !strings.EqualFold(mq.Name, string(name)) || m.Id != q.id {
			t.Fatalf("name or id differ: %q %q", mq.Name, name)
		}
		o := m.IsEdns0()
		if (o != nil) != q.edns {
			t.Fatalf("EDNS0: miekg %v, parsed %v", o != nil, q.edns)
		}
		if o != nil && (o.UDPSize() != q.size || o.Do() != q.do || o.Version() != 0) {
			t.Fatalf("OPT: miekg size %d do %v version %d, parsed size %d do %v", o.UDPSize(), o.Do(), o.Version(), q.size, q.do)
		}
		if m.CheckingDisabled != (q.flags&flagCD != 0) || m.RecursionDesired != (q.flags&flagRD != 0) {
			t.Fatalf("flags differ")
		}
	})
}

// TestRejectHeaderBits (review of issue 15, #2): the FORMERR and NOTIMP
// replies, on every entry point (the fast-path socket's own general path,
// miekg/dns's reader on unspecified addresses, TCP), carry exactly QR, the
// opcode, RD and CD copied, RA and the rcode: a query that sets every other
// header bit (AA, TC, Z, AD, RA) gets none of them echoed (RFC 1035 §4.1.1;
// RFC 6840 §5.8 for AD). Before the fix miekg's reject echoed TC and AD.
func TestRejectHeaderBits(t *testing.T) {
	fp := startFuzzProxy(t)
	const every = 0x0400 | 0x0200 | flagRD | flagRA | 0x0040 | flagAD | flagCD // AA TC RD RA Z AD CD
	pack := func(f func(m *dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion("allowed.example.", dns.TypeA)
		m.Id = 0x4242
		f(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tt := range []struct {
		name  string
		b     []byte
		rcode int
	}{
		{"notify", pack(func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), dns.RcodeNotImplemented},
		{"update", pack(func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), dns.RcodeNotImplemented},
		{"two questions", pack(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), dns.RcodeFormatError},
		{"an answer record", pack(func(m *dns.Msg) {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET}}}
		}), dns.RcodeFormatError},
		// A reserved label type (0x40) in the question: the header passes,
		// unpacking fails.
		{"malformed name", func() []byte { b := pack(func(*dns.Msg) {}); b[12] = 0x41; return b }(), dns.RcodeFormatError},
	} {
		for _, ep := range []struct{ name, netw, addr string }{
			{"fast path socket", "udp", fp.udp}, {"unspecified-address reader", "udp", fp.plainUDP}, {"tcp", "tcp", fp.tcp},
		} {
			b := append([]byte(nil), tt.b...)
			bits := binary.BigEndian.Uint16(b[2:])
			binary.BigEndian.PutUint16(b[2:], bits|every)
			reply := exchangeRaw(t, ep.netw, ep.addr, b, 3*time.Second)
			if len(reply) < 12 {
				t.Errorf("%s over %s: no reply", tt.name, ep.name)
				continue
			}
			want := uint16(flagQR|flagRA|flagRD|flagCD) | bits&(0xF<<11) | uint16(tt.rcode)
			if got := binary.BigEndian.Uint16(reply[2:]); got != want || binary.BigEndian.Uint16(reply) != 0x4242 {
				t.Errorf("%s over %s: id %#04x flags %#04x, want id 0x4242 flags %#04x", tt.name, ep.name,
					binary.BigEndian.Uint16(reply), got, want)
			}
		}
	}
}

// TestSince: a real clock's reading is measured on the monotonic clock
// alone (the clock passed is not asked); a test clock's is measured by
// asking it.
func TestSince(t *testing.T) {
	far := func() time.Time { return time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC) }
	if d := since(time.Now(), far); d < 0 || d > time.Minute {
		t.Errorf("since(time.Now(), a clock in 2099) = %v; want the monotonic elapsed time", d)
	}
	fake := time.Date(2098, 12, 31, 23, 59, 0, 0, time.UTC)
	if d := since(fake, far); d != time.Minute {
		t.Errorf("since(a test clock's time) = %v; want the clock's 1m0s", d)
	}
}
