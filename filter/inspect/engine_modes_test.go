package inspect

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/netward/netward/filter"
)

func inspUDPPacket(t testing.TB, dst string, dport uint16, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP("192.0.2.1"), DstIP: net.ParseIP(dst)}
	udp := &layers.UDP{SrcPort: 50000, DstPort: layers.UDPPort(dport)}
	_ = udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// inspQUICDatagrams reads a capture of 2-byte-length-prefixed datagrams.
func inspQUICDatagrams(t testing.TB, name string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "inspect", name))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(b) >= 2 {
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			t.Fatal("truncated datagram capture")
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

// inspHello returns the ClientHello Go's crypto/tls sends for sni.
func inspHello(t testing.TB, sni string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		_ = tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
		c.Close()
	}()
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := s.Read(buf)
		got = append(got, buf[:n]...)
		if l, herr := HelloLength(got); herr == nil {
			return got[:l]
		} else if !errors.Is(herr, ErrNeedMore) || err != nil {
			t.Fatalf("capture hello for %q: %v %v", sni, herr, err)
		}
	}
}

type inspStep struct {
	pkt  []byte
	want Verdict
}

// TestEngineModes runs packet sequences through the engine and checks
// the verdict of every packet and the decision event of the flow.
func TestEngineModes(t *testing.T) {
	p, err := filter.Compile([]filter.Rule{
		{Value: "quic.example.com", Type: filter.TypeDomain, Action: filter.Block, ID: "1"},
		{Value: "warned.example", Type: filter.TypeDomain, Action: filter.Warn, ID: "2"},
		{Value: "198.51.100.7", Type: filter.TypeIP, Action: filter.Block, ID: "3"},
		{Value: "http://www.example.com/blocked/", Type: filter.TypeURL, Action: filter.Block, ID: "4"},
	})
	if err != nil {
		t.Fatal(err)
	}
	v1 := inspQUICDatagrams(t, "quicgo-v1.bin")
	v2 := inspQUICDatagrams(t, "quicgo-v2.bin")
	httpReq, err := os.ReadFile(filepath.Join("..", "..", "testdata", "inspect", "curl-http.bin")) // GET /blocked/path?q=1
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 1200)
	for i := range garbage {
		garbage[i] = byte(i*7 + 3)
	}
	const srv = "203.0.113.5"
	tcp := func(port uint16, seq uint32, syn bool, pl []byte) []byte {
		return inspTCPPacket(t, srv, port, seq, syn, pl)
	}
	syn := func(port uint16) []byte { return tcp(port, 999, true, nil) }
	doh := inspHello(t, "dns.google")
	warn := inspHello(t, "www.warned.example")
	noSNI := inspHello(t, "")

	tests := []struct {
		name  string
		cfg   Config
		steps []inspStep
		// the flow's event, if event
		source    Source
		reason    Reason
		eventName string
		verdict   filter.Verdict
		event     bool // the flow has an event
	}{
		{name: "quic v1 blocked name",
			// quic-go's post-quantum hello spans two datagrams; a third
			// (a retransmission) gets the flow's mark without a new decision.
			steps: []inspStep{{inspUDPPacket(t, srv, 443, v1[0]), Undecided}, {inspUDPPacket(t, srv, 443, v1[1]), Refuse},
				{inspUDPPacket(t, srv, 443, v1[0]), Refuse}},
			source: SourceQUIC, event: true, eventName: "quic.example.com", verdict: filter.VerdictBlock},
		{name: "quic v2 blocked name", steps: []inspStep{{inspUDPPacket(t, srv, 443, v2[0]), Undecided}, {inspUDPPacket(t, srv, 443, v2[1]), Refuse}},
			source: SourceQUIC, event: true, eventName: "quic.example.com", verdict: filter.VerdictBlock},
		{name: "quic block mode", cfg: Config{QUIC: QUICBlock},
			steps:  []inspStep{{inspUDPPacket(t, srv, 443, garbage), Refuse}},
			source: SourceQUIC, event: true, reason: ReasonQUICBlock, verdict: filter.VerdictBlock},
		{name: "quic allow mode", cfg: Config{QUIC: QUICAllow},
			steps: []inspStep{{inspUDPPacket(t, srv, 443, v1[0]), Undecided}}},
		{name: "quic unreadable dropped", steps: []inspStep{{inspUDPPacket(t, srv, 443, garbage), Refuse}},
			source: SourceQUIC, event: true, reason: ReasonUnreadable, verdict: filter.VerdictBlock},
		{name: "udp other port untouched", steps: []inspStep{{inspUDPPacket(t, srv, 4433, v1[0]), Undecided}}},
		{name: "quic to blocked ip", steps: []inspStep{{inspUDPPacket(t, "198.51.100.7", 443, garbage), Refuse}},
			source: SourceIP, event: true, verdict: filter.VerdictBlock},
		{name: "DoT blocked with DNS capture", cfg: Config{BlockEncryptedDNS: true},
			steps:  []inspStep{{syn(853), Refuse}},
			source: SourceIP, event: true, reason: ReasonDoT, verdict: filter.VerdictBlock},
		{name: "DoT read for a name without DNS capture",
			steps:  []inspStep{{syn(853), Undecided}, {tcp(853, 1000, false, warn), Refuse}},
			source: SourceSNI, event: true, eventName: "www.warned.example", verdict: filter.VerdictWarn},
		{name: "DoH server blocked by SNI with DNS capture", cfg: Config{BlockEncryptedDNS: true},
			steps:  []inspStep{{syn(443), Undecided}, {tcp(443, 1000, false, doh), Refuse}},
			source: SourceSNI, event: true, reason: ReasonDoH, eventName: "dns.google", verdict: filter.VerdictBlock},
		{name: "DoH server allowed without DNS capture",
			steps:  []inspStep{{syn(443), Undecided}, {tcp(443, 1000, false, doh), Allow}},
			source: SourceSNI, event: true, eventName: "dns.google", verdict: filter.VerdictAllow},
		{name: "warn without bypass is reset",
			steps:  []inspStep{{syn(443), Undecided}, {tcp(443, 1000, false, warn[:700]), Undecided}, {tcp(443, 1700, false, warn[700:]), Refuse}},
			source: SourceSNI, event: true, eventName: "www.warned.example", verdict: filter.VerdictWarn},
		{name: "no SNI: IP rules only",
			steps:  []inspStep{{syn(443), Undecided}, {tcp(443, 1000, false, noSNI), Allow}},
			source: SourceIP, event: true, verdict: filter.VerdictAllow},
		{name: "http url with path",
			steps:  []inspStep{{syn(80), Undecided}, {tcp(80, 1000, false, httpReq), Refuse}},
			source: SourceHTTP, event: true, eventName: "www.example.com", verdict: filter.VerdictBlock},
		{name: "garbage on 443 allowed by default",
			steps:  []inspStep{{syn(443), Undecided}, {tcp(443, 1000, false, garbage), Allow}},
			source: SourceIP, event: true, reason: ReasonUnreadable, verdict: filter.VerdictAllow},
		{name: "garbage on 443 blocked fail-closed", cfg: Config{FailClosed: true},
			steps:  []inspStep{{syn(443), Undecided}, {tcp(443, 1000, false, garbage), Refuse}},
			source: SourceIP, event: true, reason: ReasonUnreadable, verdict: filter.VerdictBlock},
		{name: "other tcp port decided at SYN",
			steps:  []inspStep{{syn(22), Allow}},
			source: SourceIP, event: true, verdict: filter.VerdictAllow},
		{name: "blocked ip decided at SYN",
			steps:  []inspStep{{inspTCPPacket(t, "198.51.100.7", 22, 999, true, nil), Refuse}},
			source: SourceIP, event: true, verdict: filter.VerdictBlock},
		{name: "undecodable packet accepted", steps: []inspStep{{[]byte{0x45, 1, 2}, Undecided}}},
		{name: "empty packet accepted", steps: []inspStep{{nil, Undecided}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var events []Event
			cfg := tc.cfg
			cfg.OnDecision = func(e Event) { events = append(events, e) }
			e := newTestEngine(t, p, cfg)
			for i, s := range tc.steps {
				if v := e.Decide(s.pkt); v != s.want {
					t.Fatalf("packet %d: verdict %v, want %v (stats %+v)", i, v, s.want, e.Stats())
				}
			}
			if !tc.event {
				if len(events) != 0 {
					t.Fatalf("events %+v, want none", events)
				}
				return
			}
			if len(events) != 1 {
				t.Fatalf("events %+v, want one", events)
			}
			ev := events[0]
			if ev.Source != tc.source || ev.Reason != tc.reason || ev.Name != tc.eventName || ev.Decision.Verdict != tc.verdict {
				t.Errorf("event source %v reason %q name %q verdict %v, want %v %q %q %v",
					ev.Source, ev.Reason, ev.Name, ev.Decision.Verdict, tc.source, tc.reason, tc.eventName, tc.verdict)
			}
		})
	}
}

// A full flow table lets new flows pass uninspected (counted), and a
// decided flow's late packets get the same verdict without a second decision.
func TestEngineBounds(t *testing.T) {
	p, err := filter.Compile([]filter.Rule{{Value: "198.51.100.7", Type: filter.TypeIP, Action: filter.Block, ID: "3"}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	count := func(Event) { n++ }
	e := newTestEngine(t, p, Config{MaxFlows: 2, OnDecision: count})
	for _, dst := range []string{"203.0.113.1", "203.0.113.2"} {
		if v := e.Decide(inspTCPPacket(t, dst, 443, 1, true, nil)); v != Undecided {
			t.Fatalf("SYN to %s: verdict %v", dst, v)
		}
	}
	if v := e.Decide(inspTCPPacket(t, "203.0.113.3", 443, 1, true, nil)); v != Undecided || e.Stats().FlowsFull != 1 {
		t.Fatalf("third flow: verdict %v, flowsFull %d, want undecided and 1", v, e.Stats().FlowsFull)
	}
	quic := inspUDPPacket(t, "198.51.100.7", 443, []byte("x"))
	e = newTestEngine(t, p, Config{MaxFlows: 100, OnDecision: count})
	for i := 0; i < 3; i++ {
		if v := e.Decide(quic); v != Refuse {
			t.Fatalf("datagram %d: verdict %v, want refuse", i, v)
		}
	}
	if n != 1 {
		t.Errorf("%d decisions for one flow, want 1", n)
	}
}

// Without a queued SYN, a connection that reuses a decided 4-tuple is told
// apart by its sequence numbers and inspected anew.
func TestEngineReusedTuple(t *testing.T) {
	p, err := filter.Compile([]filter.Rule{{Value: "www.warned.example", Type: filter.TypeDomain, Action: filter.Block, ID: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t, p, Config{})
	ok, bad := inspHello(t, "ok.example"), inspHello(t, "www.warned.example")
	const dst = "203.0.113.5"
	if v := e.Decide(inspTCPPacket(t, dst, 443, 1000, false, ok)); v != Allow {
		t.Fatalf("first connection: verdict %v, want allow", v)
	}
	// A retransmission of the decided connection keeps its mark.
	if v := e.Decide(inspTCPPacket(t, dst, 443, 1000, false, ok)); v != Allow {
		t.Fatalf("retransmission: verdict %v, want allow", v)
	}
	// Same 4-tuple, far-away sequence numbers: a new connection.
	if v := e.Decide(inspTCPPacket(t, dst, 443, 0x80000000, false, bad)); v != Refuse {
		t.Fatalf("new connection on the same 4-tuple: verdict %v, want block", v)
	}
}

// FuzzEngine feeds arbitrary packets to the engine: it must never panic
// and only ever return one of its three verdicts. Seeds are the real client
// captures of testdata/inspect (see its README.md for how each was made:
// curl, openssl s_client, Go crypto/tls with X25519MLKEM768, quic-go) wrapped
// in IPv4 TCP and UDP packets.
func FuzzEngine(f *testing.F) {
	for _, name := range []string{"curl-tls13.bin", "openssl-tls12.bin", "openssl-tls13.bin", "go-mlkem.bin", "curl-http.bin"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "inspect", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(inspTCPPacket(f, "203.0.113.5", 443, 999, true, nil), inspTCPPacket(f, "203.0.113.5", 443, 1000, false, b))
	}
	// A forward proxy conversation: CONNECT, then the tunnel's ClientHello.
	curl, err := os.ReadFile(filepath.Join("..", "..", "testdata", "inspect", "curl-tls13.bin"))
	if err != nil {
		f.Fatal(err)
	}
	head := []byte("CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\n\r\n")
	f.Add(inspTCPPacket(f, "203.0.113.5", 3128, 1000, false, head), inspTCPPacket(f, "203.0.113.5", 3128, 1000+uint32(len(head)), false, curl))
	for _, name := range []string{"quicgo-v1.bin", "quicgo-v2.bin"} {
		dgs := inspQUICDatagrams(f, name)
		f.Add(inspUDPPacket(f, "203.0.113.5", 443, dgs[0]), inspUDPPacket(f, "203.0.113.5", 443, dgs[min(1, len(dgs)-1)]))
	}
	p, err := filter.Compile([]filter.Rule{{Value: "www.example.com", Type: filter.TypeDomain, Action: filter.Block, ID: "1"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		e := newTestEngine(t, p, Config{BlockEncryptedDNS: true, ProxyPorts: []uint16{3128}})
		for _, pkt := range [][]byte{a, b, a} {
			switch v := e.packet(pkt); v {
			case Undecided, Allow, Refuse:
			default:
				t.Fatalf("verdict %v", v)
			}
		}
	})
}

// An IPv6 destination options header between IPv6 and TCP must not hide
// the ClientHello.
func TestEngineIPv6Extension(t *testing.T) {
	p, err := filter.Compile([]filter.Rule{{Value: "www.warned.example", Type: filter.TypeDomain, Action: filter.Block, ID: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t, p, Config{})
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
		SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 1000, ACK: true, PSH: true, Window: 1000}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, tcp, gopacket.Payload(inspHello(t, "www.warned.example"))); err != nil {
		t.Fatal(err)
	}
	plain := buf.Bytes()
	// Splice in an 8-byte destination options header (RFC 8200 §4.6): next
	// header TCP, length 0, one PadN option of 4 bytes.
	pkt := append(append(append([]byte{}, plain[:40]...), 6, 0, 1, 4, 0, 0, 0, 0), plain[40:]...)
	pkt[6] = 60 // IPv6 next header: destination options
	binary.BigEndian.PutUint16(pkt[4:], binary.BigEndian.Uint16(plain[4:])+8)
	if v := e.Decide(pkt); v != Refuse {
		t.Fatalf("verdict %v, want refuse (stats %+v)", v, e.Stats())
	}
}
