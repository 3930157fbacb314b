package warnpage

import (
	"net"
	"net/netip"
	"os/user"
	"testing"
)

func TestLocalPeerUser(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := "127.0.0.1:0"
		if network == "tcp6" {
			addr = "[::1]:0"
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Logf("%s: %v", network, err)
			continue
		}
		c, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		client := netip.MustParseAddrPort(c.LocalAddr().String())
		server := netip.MustParseAddrPort(s.LocalAddr().String())
		if got := LocalPeerUser(client, server); got != me.Username {
			t.Errorf("%s: LocalPeerUser = %q, want %q", network, got, me.Username)
		}
		if got := LocalPeerUser(server, client); got != me.Username {
			t.Errorf("%s: reverse direction = %q, want %q (both ends are ours)", network, got, me.Username)
		}
		c.Close()
		s.Close()
		ln.Close()
	}
	if got := LocalPeerUser(netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2")); got != "" {
		t.Errorf("unknown socket: %q, want \"\"", got)
	}
}
