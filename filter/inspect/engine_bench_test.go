package inspect

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/netward/netward/filter"
)

// BenchmarkEngineFlow is the userspace work of one TLS connection: the
// SYN and the ClientHello segment through the engine to the allow verdict —
// what every inspected connection costs besides the queue round trips.
func BenchmarkEngineFlow(b *testing.B) {
	p, err := filter.Compile([]filter.Rule{
		{Value: "blocked.example.org", Type: filter.TypeDomain, Action: filter.Block, ID: "1"},
		{Value: "198.51.100.0/24", Type: filter.TypeIP, Action: filter.Block, ID: "2"},
	})
	if err != nil {
		b.Fatal(err)
	}
	hello, err := os.ReadFile(filepath.Join("..", "..", "testdata", "inspect", "curl-tls13.bin"))
	if err != nil {
		b.Fatal(err)
	}
	e := newTestEngine(b, p, Config{})
	syn := inspTCPPacket(b, "203.0.113.5", 443, 999, true, nil)
	data := inspTCPPacket(b, "203.0.113.5", 443, 1000, false, hello)
	b.ReportAllocs()
	port := uint16(1)
	for b.Loop() {
		// a new source port per iteration: a new flow each time
		port++
		binary.BigEndian.PutUint16(syn[20:], port)
		binary.BigEndian.PutUint16(data[20:], port)
		e.Decide(syn)
		if v := e.Decide(data); v != Allow {
			b.Fatalf("verdict %v", v)
		}
	}
}
