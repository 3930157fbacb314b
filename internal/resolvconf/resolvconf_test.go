package resolvconf

import (
	"net/netip"
	"slices"
	"testing"
)

func TestNameservers(t *testing.T) {
	in := "# generated\nsearch example.com\nnameserver 192.0.2.53\nnameserver  2001:db8::53 # v6\nnameserver bogus\nnameserver\noptions edns0\nnameserver fe80::1%eth0\n"
	got := Nameservers([]byte(in))
	want := []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("fe80::1%eth0")}
	if !slices.Equal(got, want) {
		t.Errorf("Nameservers = %v, want %v", got, want)
	}
	if got := Nameservers(nil); len(got) != 0 {
		t.Errorf("empty file: %v", got)
	}
}
