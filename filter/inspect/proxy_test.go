package inspect

import (
	"testing"
	"time"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/e2e"
)

// A flow to a forward proxy port is decided by its CONNECT target, then by
// the ClientHello inside the tunnel; the event names the target, not the
// proxy. Without ProxyPorts the same flow is decided by the proxy's address.
func TestEngineForwardProxy(t *testing.T) {
	p, err := filter.Compile([]filter.Rule{
		{Value: "blocked.example", Type: filter.TypeDomain, Action: filter.Block, ID: "1"},
		{Value: "fronted.example", Type: filter.TypeDomain, Action: filter.Block, ID: "2"},
		{Value: "203.0.113.66", Type: filter.TypeIP, Action: filter.Block, ID: "3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	connect := func(target string) []byte {
		return []byte("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\nUser-Agent: curl/8\r\n\r\n")
	}
	const proxy = "198.51.100.8"
	const port = 3128
	tests := []struct {
		name string
		pkts [][]byte // payloads after the SYN, in order
		want []Verdict
		ev   Event // Source, Name and the verdict of the event
	}{
		{"blocked target", [][]byte{connect("blocked.example:443")}, []Verdict{Refuse},
			Event{Source: SourceHTTP, Name: "blocked.example"}},
		{"blocked IP target", [][]byte{connect("203.0.113.66:443")}, []Verdict{Refuse},
			Event{Source: SourceHTTP, Name: "203.0.113.66"}},
		{"allowed target, allowed SNI", [][]byte{connect("www.example:443"), inspHello(t, "www.example")}, []Verdict{Undecided, Allow},
			Event{Source: SourceSNI, Name: "www.example"}},
		{"allowed target, blocked SNI inside", [][]byte{connect("www.example:443"), inspHello(t, "fronted.example")}, []Verdict{Undecided, Refuse},
			Event{Source: SourceSNI, Name: "fronted.example"}},
		{"pipelined head and hello", [][]byte{append(connect("www.example:443"), inspHello(t, "blocked.example")...)}, []Verdict{Refuse},
			Event{Source: SourceSNI, Name: "blocked.example"}},
		{"tunnel without TLS", [][]byte{connect("ssh.example:22"), []byte("SSH-2.0-OpenSSH_9.2\r\n")}, []Verdict{Undecided, Allow},
			Event{Source: SourceHTTP, Name: "ssh.example"}},
		{"plain HTTP through the proxy", [][]byte{[]byte("GET http://blocked.example/x HTTP/1.1\r\nHost: blocked.example\r\n\r\n")}, []Verdict{Refuse},
			Event{Source: SourceHTTP, Name: "blocked.example"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var events []Event
			e := newTestEngine(t, p, Config{ProxyPorts: []uint16{port}, OnDecision: func(e Event) { events = append(events, e) }})
			if v := e.Decide(inspTCPPacket(t, proxy, port, 999, true, nil)); v != Undecided {
				t.Fatalf("SYN: %v", v)
			}
			seq := uint32(1000)
			for i, pl := range tc.pkts {
				if v := e.Decide(inspTCPPacket(t, proxy, port, seq, false, pl)); v != tc.want[i] {
					t.Fatalf("packet %d: verdict %v, want %v (events %+v)", i, v, tc.want[i], events)
				}
				seq += uint32(len(pl))
			}
			if len(events) != 1 || events[0].Source != tc.ev.Source || events[0].Name != tc.ev.Name || events[0].Remote.Port() != port ||
				(events[0].Reason == ReasonConnect) != (tc.ev.Source == SourceHTTP && tc.name != "plain HTTP through the proxy") {
				t.Errorf("events %+v, want one %s event naming %s", events, tc.ev.Source, tc.ev.Name)
			}
		})
	}

	// The tunnel's first bytes do not come within the window: the target decides.
	clk := e2e.NewClock(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	var events []Event
	e := newTestEngine(t, p, Config{ProxyPorts: []uint16{port}, Now: clk.Now, OnDecision: func(e Event) { events = append(events, e) }})
	e.Decide(inspTCPPacket(t, proxy, port, 999, true, nil))
	if v := e.Decide(inspTCPPacket(t, proxy, port, 1000, false, connect("slow.example:443"))); v != Undecided {
		t.Fatalf("CONNECT: %v", v)
	}
	clk.Add(DefaultHold + time.Second)
	if v := e.Decide(inspTCPPacket(t, proxy, port, 1000, false, connect("slow.example:443"))); v != Allow || len(events) != 1 || events[0].Name != "slow.example" {
		t.Errorf("after the window: %v, events %+v; want Allow by the target", v, events)
	}

	// Not a proxy port: the CONNECT is not read.
	events = nil
	e = newTestEngine(t, p, Config{OnDecision: func(e Event) { events = append(events, e) }})
	e.Decide(inspTCPPacket(t, proxy, port, 999, true, nil))
	if v := e.Decide(inspTCPPacket(t, proxy, port, 1000, false, connect("blocked.example:443"))); v == Refuse {
		t.Error("a CONNECT on a port not configured as a proxy was read")
	}
}
