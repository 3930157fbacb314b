package hostnet

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/guard"
)

type inspTestDecider struct{ p *filter.Policy }

func (d inspTestDecider) decide(m filter.Match) filter.Decision {
	return filter.Decide(m, filter.Settings{}, func(filter.Match) (time.Time, bool) { return time.Time{}, false })
}
func (d inspTestDecider) DecideName(n string) filter.Decision     { return d.decide(d.p.MatchName(n)) }
func (d inspTestDecider) DecideAddr(a netip.Addr) filter.Decision { return d.decide(d.p.MatchAddr(a)) }
func (d inspTestDecider) DecideURL(h, p string) filter.Decision {
	m := d.p.MatchURL(h, p)
	if m.Rule == nil {
		m = d.p.MatchName(h)
	}
	return d.decide(m)
}

func inspTCPPacket(t testing.TB, dst string, dport uint16, seq uint32, syn bool, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP("192.0.2.1"), DstIP: net.ParseIP(dst)}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(dport), Seq: seq, SYN: syn, ACK: !syn, Window: 1000}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestInspEngineTLS(t *testing.T) {
	p, err := filter.Compile([]filter.Rule{
		{Value: "blocked.example.org", Type: filter.TypeDomain, Action: filter.Block, ID: "1"},
		{Value: "198.51.100.7", Type: filter.TypeIP, Action: filter.Block, ID: "2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	hello, err := os.ReadFile(filepath.Join("..", "..", "testdata", "inspect", "openssl-tls12.bin")) // SNI blocked.example.org
	if err != nil {
		t.Fatal(err)
	}
	var events []InspectEvent
	cfg := InspectConfig{Decider: inspTestDecider{p}, OnDecision: func(e InspectEvent) { events = append(events, e) }}
	c, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var stats inspCounters
	e := c.engine(&stats)
	tests := []struct {
		name  string
		dst   string
		split int
		want  uint32
	}{
		{"blocked name, one segment", "203.0.113.5", len(hello), InspectMarkBlock},
		{"blocked name, split", "203.0.113.5", 50, InspectMarkBlock},
		{"blocked ip from SYN", "198.51.100.7", len(hello), InspectMarkBlock},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if m := e.packet(inspTCPPacket(t, tc.dst, 443, 999, true, nil)); m != 0 && tc.dst != "198.51.100.7" {
				t.Fatalf("SYN mark = %#x, want 0", m)
			} else if m != 0 {
				if m != tc.want {
					t.Fatalf("SYN mark = %#x, want %#x", m, tc.want)
				}
				return
			}
			var m uint32
			if tc.split < len(hello) {
				if m = e.packet(inspTCPPacket(t, tc.dst, 443, 1000+uint32(tc.split), false, hello[tc.split:])); m != 0 {
					t.Fatalf("second half first: mark %#x, want 0", m)
				}
			}
			m = e.packet(inspTCPPacket(t, tc.dst, 443, 1000, false, hello[:tc.split]))
			if m != tc.want {
				t.Fatalf("mark = %#x, want %#x (stats %+v)", m, tc.want, stats.snapshot())
			}
		})
	}
	if len(events) != 3 || events[0].Source != "sni" || events[0].Name != "blocked.example.org" || events[2].Source != "ip" {
		t.Errorf("events = %+v", events)
	}
}

// panicAddr is a decider whose IP decision panics, as a bug would.
type panicAddr struct{ inspTestDecider }

func (panicAddr) DecideAddr(netip.Addr) filter.Decision { panic("decision bug") }

// TestInspEngineDecidePanic: a panic while deciding a packet accepts the
// packet unmarked (fail-open), is counted, and the next packet is decided.
func TestInspEngineDecidePanic(t *testing.T) {
	p, err := filter.Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := InspectConfig{Decider: panicAddr{inspTestDecider{p}}, Panics: guard.New(nil)}
	c, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var stats inspCounters
	e := c.engine(&stats)
	for range 3 {
		if m := e.decide(inspTCPPacket(t, "198.51.100.7", 22, 1, true, nil), c.Panics); m != 0 {
			t.Fatalf("mark = %#x, want 0 (accepted unmarked)", m)
		}
	}
	if got := stats.snapshot().Panics; got != 3 {
		t.Errorf("Panics = %d, want 3", got)
	}
	if got := c.Panics.Count("inspect"); got != 3 {
		t.Errorf("guard count = %d, want 3", got)
	}
}
