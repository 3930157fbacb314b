package flow

import (
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// The test process's own TCP connection on loopback is attributed to it.
func TestSockDiagFindsOwnConnection(t *testing.T) {
	sd, err := NewSockDiag()
	if err != nil {
		t.Skipf("sock_diag unavailable: %v", err)
	}
	defer sd.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	p, ok := sd.Lookup(6, netip.AddrPortFrom(local.Addr().Unmap(), local.Port()), netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port()))
	if !ok {
		t.Fatal("Lookup found no socket for our own connection")
	}
	exe, _ := os.Executable()
	me, _ := user.LookupId(strconv.Itoa(os.Getuid()))
	if p.PID != os.Getpid() || p.FileName != filepath.Base(exe) || me != nil && p.Account != me.Username {
		t.Errorf("Lookup = %+v, want pid %d, file %s, account %v", p, os.Getpid(), filepath.Base(exe), me)
	}
	if _, ok := sd.Lookup(6, netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")); ok {
		t.Error("Lookup found a socket for a tuple nobody uses")
	}
}

// LookupLocal finds a UDP client socket by its local end alone (a DNS
// query whose destination the capture rewrote), over IPv4 and on a
// dual-stack socket, and nothing for a port nobody holds.
func TestSockDiagLookupLocal(t *testing.T) {
	sd, err := NewSockDiag()
	if err != nil {
		t.Skipf("sock_diag unavailable: %v", err)
	}
	defer sd.Close()
	sd.minRescn = 0 // two new sockets in a row: rescan /proc for each
	for _, network := range []string{"udp4", "udp"} {
		c, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
		if network == "udp" {
			c, err = net.ListenUDP(network, &net.UDPAddr{}) // [::]: dual stack
		}
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
		p, ok := sd.LookupLocal(17, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port))
		c.Close()
		if !ok || p.PID != os.Getpid() {
			t.Errorf("%s: LookupLocal = %+v, %v; want this process (%d)", network, p, ok, os.Getpid())
		}
		if _, ok := sd.LookupLocal(17, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)); ok {
			t.Errorf("%s: a closed socket was found", network)
		}
	}
}
