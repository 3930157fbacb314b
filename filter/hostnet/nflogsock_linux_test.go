//go:build linux

package hostnet

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// kernelLogMsg is a logged-packet message laid out as nfnetlink_log.c builds
// it: nlmsghdr, nfgenmsg, then attributes (a packet header, a prefix, the
// payload), each padded to 4 octets.
func kernelLogMsg(payload []byte) []byte {
	body := []byte{unix.AF_INET, 0, 0x3b, 0xf9} // nfgenmsg, group 15353
	body = kernelAttr(body, 1, []byte{0x08, 0x00, 3, 0})
	body = kernelAttr(body, 10, []byte("x\x00"))
	body = kernelAttr(body, nfulaPayload, payload)
	return kernelMsg(nfnlSubsysULOG<<8|nfulnlMsgPacket, body)
}

func TestParseRefused(t *testing.T) {
	v4 := func(proto byte, l4 ...byte) []byte {
		p := []byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, proto, 0, 0, 192, 0, 2, 1, 198, 51, 100, 7}
		return append(p, l4...)
	}
	v6 := make([]byte, 40)
	v6[0], v6[6] = 0x60, unix.IPPROTO_UDP
	copy(v6[8:], netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(v6[24:], netip.MustParseAddr("2001:db8::3").AsSlice())
	v6 = append(v6, 0x9c, 0x40, 0x27, 0x0f)
	opts := v4(unix.IPPROTO_TCP, 1, 1, 1, 1, 0x9c, 0x40, 0x1f, 0x90) // IHL 6: 4 octets of options
	opts[0] = 0x46
	for _, tc := range []struct {
		name  string
		p     []byte
		proto string
		local string
		dst   string
		ok    bool
	}{
		{"tcp", v4(unix.IPPROTO_TCP, 0x9c, 0x40, 0x1f, 0x90), "Tcp", "192.0.2.1:40000", "198.51.100.7:8080", true},
		{"udp, ports cut off", v4(unix.IPPROTO_UDP, 0x9c), "Udp", "192.0.2.1:0", "198.51.100.7:0", true},
		{"icmp", v4(unix.IPPROTO_ICMP, 8, 0, 0, 0), "Icmp", "192.0.2.1:0", "198.51.100.7:0", true},
		{"ipv4 options", opts, "Tcp", "192.0.2.1:40000", "198.51.100.7:8080", true},
		{"ipv6 udp", v6, "Udp", "[2001:db8::1]:40000", "[2001:db8::3]:9999", true},
		{"gre", v4(47), "", "192.0.2.1:0", "198.51.100.7:0", true},
		{"truncated v4", v4(6)[:19], "", "", "", false},
		{"truncated v6", v6[:39], "", "", "", false},
		{"not ip", []byte{0x15, 0, 0}, "", "", "", false},
		{"empty", nil, "", "", "", false},
	} {
		f, ok := parseRefused(tc.p)
		if ok != tc.ok || (ok && (f.proto.String() != tc.proto || f.local.String() != tc.local || f.remote.String() != tc.dst)) {
			t.Errorf("%s: parseRefused = %+v %v, want %s %s→%s %v", tc.name, f, ok, tc.proto, tc.local, tc.dst, tc.ok)
		}
	}
}

func TestNFLogPackets(t *testing.T) {
	one, two := kernelLogMsg([]byte{0x45, 1, 2}), kernelLogMsg(make([]byte, 128))
	var got [][]byte
	nflogPackets(append(append([]byte(nil), one...), two...), func(p []byte) { got = append(got, p) })
	if len(got) != 2 || string(got[0]) != "\x45\x01\x02" || len(got[1]) != 128 {
		t.Fatalf("parsed %x", got)
	}
	for _, b := range [][]byte{one[:len(one)-1], one[:nlmsgHdrLen], make([]byte, 32)} {
		nflogPackets(b, func(p []byte) { t.Errorf("%x: a packet from a malformed datagram", b) })
	}
}

func FuzzNFLogPackets(f *testing.F) {
	f.Add(kernelLogMsg([]byte{0x45}))
	f.Add(append(kernelLogMsg(nil), kernelLogMsg(make([]byte, 70))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		nflogPackets(b, func(p []byte) {
			if len(p) > len(b) {
				t.Fatal("payload beyond the datagram")
			}
			_, _ = parseRefused(p)
		})
	})
}
