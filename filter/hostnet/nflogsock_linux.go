//go:build linux

package hostnet

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/netward/netward/filter/inspect"
)

// nflogSock receives the copies of packets the kernel refused by IP verdict
// (the `log group` rules of the queue chain, see installRules) through an
// NFLOG group (linux/netfilter/nfnetlink_log.h), so each refused connection
// is still recorded and its user told, although its packets never leave the
// kernel. The copies are only headers (nflogSnaplen); nothing waits for the
// reader: a slow or absent reader loses records, never packets.
type nflogSock struct {
	fd    int
	group uint16
	seq   atomic.Uint32
}

// NFLOG protocol constants (linux/netfilter/nfnetlink_log.h).
const (
	nfnlSubsysULOG   = 4
	nfulnlMsgPacket  = 0
	nfulnlMsgConfig  = 1
	nfulaPayload     = 9
	nfulaCfgCmd      = 1
	nfulaCfgMode     = 2
	nfulaCfgQThresh  = 5
	nfulnlCfgBind    = 1
	nfulnlCfgUnbind  = 2
	nfulnlCopyPacket = 2

	// nflogSnaplen is how much of a refused packet is copied: the IP
	// header (with IPv4 options) and the transport ports.
	nflogSnaplen = 128
)

// openNFLogSock binds NFLOG group: packet copies of nflogSnaplen bytes,
// each sent at once (queue threshold 1: the default batches up to 100 or a
// second).
func openNFLogSock(group uint16) (*nflogSock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	s := &nflogSock{fd: fd, group: group}
	fail := func(err error) (*nflogSock, error) { _ = unix.Close(fd); return nil, err }
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail(fmt.Errorf("netlink bind: %w", err))
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	tv := unix.NsecToTimeval(nfqRecvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail(fmt.Errorf("netlink receive timeout: %w", err))
	}
	var mode [6]byte // struct nfulnl_msg_config_mode: __be32 copy_range, u8 copy_mode, u8 pad
	binary.BigEndian.PutUint32(mode[:], nflogSnaplen)
	mode[4] = nfulnlCopyPacket
	for _, attrs := range [][]nlAttr{
		{{nfulaCfgCmd, []byte{nfulnlCfgBind, 0, 0, 0}}},
		{{nfulaCfgMode, mode[:]}, {nfulaCfgQThresh, binary.BigEndian.AppendUint32(nil, 1)}},
	} {
		if err := s.config(attrs); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

func (s *nflogSock) config(attrs []nlAttr) error {
	msg := appendNFMsg(nil, nfnlSubsysULOG<<8|nfulnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, s.seq.Add(1), s.group, attrs...)
	if err := unix.Sendto(s.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("NFLOG config: %w", err)
	}
	return awaitAck(s.fd, binary.NativeEndian.Uint32(msg[8:]), "NFLOG config", func([]byte) {})
}

// read waits for the next datagram (at most nfqRecvTimeout, then
// unix.EAGAIN) and calls f with each logged packet's IP bytes.
func (s *nflogSock) read(buf []byte, f func(packet []byte)) error {
	n, _, err := unix.Recvfrom(s.fd, buf, 0)
	if err != nil {
		return err
	}
	nflogPackets(buf[:n], f)
	return nil
}

// close unbinds the group and closes the socket. Only the reader calls it,
// after its last read.
func (s *nflogSock) close() {
	_ = s.config([]nlAttr{{nfulaCfgCmd, []byte{nfulnlCfgUnbind, 0, 0, 0}}})
	_ = unix.Close(s.fd)
}

// nflogPackets calls f with the payload of every well-formed logged-packet
// message in the netlink datagram b; anything malformed ends the walk.
func nflogPackets(b []byte, f func(packet []byte)) {
	for m := b; len(m) >= nlmsgHdrLen; {
		l := int(binary.NativeEndian.Uint32(m))
		if l < nlmsgHdrLen || l > len(m) {
			return
		}
		if binary.NativeEndian.Uint16(m[4:]) == nfnlSubsysULOG<<8|nfulnlMsgPacket && l >= nlmsgHdrLen+nfgenLen {
			for a := m[nlmsgHdrLen+nfgenLen : l]; len(a) >= 4; {
				al := int(binary.NativeEndian.Uint16(a))
				if al < 4 || al > len(a) {
					break
				}
				if binary.NativeEndian.Uint16(a[2:])&0x3fff == nfulaPayload {
					f(a[4:al])
				}
				a = a[min((al+3)&^3, len(a)):]
			}
		}
		m = m[min((l+3)&^3, len(m)):]
	}
}

// refusedFlow is what a logged packet says about its connection.
type refusedFlow struct {
	proto         inspect.Protocol
	local, remote netip.AddrPort
}

// parseRefused reads the addresses, protocol and ports of an IPv4 or IPv6
// packet from its first bytes (RFC 791, RFC 8200; IPv6 extension headers are
// not followed: the ports stay 0). ok is false for anything else.
func parseRefused(p []byte) (f refusedFlow, ok bool) {
	if len(p) < 1 {
		return f, false
	}
	var proto byte
	var src, dst netip.Addr
	var l4 []byte
	switch p[0] >> 4 {
	case 4:
		ihl := int(p[0]&0x0f) * 4
		if len(p) < 20 || ihl < 20 {
			return f, false
		}
		proto = p[9]
		src, dst = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
		if ihl <= len(p) {
			l4 = p[ihl:]
		}
	case 6:
		if len(p) < 40 {
			return f, false
		}
		proto = p[6]
		src, dst = netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
		l4 = p[40:]
	default:
		return f, false
	}
	var sport, dport uint16
	switch proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP:
		f.proto = inspect.ProtoTCP
		if proto == unix.IPPROTO_UDP {
			f.proto = inspect.ProtoUDP
		}
		if len(l4) >= 4 {
			sport, dport = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		}
	case unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6:
		f.proto = inspect.ProtoICMP
	}
	f.local, f.remote = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	return f, true
}
