package inspect

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/guard"
)

// decisions is a decision point holding p.
func decisions(p *filter.Policy) *filter.DecisionPoint {
	d := filter.NewDecisionPoint(filter.Settings{}, nil)
	d.Set(p, filter.Settings{})
	return d
}

// newTestEngine is NewEngine(cfg) deciding by p unless cfg has a decider.
func newTestEngine(t testing.TB, p *filter.Policy, cfg Config) *Engine {
	t.Helper()
	if cfg.Decider == nil {
		cfg.Decider = decisions(p)
	}
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
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

func TestEngineTLS(t *testing.T) {
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
	var events []Event
	e := newTestEngine(t, p, Config{OnDecision: func(e Event) { events = append(events, e) }})
	tests := []struct {
		name  string
		dst   string
		split int
		want  Verdict
	}{
		{"blocked name, one segment", "203.0.113.5", len(hello), Refuse},
		{"blocked name, split", "203.0.113.5", 50, Refuse},
		{"blocked ip from SYN", "198.51.100.7", len(hello), Refuse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if v := e.Decide(inspTCPPacket(t, tc.dst, 443, 999, true, nil)); v != Undecided && tc.dst != "198.51.100.7" {
				t.Fatalf("SYN verdict = %v, want undecided", v)
			} else if v != Undecided {
				if v != tc.want {
					t.Fatalf("SYN verdict = %v, want %v", v, tc.want)
				}
				return
			}
			var v Verdict
			if tc.split < len(hello) {
				if v = e.Decide(inspTCPPacket(t, tc.dst, 443, 1000+uint32(tc.split), false, hello[tc.split:])); v != Undecided {
					t.Fatalf("second half first: verdict %v, want undecided", v)
				}
			}
			v = e.Decide(inspTCPPacket(t, tc.dst, 443, 1000, false, hello[:tc.split]))
			if v != tc.want {
				t.Fatalf("verdict = %v, want %v (stats %+v)", v, tc.want, e.Stats())
			}
		})
	}
	if len(events) != 3 || events[0].Source != SourceSNI || events[0].Name != "blocked.example.org" || events[2].Source != SourceIP {
		t.Errorf("events = %+v", events)
	}
}

// panicAddr is a decider whose IP decision panics, as a bug would.
type panicAddr struct{ filter.Decider }

func (panicAddr) DecideAddr(netip.Addr) filter.Decision { panic("decision bug") }

// TestEngineDecidePanic: a panic while deciding a packet accepts the
// packet undecided (fail-open), is counted, and the next packet is decided.
func TestEngineDecidePanic(t *testing.T) {
	p, err := filter.Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	panics := guard.New(nil)
	e := newTestEngine(t, p, Config{Decider: panicAddr{decisions(p)}, Panics: panics})
	for range 3 {
		if v := e.Decide(inspTCPPacket(t, "198.51.100.7", 22, 1, true, nil)); v != Undecided {
			t.Fatalf("verdict = %v, want undecided (accepted)", v)
		}
	}
	if got := e.Stats().Panics; got != 3 {
		t.Errorf("Panics = %d, want 3", got)
	}
	if got := panics.Count("inspect"); got != 3 {
		t.Errorf("guard count = %d, want 3", got)
	}
}
