package hostnet

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
	"github.com/netward/netward/filter/inspect"
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
		if l, herr := inspect.HelloLength(got); herr == nil {
			return got[:l]
		} else if !errors.Is(herr, inspect.ErrNeedMore) || err != nil {
			t.Fatalf("capture hello for %q: %v %v", sni, herr, err)
		}
	}
}

type inspStep struct {
	pkt  []byte
	want uint32
}

// TestInspEngineModes runs packet sequences through the engine and checks
// the mark of every packet and the decision event of the flow.
func TestInspEngineModes(t *testing.T) {
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
		cfg   InspectConfig
		steps []inspStep
		// the flow's event; Source "" means no event.
		source, reason, eventName string
		verdict                   filter.Verdict
	}{
		{name: "quic v1 blocked name",
			// quic-go's post-quantum hello spans two datagrams; a third
			// (a retransmission) gets the flow's mark without a new decision.
			steps: []inspStep{{inspUDPPacket(t, srv, 443, v1[0]), 0}, {inspUDPPacket(t, srv, 443, v1[1]), InspectMarkBlock},
				{inspUDPPacket(t, srv, 443, v1[0]), InspectMarkBlock}},
			source: "quic", eventName: "quic.example.com", verdict: filter.VerdictBlock},
		{name: "quic v2 blocked name", steps: []inspStep{{inspUDPPacket(t, srv, 443, v2[0]), 0}, {inspUDPPacket(t, srv, 443, v2[1]), InspectMarkBlock}},
			source: "quic", eventName: "quic.example.com", verdict: filter.VerdictBlock},
		{name: "quic block mode", cfg: InspectConfig{QUIC: QUICBlock},
			steps:  []inspStep{{inspUDPPacket(t, srv, 443, garbage), InspectMarkBlock}},
			source: "quic", reason: "quic-block", verdict: filter.VerdictBlock},
		{name: "quic allow mode", cfg: InspectConfig{QUIC: QUICAllow},
			steps: []inspStep{{inspUDPPacket(t, srv, 443, v1[0]), 0}}},
		{name: "quic unreadable dropped", steps: []inspStep{{inspUDPPacket(t, srv, 443, garbage), InspectMarkBlock}},
			source: "quic", reason: "unreadable", verdict: filter.VerdictBlock},
		{name: "udp other port untouched", steps: []inspStep{{inspUDPPacket(t, srv, 4433, v1[0]), 0}}},
		{name: "quic to blocked ip", steps: []inspStep{{inspUDPPacket(t, "198.51.100.7", 443, garbage), InspectMarkBlock}},
			source: "ip", verdict: filter.VerdictBlock},
		{name: "DoT blocked with DNS capture", cfg: InspectConfig{BlockEncryptedDNS: true},
			steps:  []inspStep{{syn(853), InspectMarkBlock}},
			source: "ip", reason: "dot", verdict: filter.VerdictBlock},
		{name: "DoT read for a name without DNS capture",
			steps:  []inspStep{{syn(853), 0}, {tcp(853, 1000, false, warn), InspectMarkBlock}},
			source: "sni", eventName: "www.warned.example", verdict: filter.VerdictWarn},
		{name: "DoH server blocked by SNI with DNS capture", cfg: InspectConfig{BlockEncryptedDNS: true},
			steps:  []inspStep{{syn(443), 0}, {tcp(443, 1000, false, doh), InspectMarkBlock}},
			source: "sni", reason: "doh", eventName: "dns.google", verdict: filter.VerdictBlock},
		{name: "DoH server allowed without DNS capture",
			steps:  []inspStep{{syn(443), 0}, {tcp(443, 1000, false, doh), InspectMarkAllow}},
			source: "sni", eventName: "dns.google", verdict: filter.VerdictAllow},
		{name: "warn without bypass is reset",
			steps:  []inspStep{{syn(443), 0}, {tcp(443, 1000, false, warn[:700]), 0}, {tcp(443, 1700, false, warn[700:]), InspectMarkBlock}},
			source: "sni", eventName: "www.warned.example", verdict: filter.VerdictWarn},
		{name: "no SNI: IP rules only",
			steps:  []inspStep{{syn(443), 0}, {tcp(443, 1000, false, noSNI), InspectMarkAllow}},
			source: "ip", verdict: filter.VerdictAllow},
		{name: "http url with path",
			steps:  []inspStep{{syn(80), 0}, {tcp(80, 1000, false, httpReq), InspectMarkBlock}},
			source: "http", eventName: "www.example.com", verdict: filter.VerdictBlock},
		{name: "garbage on 443 allowed by default",
			steps:  []inspStep{{syn(443), 0}, {tcp(443, 1000, false, garbage), InspectMarkAllow}},
			source: "ip", reason: "unreadable", verdict: filter.VerdictAllow},
		{name: "garbage on 443 blocked fail-closed", cfg: InspectConfig{FailClosed: true},
			steps:  []inspStep{{syn(443), 0}, {tcp(443, 1000, false, garbage), InspectMarkBlock}},
			source: "ip", reason: "unreadable", verdict: filter.VerdictBlock},
		{name: "other tcp port decided at SYN",
			steps:  []inspStep{{syn(22), InspectMarkAllow}},
			source: "ip", verdict: filter.VerdictAllow},
		{name: "blocked ip decided at SYN",
			steps:  []inspStep{{inspTCPPacket(t, "198.51.100.7", 22, 999, true, nil), InspectMarkBlock}},
			source: "ip", verdict: filter.VerdictBlock},
		{name: "undecodable packet accepted", steps: []inspStep{{[]byte{0x45, 1, 2}, 0}}},
		{name: "empty packet accepted", steps: []inspStep{{nil, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var events []InspectEvent
			cfg := tc.cfg
			cfg.Decider = inspTestDecider{p}
			cfg.OnDecision = func(e InspectEvent) { events = append(events, e) }
			c, err := cfg.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			var stats inspCounters
			e := c.engine(&stats)
			for i, s := range tc.steps {
				if m := e.packet(s.pkt); m != s.want {
					t.Fatalf("packet %d: mark %#x, want %#x (stats %+v)", i, m, s.want, stats.snapshot())
				}
			}
			if tc.source == "" {
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
				t.Errorf("event source %q reason %q name %q verdict %v, want %q %q %q %v",
					ev.Source, ev.Reason, ev.Name, ev.Decision.Verdict, tc.source, tc.reason, tc.eventName, tc.verdict)
			}
		})
	}
}

// A full flow table lets new flows pass uninspected (counted), and a
// decided flow's late packets get the same mark without a second decision.
func TestInspEngineBounds(t *testing.T) {
	p, err := filter.Compile([]filter.Rule{{Value: "198.51.100.7", Type: filter.TypeIP, Action: filter.Block, ID: "3"}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	c, err := (&InspectConfig{Decider: inspTestDecider{p}, MaxFlows: 2, OnDecision: func(InspectEvent) { n++ }}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var stats inspCounters
	e := c.engine(&stats)
	for _, dst := range []string{"203.0.113.1", "203.0.113.2"} {
		if m := e.packet(inspTCPPacket(t, dst, 443, 1, true, nil)); m != 0 {
			t.Fatalf("SYN to %s: mark %#x", dst, m)
		}
	}
	if m := e.packet(inspTCPPacket(t, "203.0.113.3", 443, 1, true, nil)); m != 0 || stats.flowsFull.Load() != 1 {
		t.Fatalf("third flow: mark %#x, flowsFull %d, want 0 and 1", m, stats.flowsFull.Load())
	}
	quic := inspUDPPacket(t, "198.51.100.7", 443, []byte("x"))
	c.MaxFlows = 100
	e = c.engine(&stats)
	for i := 0; i < 3; i++ {
		if m := e.packet(quic); m != InspectMarkBlock {
			t.Fatalf("datagram %d: mark %#x, want block", i, m)
		}
	}
	if n != 1 {
		t.Errorf("%d decisions for one flow, want 1", n)
	}
}

// Without a queued SYN, a connection that reuses a decided 4-tuple is told
// apart by its sequence numbers and inspected anew.
func TestInspEngineReusedTuple(t *testing.T) {
	p, err := filter.Compile([]filter.Rule{{Value: "www.warned.example", Type: filter.TypeDomain, Action: filter.Block, ID: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := (&InspectConfig{Decider: inspTestDecider{p}}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var stats inspCounters
	e := c.engine(&stats)
	ok, bad := inspHello(t, "ok.example"), inspHello(t, "www.warned.example")
	const dst = "203.0.113.5"
	if m := e.packet(inspTCPPacket(t, dst, 443, 1000, false, ok)); m != InspectMarkAllow {
		t.Fatalf("first connection: mark %#x, want allow", m)
	}
	// A retransmission of the decided connection keeps its mark.
	if m := e.packet(inspTCPPacket(t, dst, 443, 1000, false, ok)); m != InspectMarkAllow {
		t.Fatalf("retransmission: mark %#x, want allow", m)
	}
	// Same 4-tuple, far-away sequence numbers: a new connection.
	if m := e.packet(inspTCPPacket(t, dst, 443, 0x80000000, false, bad)); m != InspectMarkBlock {
		t.Fatalf("new connection on the same 4-tuple: mark %#x, want block", m)
	}
}

// FuzzInspEngine feeds arbitrary packets to the engine: it must never panic
// and only ever return one of its three marks. Seeds are the real client
// captures of testdata/inspect (see its README.md for how each was made:
// curl, openssl s_client, Go crypto/tls with X25519MLKEM768, quic-go) wrapped
// in IPv4 TCP and UDP packets.
func FuzzInspEngine(f *testing.F) {
	for _, name := range []string{"curl-tls13.bin", "openssl-tls12.bin", "openssl-tls13.bin", "go-mlkem.bin", "curl-http.bin"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "inspect", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(inspTCPPacket(f, "203.0.113.5", 443, 999, true, nil), inspTCPPacket(f, "203.0.113.5", 443, 1000, false, b))
	}
	for _, name := range []string{"quicgo-v1.bin", "quicgo-v2.bin"} {
		dgs := inspQUICDatagrams(f, name)
		f.Add(inspUDPPacket(f, "203.0.113.5", 443, dgs[0]), inspUDPPacket(f, "203.0.113.5", 443, dgs[min(1, len(dgs)-1)]))
	}
	p, err := filter.Compile([]filter.Rule{{Value: "www.example.com", Type: filter.TypeDomain, Action: filter.Block, ID: "1"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		c, err := (&InspectConfig{Decider: inspTestDecider{p}, BlockEncryptedDNS: true}).withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		var stats inspCounters
		e := c.engine(&stats)
		for _, pkt := range [][]byte{a, b, a} {
			switch m := e.packet(pkt); m {
			case 0, InspectMarkAllow, InspectMarkBlock:
			default:
				t.Fatalf("mark %#x", m)
			}
		}
	})
}

// An IPv6 destination options header between IPv6 and TCP must not hide
// the ClientHello.
func TestInspEngineIPv6Extension(t *testing.T) {
	p, err := filter.Compile([]filter.Rule{{Value: "www.warned.example", Type: filter.TypeDomain, Action: filter.Block, ID: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := (&InspectConfig{Decider: inspTestDecider{p}}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var stats inspCounters
	e := c.engine(&stats)
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
	if m := e.packet(pkt); m != InspectMarkBlock {
		t.Fatalf("mark %#x, want block (stats %+v)", m, stats.snapshot())
	}
}
