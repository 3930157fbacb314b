package dnsproxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/e2e"
)

var testRecords = []string{
	"allowed.example. 300 IN A 192.0.2.10",
	"allowed.example. 300 IN AAAA 2001:db8::10",
	"audited.example. 300 IN A 192.0.2.11",
	"bad.example. 300 IN A 192.0.2.66",
	"bad.example. 300 IN AAAA 2001:db8::66",
	"www.bad.example. 300 IN A 192.0.2.67",
	"warned.example. 300 IN A 192.0.2.77",
	"alias.example. 300 IN CNAME mid.example.",
	"mid.example. 300 IN CNAME www.bad.example.",
	"goodalias.example. 300 IN CNAME allowed.example.",
	"ech.example. 300 IN HTTPS 1 . alpn=h2 ech=AEX+DQBB",
	"nodata.example. 300 IN TXT \"x\"",
}

func testRules() []filter.Rule {
	return []filter.Rule{
		rule("bad.example", filter.Block, "101"),
		rule("warned.example", filter.Warn, "102"),
		rule("audited.example", filter.Audit, "103"),
		rule("allowed.example", filter.Allowed, "104"),
	}
}

func TestAnswers(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	sink := netip.MustParseAddr("127.0.0.154")
	var mu sync.Mutex
	var events []Event
	names := NewNameMap(16, nil)
	_, addr := startProxy(t, Config{
		Upstreams: []string{up.addr}, Decider: newDecider(t, testRules()...), Sink: sink,
		SyntheticTTL: 7 * time.Second, StripECH: true, Names: names,
		OnDecision: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
	})
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		rcode   int
		answer  string // substring of the first answer RR, "" for none
		ede     string // substring of the EDE text, "" for none
		ttl     uint32 // expected answer TTL (0: not checked)
		network string
	}{
		{"allowed A", "allowed.example", dns.TypeA, dns.RcodeSuccess, "192.0.2.10", "", 0, "udp"},
		{"allowed AAAA tcp", "allowed.example", dns.TypeAAAA, dns.RcodeSuccess, "2001:db8::10", "", 0, "tcp"},
		{"audited passes", "audited.example", dns.TypeA, dns.RcodeSuccess, "192.0.2.11", "", 0, "udp"},
		{"blocked A nxdomain", "bad.example", dns.TypeA, dns.RcodeNameError, "", "indicator 101", 0, "udp"},
		{"blocked subdomain", "WWW.Bad.Example", dns.TypeA, dns.RcodeNameError, "", "indicator 101", 0, "tcp"},
		{"blocked AAAA nodata", "bad.example", dns.TypeAAAA, dns.RcodeSuccess, "", "indicator 101", 0, "udp"},
		{"blocked MX nodata", "bad.example", dns.TypeMX, dns.RcodeSuccess, "", "blocked", 0, "udp"},
		{"warned A sink", "warned.example", dns.TypeA, dns.RcodeSuccess, "127.0.0.154", "warned warned.example by indicator 102", 7, "udp"},
		{"warned AAAA nodata", "warned.example", dns.TypeAAAA, dns.RcodeSuccess, "", "indicator 102", 0, "udp"},
		{"cname into blocked", "alias.example", dns.TypeA, dns.RcodeNameError, "", "blocked www.bad.example by indicator 101", 0, "udp"},
		{"cname into allowed", "goodalias.example", dns.TypeA, dns.RcodeSuccess, "allowed.example", "", 0, "udp"},
		{"unknown name nxdomain", "nope.example", dns.TypeA, dns.RcodeNameError, "", "", 0, "udp"},
		{"nodata relayed", "nodata.example", dns.TypeA, dns.RcodeSuccess, "", "", 0, "udp"},
		{"doh canary", "use-application-dns.net", dns.TypeA, dns.RcodeNameError, "", "", 0, "udp"},
		{"relay off without capture", "mask.icloud.com", dns.TypeA, dns.RcodeNameError, "", "", 0, "udp"},
		{"ech stripped", "ech.example", dns.TypeHTTPS, dns.RcodeSuccess, "alpn=\"h2\"", "", 0, "udp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := query(t, addr, tt.network, tt.qname, tt.qtype, true)
			if r.Rcode != tt.rcode {
				t.Fatalf("rcode = %s, want %s\n%v", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode], r)
			}
			if tt.answer == "" && len(r.Answer) > 0 {
				t.Fatalf("answer = %v, want none", r.Answer)
			}
			if tt.answer != "" && (len(r.Answer) == 0 || !strings.Contains(r.Answer[0].String(), tt.answer)) {
				t.Fatalf("answer = %v, want %q", r.Answer, tt.answer)
			}
			if strings.Contains(r.String(), "ech=") {
				t.Errorf("ech not stripped: %v", r.Answer)
			}
			e := ede(r)
			switch {
			case tt.ede == "" && e != nil:
				t.Errorf("EDE = %v, want none", e)
			case tt.ede != "" && (e == nil || e.InfoCode != dns.ExtendedErrorCodeBlocked || !strings.Contains(e.ExtraText, tt.ede)):
				t.Errorf("EDE = %v, want code 15 with %q", e, tt.ede)
			}
			if tt.ttl != 0 && r.Answer[0].Header().Ttl != tt.ttl {
				t.Errorf("TTL = %d, want %d", r.Answer[0].Header().Ttl, tt.ttl)
			}
			if tt.ede != "" && len(r.Answer) == 0 {
				if len(r.Ns) != 1 || r.Ns[0].Header().Ttl != 7 || r.Ns[0].(*dns.SOA).Minttl != 7 {
					t.Errorf("negative blocked answer authority = %v, want a SOA with TTL and minimum 7", r.Ns)
				}
			}
		})
	}
	// An address is named after the last question it answered: the
	// connection that follows is made for that name.
	for ip, want := range map[string]string{"2001:db8::10": "allowed.example", "192.0.2.10": "goodalias.example", "192.0.2.11": "audited.example"} {
		if n, ok := names.Lookup(netip.MustParseAddr(ip)); !ok || n != want {
			t.Errorf("names.Lookup(%s) = %q, %v; want %s", ip, n, ok, want)
		}
	}
	if _, ok := names.Lookup(netip.MustParseAddr("192.0.2.66")); ok {
		t.Errorf("a blocked name's address was learned")
	}
	mu.Lock()
	defer mu.Unlock()
	got := map[string]filter.Verdict{}
	for _, e := range events {
		got[e.Name] = e.Decision.Verdict
	}
	want := map[string]filter.Verdict{"audited.example": filter.VerdictAudit, "bad.example": filter.VerdictBlock,
		"www.bad.example": filter.VerdictBlock, "warned.example": filter.VerdictWarn}
	for n, v := range want {
		if got[n] != v {
			t.Errorf("OnDecision for %s = %v, want %v (all: %v)", n, got[n], v, got)
		}
	}
	if _, ok := got["allowed.example"]; ok {
		t.Errorf("OnDecision called for an Allowed name")
	}
}

func TestBlockAnswerModes(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	for _, tt := range []struct {
		mode   BlockAnswer
		qtype  uint16
		rcode  int
		answer string
	}{
		{BlockNullIP, dns.TypeA, dns.RcodeSuccess, "0.0.0.0"},
		{BlockNullIP, dns.TypeAAAA, dns.RcodeSuccess, "\t::"},
		{BlockSink, dns.TypeA, dns.RcodeSuccess, "127.0.0.154"},
		{BlockSink, dns.TypeAAAA, dns.RcodeSuccess, ""},
		{BlockNXDomain, dns.TypeA, dns.RcodeNameError, ""},
	} {
		t.Run(dns.TypeToString[tt.qtype], func(t *testing.T) {
			_, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t, testRules()...),
				BlockAnswer: tt.mode, Sink: netip.MustParseAddr("127.0.0.154")})
			r := query(t, addr, "udp", "bad.example", tt.qtype, false)
			if r.Rcode != tt.rcode {
				t.Fatalf("mode %d: rcode = %s, want %s", tt.mode, dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			if (tt.answer == "") != (len(r.Answer) == 0) || (tt.answer != "" && !strings.Contains(r.Answer[0].String(), tt.answer)) {
				t.Fatalf("mode %d: answer = %v, want %q", tt.mode, r.Answer, tt.answer)
			}
			if r.IsEdns0() != nil {
				t.Errorf("OPT record in the reply to a query without EDNS0 (RFC 6891 §7)")
			}
		})
	}
}

func TestDecideAfterCache(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	d := newDecider(t)
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: d})
	if r := query(t, addr, "udp", "bad.example", dns.TypeA, true); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("before the policy: rcode %s", dns.RcodeToString[r.Rcode])
	}
	d.set(t, rule("bad.example", filter.Block, "9"))
	if r := query(t, addr, "udp", "bad.example", dns.TypeA, true); r.Rcode != dns.RcodeNameError {
		t.Fatalf("next query after the new policy: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	d.set(t)
	r := query(t, addr, "udp", "bad.example", dns.TypeA, true)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("after unblock: %v", r)
	}
	if n := up.queries.Load(); n != 1 {
		t.Errorf("upstream saw %d queries, want 1 (the rest from the cache)", n)
	}
	st := p.Stats()
	if st.CacheHits != 1 || st.CacheMisses != 1 || st.ByVerdict["block"] != 1 || st.ByVerdict["allow"] != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestCacheTTLAndNegative(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	_, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t), Now: clock})

	query(t, addr, "udp", "allowed.example", dns.TypeA, false)
	advance(100 * time.Second)
	r := query(t, addr, "udp", "allowed.example", dns.TypeA, false)
	if ttl := r.Answer[0].Header().Ttl; ttl != 200 {
		t.Errorf("cached TTL after 100 s = %d, want 200", ttl)
	}
	if up.queries.Load() != 1 {
		t.Fatalf("upstream queries = %d, want 1", up.queries.Load())
	}
	// Negative answer: cached for min(SOA TTL 300, MINIMUM 30) = 30 s.
	query(t, addr, "udp", "nope.example", dns.TypeA, false)
	advance(29 * time.Second)
	query(t, addr, "udp", "nope.example", dns.TypeA, false)
	if up.queries.Load() != 2 {
		t.Fatalf("negative answer not cached: upstream queries = %d, want 2", up.queries.Load())
	}
	advance(2 * time.Second)
	query(t, addr, "udp", "nope.example", dns.TypeA, false)
	if up.queries.Load() != 3 {
		t.Fatalf("negative answer cached past its SOA minimum: upstream queries = %d, want 3", up.queries.Load())
	}
	advance(300 * time.Second)
	query(t, addr, "udp", "allowed.example", dns.TypeA, false)
	if up.queries.Load() != 4 {
		t.Fatalf("answer cached past its TTL: upstream queries = %d, want 4", up.queries.Load())
	}
}

func TestCacheBound(t *testing.T) {
	c := newCache(2)
	now := time.Now()
	for _, n := range []string{"a.", "b.", "c."} {
		k := cacheKey{name: n, qtype: 1}
		c.put(&cached{key: k, id: k.id(), msg: new(dns.Msg), stored: now, expires: now.Add(time.Hour)})
	}
	if c.len() != 2 || c.get(cacheKey{name: "a.", qtype: 1}.id(), now) != nil || c.get(cacheKey{name: "c.", qtype: 1}.id(), now) == nil {
		t.Errorf("LRU bound: len %d; oldest entry must be evicted", c.len())
	}
}

func TestCapturePrivateRelay(t *testing.T) {
	up := newTestUpstream(t, "mask.icloud.com. 60 IN A 192.0.2.99")
	_, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t), Capture: true})
	for _, n := range []string{"mask.icloud.com", "MASK-H2.icloud.com", "use-application-dns.net"} {
		if r := query(t, addr, "udp", n, dns.TypeA, true); r.Rcode != dns.RcodeNameError {
			t.Errorf("%s with capture: rcode %s, want NXDOMAIN", n, dns.RcodeToString[r.Rcode])
		}
	}
	if up.queries.Load() != 0 {
		t.Errorf("special names reached the upstream")
	}
}

func TestUpstreamFailover(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	dead := deadUDPAddr(t)
	p, addr := startProxy(t, Config{Upstreams: []string{dead, up.addr}, Decider: newDecider(t)})
	r := query(t, addr, "udp", "allowed.example", dns.TypeA, false)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("failover: %v", r)
	}
	if st := p.Stats(); st.UpstreamErrors != 1 {
		t.Errorf("upstream errors = %d, want 1", st.UpstreamErrors)
	}
	// The working upstream is now preferred: no new error.
	query(t, addr, "udp", "audited.example", dns.TypeA, false)
	if st := p.Stats(); st.UpstreamErrors != 1 {
		t.Errorf("upstream errors after the preferred one answered = %d, want 1", st.UpstreamErrors)
	}
}

// deadUDPAddr is a loopback port nothing listens on: queries get ICMP port
// unreachable, i.e. a quick error.
func deadUDPAddr(t testing.TB) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := pc.LocalAddr().String()
	pc.Close()
	return a
}

func TestAllUpstreamsDownServfail(t *testing.T) {
	// One upstream refuses at once, one never answers: SERVFAIL within the
	// timeout, counted; then fast SERVFAIL while marked down.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	p, addr := startProxy(t, Config{Upstreams: []string{deadUDPAddr(t), silent.LocalAddr().String()},
		Decider: newDecider(t), Timeout: 300 * time.Millisecond})
	for i := range downAfter + 1 {
		c := &dns.Client{Timeout: 5 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("allowed.example.", dns.TypeA)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatalf("query %d: %v (the proxy must answer, not hang)", i, err)
		}
		if r.Rcode != dns.RcodeServerFailure {
			t.Fatalf("query %d: rcode %s, want SERVFAIL", i, dns.RcodeToString[r.Rcode])
		}
	}
	if st := p.Stats(); st.ServFail != downAfter+1 {
		t.Errorf("servFail = %d, want %d", st.ServFail, downAfter+1)
	}
}

func TestTruncatedRetriesTCP(t *testing.T) {
	var recs []string
	for i := range 60 {
		recs = append(recs, "big.example. 300 IN TXT \"a-long-text-record-to-fill-the-answer-beyond-one-datagram-"+strings.Repeat("x", i)+"\"")
	}
	up := newTestUpstream(t, recs...)
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t)})
	r := query(t, addr, "udp", "big.example", dns.TypeTXT, true)
	if !r.Truncated {
		t.Errorf("UDP answer beyond 1232 octets not truncated")
	}
	r = query(t, addr, "tcp", "big.example", dns.TypeTXT, true)
	if len(r.Answer) != 60 {
		t.Errorf("TCP answer has %d records, want 60", len(r.Answer))
	}
	if st := p.Stats(); st.TCPRetries != 1 {
		t.Errorf("tcpRetries = %d, want 1 (upstream truncated the UDP answer)", st.TCPRetries)
	}
}

// TestOversizedUDPAnswerRetriesTCP: an upstream that ignores the advertised
// size and sends a datagram filling the read buffer (upstreamReadSize) gets
// asked again over TCP, as for TC, instead of a cut answer being unpacked.
func TestOversizedUDPAnswerRetriesTCP(t *testing.T) {
	var recs []string
	for i := range 60 {
		recs = append(recs, "huge.example. 300 IN TXT \""+strings.Repeat("y", 100)+fmt.Sprint(i)+"\"")
	}
	up := newTestUpstream(t, recs...)
	up.setHook(func(w dns.ResponseWriter, r *dns.Msg) bool {
		if _, udp := w.RemoteAddr().(*net.UDPAddr); !udp {
			return false
		}
		m := new(dns.Msg)
		m.SetReply(r)
		for _, s := range recs {
			rr, _ := dns.NewRR(s)
			m.Answer = append(m.Answer, rr)
		}
		b, _ := m.Pack() // over 6,000 octets, beyond the 1232 asked for
		_, _ = w.Write(b)
		return true
	})
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t)})
	if r := query(t, addr, "tcp", "huge.example", dns.TypeTXT, true); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 60 {
		t.Errorf("answer: rcode %s, %d records; want 60", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	if st := p.Stats(); st.TCPRetries != 1 {
		t.Errorf("tcpRetries = %d, want 1", st.TCPRetries)
	}
}

func TestSpoofedReplyIgnored(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	up.setHook(func(w dns.ResponseWriter, r *dns.Msg) bool {
		if _, ok := w.RemoteAddr().(*net.UDPAddr); !ok {
			return false
		}
		// First a reply with the wrong ID, then one for another question.
		bad := new(dns.Msg)
		bad.SetReply(r)
		bad.Id++
		a, _ := dns.NewRR(r.Question[0].Name + " 300 IN A 203.0.113.66")
		bad.Answer = []dns.RR{a}
		_ = w.WriteMsg(bad)
		bad.Id--
		bad.Question[0].Name = "other.example."
		_ = w.WriteMsg(bad)
		return false
	})
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t)})
	r := query(t, addr, "udp", "allowed.example", dns.TypeA, false)
	if len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "192.0.2.10") {
		t.Fatalf("answer = %v, want the genuine 192.0.2.10", r.Answer)
	}
	if st := p.Stats(); st.BadReplies != 2 {
		t.Errorf("badReplies = %d, want 2", st.BadReplies)
	}
}

func TestInFlightBound(t *testing.T) {
	release := make(chan struct{})
	up := newTestUpstream(t, testRecords...)
	up.setHook(func(w dns.ResponseWriter, r *dns.Msg) bool {
		if r.Question[0].Name == "slow.example." {
			<-release
		}
		return false
	})
	defer close(release)
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t), MaxInFlight: 1, Timeout: 10 * time.Second})
	go func() {
		c := &dns.Client{Timeout: 10 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("slow.example.", dns.TypeA)
		_, _, _ = c.Exchange(m, addr)
	}()
	e2e.WaitFor(t, "the slow query in flight", 20*time.Second, func() bool { return p.Stats().InFlight == 1 })
	r := query(t, addr, "udp", "allowed.example", dns.TypeA, false)
	if r.Rcode != dns.RcodeRefused {
		t.Fatalf("beyond the in-flight bound: rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	if st := p.Stats(); st.Refused != 1 {
		t.Errorf("refused = %d, want 1", st.Refused)
	}
}

func TestRejectedQuestions(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	_, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t)})
	c := &dns.Client{Timeout: 3 * time.Second}
	for _, tt := range []struct {
		name  string
		build func(m *dns.Msg)
		rcode int
	}{
		{"chaos class", func(m *dns.Msg) { m.SetQuestion("version.bind.", dns.TypeTXT); m.Question[0].Qclass = dns.ClassCHAOS }, dns.RcodeRefused},
		{"zone transfer", func(m *dns.Msg) { m.SetQuestion("example.", dns.TypeAXFR) }, dns.RcodeRefused},
		{"update opcode", func(m *dns.Msg) { m.SetUpdate("example.") }, dns.RcodeNotImplemented},
		{"two questions", func(m *dns.Msg) {
			m.SetQuestion("a.example.", dns.TypeA)
			m.Question = append(m.Question, m.Question[0])
		}, dns.RcodeFormatError},
		{"edns version 1", func(m *dns.Msg) {
			m.SetQuestion("allowed.example.", dns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
		}, dns.RcodeBadVers},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := new(dns.Msg)
			tt.build(m)
			r, _, err := c.Exchange(m, addr)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tt.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
		})
	}
	if up.queries.Load() != 0 {
		t.Errorf("rejected queries reached the upstream")
	}
}

func TestDOBitPassedThrough(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	var sawDO atomic.Bool
	up.setHook(func(w dns.ResponseWriter, r *dns.Msg) bool {
		sawDO.Store(r.IsEdns0() != nil && r.IsEdns0().Do())
		return false
	})
	_, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t)})
	m := new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	m.SetEdns0(4096, true)
	r, _, err := (&dns.Client{}).Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	if !sawDO.Load() || r.IsEdns0() == nil || !r.IsEdns0().Do() {
		t.Errorf("DO bit: upstream saw %v, reply OPT %v", sawDO.Load(), r.IsEdns0())
	}
	if r.IsEdns0().UDPSize() != upstreamUDPSize {
		t.Errorf("advertised UDP size = %d, want %d", r.IsEdns0().UDPSize(), upstreamUDPSize)
	}
}

func TestRunListenError(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	p, err := New(Config{Listen: []string{pc.LocalAddr().String()}, Upstreams: []string{"192.0.2.1"}, Decider: newDecider(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen udp") {
		t.Errorf("Run on a taken port = %v, want a listen error", err)
	}
}

func TestConfigErrors(t *testing.T) {
	d := newDecider(t)
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no listen", Config{Decider: d}, "no listen address"},
		{"bad listen", Config{Listen: []string{"127.0.0.1"}, Decider: d}, "want host:port"},
		{"name upstream", Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{"dns.google"}, Decider: d}, "not an IP"},
		{"no decider", Config{Listen: []string{"127.0.0.1:0"}}, "no Decider"},
		{"sink without address", Config{Listen: []string{"127.0.0.1:0"}, Decider: d, BlockAnswer: BlockSink}, "sink"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestUnavailableListenSkipped(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	// 192.0.2.1 is on no interface here: skipped, the loopback one serves.
	p, addr := startProxy(t, Config{Listen: []string{"192.0.2.1:0", "127.0.0.1:0"}, Upstreams: []string{up.addr}, Decider: newDecider(t)})
	if r := query(t, addr, "udp", "allowed.example", dns.TypeA, false); len(r.Answer) != 1 {
		t.Fatalf("answer = %v", r)
	}
	if n := len(p.Addrs()); n != 2 {
		t.Errorf("bound %d sockets, want 2 (UDP+TCP on loopback only)", n)
	}
}

// fakeReader returns a datagram at once for every read.
type fakeReader struct{ dns.Reader }

func (fakeReader) ReadUDP(*net.UDPConn, time.Duration) ([]byte, *dns.SessionUDP, error) {
	return make([]byte, 12), nil, nil
}

// TestSlotReaderBoundsGoroutines: with every slot taken, the reader waits
// (no new datagram, so no new goroutine) until a goroutine gives one back.
func TestSlotReaderBoundsGoroutines(t *testing.T) {
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Decider: newDecider(t), MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := slotReader{fakeReader{}, p.slots}
	for range cap(p.slots) {
		if _, _, err := r.ReadUDP(nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	read := make(chan struct{})
	go func() { _, _, _ = r.ReadUDP(nil, 0); close(read) }()
	select {
	case <-read:
		t.Fatal("read a datagram with every slot taken")
	case <-time.After(50 * time.Millisecond):
	}
	p.release() // one goroutine finished
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		t.Fatal("reader still waiting after a slot was given back")
	}
}

// TestSlotsReturned: after malformed, rejected, refused and answered
// datagrams, every slot is free again.
func TestSlotsReturned(t *testing.T) {
	up := newTestUpstream(t, testRecords...)
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t, testRules()...)})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, s := range hostileSeeds() {
		_, _ = c.Write(s)
	}
	// Refused by the header check: a response, an UPDATE, two questions.
	for _, f := range []func(m *dns.Msg){
		func(m *dns.Msg) { m.Response = true },
		func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate },
		func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) },
	} {
		m := new(dns.Msg)
		m.SetQuestion("allowed.example.", dns.TypeA)
		f(m)
		b, _ := m.Pack()
		_, _ = c.Write(b)
	}
	query(t, addr, "udp", "allowed.example", dns.TypeA, false)
	query(t, addr, "udp", "bad.example", dns.TypeA, false)
	// The goroutines give their slots back after writing the reply.
	e2e.WaitFor(t, "every slot given back", 20*time.Second, func() bool { return len(p.slots) == 0 })
}
