package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/agent/notify"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/dnsproxy"
	"github.com/netward/netward/telemetry"
)

// dnsUpstream is a real miekg server on loopback answering every A query
// with 192.0.2.1.
func dnsUpstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A 192.0.2.1")
			m.Answer = []dns.RR{rr}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestStartDNS(t *testing.T) {
	up := dnsUpstream(t)
	cfg, err := parseConfig(t, []byte(`{"version":1,"dataDir":"`+t.TempDir()+`",
		"dns":{"listen":["127.0.0.1:0"],"upstreams":["`+up+`"],"syntheticTtlSeconds":5},
		"warn":{"sinkAddress":"`+testSink+`"}}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.dnsStats(); ok {
		t.Errorf("DNSStats before start: ok")
	}
	recs := make(chan telemetry.Record, 16)
	a.addSink(func(r telemetry.Record) { recs <- r })
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	if err := a.startDNS(gctx, g); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Errorf("dns component: %v", err)
		}
	}()
	addr := a.dns.proxy.Load().Addrs()[0].String()
	ask := func(name string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.SetEdns0(1232, false)
		r, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	if r := ask("app.example."); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("no policy: %v", r)
	}
	if n, ok := a.tel.names.Lookup(netip.MustParseAddr("192.0.2.1")); !ok || n != "app.example" {
		t.Errorf("telemetry names.Lookup = %q, %v; want app.example (the map must be shared)", n, ok)
	}
	p, err := filter.Compile([]filter.Rule{{Value: "example", Type: filter.TypeDomain, Action: filter.Block, ID: "42", Meta: &filter.RuleMeta{Application: "Ex"}}})
	if err != nil {
		t.Fatal(err)
	}
	a.dp.SetPolicy(p)
	r := ask("app.example.")
	if r.Rcode != dns.RcodeNameError {
		t.Fatalf("next query after SetPolicy: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	select {
	case rec := <-recs:
		if rec.ActionType != telemetry.NetworkProtectionBlocked || rec.Source != telemetry.SourceDNS || rec.Protocol != telemetry.ProtoDNS ||
			rec.RemoteUrl != "app.example" || rec.IndicatorId != "42" || rec.Application != "Ex" || rec.LocalIP != "" || rec.LocalPort == 0 || rec.Timestamp.IsZero() {
			t.Errorf("record = %+v", rec)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no telemetry record for a blocked query")
	}
	st, ok := a.dnsStats()
	if !ok || st.ByVerdict["block"] != 1 || st.UpstreamQueries != 1 {
		t.Errorf("DNSStats = %+v, %v", st, ok)
	}

	// `netward status --json` names every counter of docs/dns.md, also the
	// ones still zero (the control API's own schema, CONTRACT §3).
	b, err := json.Marshal(a.controlStatus().Interception.DNSStats)
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]json.RawMessage
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"queries", "byVerdict", "special", "cacheHits", "cacheMisses", "cacheEntries", "upstreamQueries",
		"upstreamErrors", "servFail", "badReplies", "tcpRetries", "inFlight", "refused", "rejected", "panics",
		"latencyCounts", "latencySumNs", "upstreams"} {
		if _, ok := wire[k]; !ok {
			t.Errorf("status dnsStats lacks %q: %s", k, b)
		}
	}
	if string(wire["panics"]) != "0" || string(wire["upstreamQueries"]) != "1" {
		t.Errorf("status dnsStats panics %s, upstreamQueries %s; want 0 and 1", wire["panics"], wire["upstreamQueries"])
	}
}

func TestStartDNSListenError(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cfg, err := parseConfig(t, []byte(`{"version":1,"dataDir":"`+t.TempDir()+`","dns":{"listen":["`+pc.LocalAddr().String()+`"],"upstreams":["192.0.2.1"]}}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, gctx := errgroup.WithContext(context.Background())
	if err := a.startDNS(gctx, g); err == nil {
		t.Errorf("startDNS on a taken port: no error")
	}
	_ = g.Wait()
}

func TestCaptureTargets(t *testing.T) {
	t4, t6 := captureTargets([]net.Addr{
		&net.TCPAddr{IP: net.ParseIP("127.0.0.153"), Port: 53},
		&net.UDPAddr{IP: net.ParseIP("127.0.0.153"), Port: 53},
		&net.UDPAddr{IP: net.ParseIP("::1"), Port: 53},
	})
	if t4.String() != "127.0.0.153:53" || t6.String() != "[::1]:53" {
		t.Errorf("captureTargets = %v, %v", t4, t6)
	}
}

// TestEmitDNSRecord: a DNS decision's record is dated by the proxy's own
// clock read (Event.At) when it carries one, else by the agent's clock; a
// loopback client's address is left out (CONTRACT §6), another's kept.
func TestEmitDNSRecord(t *testing.T) {
	a := bareAgent(t, func(c *config.Config) { c.Device.ID = "dev-d" })
	agentNow := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return agentNow }
	var recs []telemetry.Record
	a.addSink(func(r telemetry.Record) { recs = append(recs, r) })
	p, err := filter.Compile([]filter.Rule{{Value: "bad.example", Type: filter.TypeDomain, Action: filter.Block, ID: "7"}})
	if err != nil {
		t.Fatal(err)
	}
	a.dp.SetPolicy(p)
	d := a.dp.DecideName("bad.example")
	at := time.Date(2026, 12, 7, 1, 2, 3, 4, time.FixedZone("x", 3600))
	a.emitDNS(dnsproxy.Event{Name: "bad.example", QName: "bad.example", Decision: d, Proto: "udp",
		Client: netip.MustParseAddrPort("127.0.0.1:40000"), At: at})
	a.emitDNS(dnsproxy.Event{Name: "bad.example", QName: "bad.example", Decision: d, Proto: "udp",
		Client: netip.MustParseAddrPort("[2001:db8::9]:53000")})
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	if r := recs[0]; !r.Timestamp.Equal(at) || r.Timestamp.Location() != time.UTC || r.LocalIP != "" || r.LocalPort != 40000 ||
		r.IndicatorId != "7" || r.DeviceId != "dev-d" {
		t.Errorf("fast-path record %+v: want dated %v in UTC, no LocalIP, port 40000, indicator 7", r, at)
	}
	if r := recs[1]; !r.Timestamp.Equal(agentNow) || r.LocalIP != "2001:db8::9" || r.LocalPort != 53000 {
		t.Errorf("general-path record %+v: want dated by the agent's clock, LocalIP 2001:db8::9", r)
	}
}

// TestEmitDNSNoticeAt: the desktop notice of a DNS refusal is dated, and
// rate-limited, by the proxy's clock read (Event.At), not by a second read
// of the agent's clock: three refusals of one name 30 s apart by At, while
// the agent's clock stands still, are two notices (one a minute).
func TestEmitDNSNoticeAt(t *testing.T) {
	a := bareAgent(t, nil)
	still := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	notices := make(chan notify.Notice, 8)
	n := notify.New(notify.Config{Backend: inspNoticeRecorder(notices), Interval: time.Minute,
		Now: func() time.Time { return still }})
	a.warn.notifier.Store(n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	p, err := filter.Compile([]filter.Rule{{Value: "bad.example", Type: filter.TypeDomain, Action: filter.Block, ID: "7"}})
	if err != nil {
		t.Fatal(err)
	}
	a.dp.SetPolicy(p)
	d := a.dp.DecideName("bad.example")
	at := time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC)
	for i := range 3 {
		a.emitDNS(dnsproxy.Event{Name: "bad.example", QName: "bad.example", Decision: d, Proto: "udp",
			Client: netip.MustParseAddrPort("127.0.0.1:40000"), At: at.Add(time.Duration(i) * 31 * time.Second)})
	}
	var got []time.Time
	for len(got) < 2 {
		select {
		case nt := <-notices:
			got = append(got, nt.At)
		case <-time.After(5 * time.Second):
			t.Fatalf("notices dated %v; want two (at %v and a minute later)", got, at)
		}
	}
	if !got[0].Equal(at) || !got[1].Equal(at.Add(62*time.Second)) {
		t.Errorf("notices dated %v; want %v and %v", got, at, at.Add(62*time.Second))
	}
}
