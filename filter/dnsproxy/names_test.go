package dnsproxy

import (
	"net/netip"
	"testing"
	"time"
)

func TestNameMap(t *testing.T) {
	now := time.Unix(1000, 0)
	m := NewNameMap(2, func() time.Time { return now })
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.3")
	m.Add(a, "a.example", time.Second)
	m.Add(b, "b.example", time.Hour)
	if n, ok := m.Lookup(netip.MustParseAddr("::ffff:192.0.2.1")); !ok || n != "a.example" {
		t.Errorf("Lookup(mapped a) = %q, %v", n, ok)
	}
	now = now.Add(MinNameTTL) // a: kept MinNameTTL, now expired
	if _, ok := m.Lookup(a); ok {
		t.Errorf("a still named after its TTL (raised to MinNameTTL) ran out")
	}
	if _, ok := m.Lookup(b); !ok {
		t.Errorf("b expired early")
	}
	m.Add(c, "c.example", time.Hour) // evicts a (oldest)
	if m.Len() != 2 {
		t.Errorf("Len = %d, want 2 (bounded)", m.Len())
	}
	m.Add(b, "b2.example", time.Hour) // refresh does not evict
	if n, _ := m.Lookup(b); n != "b2.example" || m.Len() != 2 {
		t.Errorf("refresh: %q len %d", n, m.Len())
	}
	if n, ok := m.Lookup(c); !ok || n != "c.example" {
		t.Errorf("Lookup(c) = %q, %v", n, ok)
	}
}

func BenchmarkNameMapLookup(b *testing.B) {
	m := NewNameMap(0, nil)
	a := netip.MustParseAddr("192.0.2.1")
	m.Add(a, "a.example", time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		m.Lookup(a)
	}
}
