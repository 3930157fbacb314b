package machine

import (
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/netward/netward/telemetry"
)

func TestInterfaceAddresses(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	addrs := []net.Addr{
		&net.IPNet{IP: net.ParseIP("192.0.2.10"), Mask: net.CIDRMask(24, 32)},
		&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
		&net.IPNet{IP: net.ParseIP("::1"), Mask: net.CIDRMask(128, 128)},
		&net.IPAddr{IP: net.ParseIP("2001:db8::10")},
		&net.IPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"},
		&net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
	}
	got := interfaceAddresses("eth0", mac, addrs)
	want := []telemetry.IPAddress{
		{Interface: "eth0", Address: "192.0.2.10", Mac: "02:00:00:00:00:01"},
		{Interface: "eth0", Address: "2001:db8::10", Mac: "02:00:00:00:00:01"},
		{Interface: "eth0", Address: "fe80::1", Mac: "02:00:00:00:00:01"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("interfaceAddresses = %+v, want %+v", got, want)
	}
}

// This host's addresses never include loopback.
func TestAddressesNoLoopback(t *testing.T) {
	got, err := Addresses()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got {
		if a.Interface == "lo" || a.Address == "127.0.0.1" || a.Address == "::1" {
			t.Errorf("loopback in %+v", got)
		}
	}
}

type fakeWTS struct {
	s   []wtsSession
	err error
}

func (f fakeWTS) Sessions() ([]wtsSession, error) { return f.s, f.err }

func TestUsersFromWTS(t *testing.T) {
	got, err := usersFrom(fakeWTS{s: []wtsSession{
		{ID: 0, State: 4}, // services: no user
		{ID: 1, State: wtsActive, User: "alice", Domain: "CORP"},     // console
		{ID: 2, State: wtsDisconnected, User: "bob", Domain: "CORP"}, // RDP, client gone
		{ID: 3, State: 6 /* listen */, User: "ghost"},
		{ID: 4, State: wtsActive, User: "alice", Domain: "CORP"}, // second session
		{ID: 5, State: wtsConnected, User: "carol"},
	}})
	if err != nil || !slices.Equal(got, []string{`CORP\alice`, `CORP\bob`, "carol"}) {
		t.Errorf("usersFrom = %q, %v", got, err)
	}
	if _, err := usersFrom(fakeWTS{err: errors.New("rpc down")}); err == nil {
		t.Error("a WTS failure was hidden")
	}
}
