//go:build linux

package hostnet

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// nfqSock is the inspector's own client of one NFQUEUE queue
// (linux/netfilter/nfnetlink_queue.h), on a plain blocking netlink socket
// read by one OS thread.
//
// Why not go-nfqueue's reader: every queued packet is a connection waiting.
// go-nfqueue reads through mdlayher/netlink on Go's netpoller: each packet
// costs an epoll wake-up, a hand-off to the reader goroutine (which wakes a
// further thread to spin), a recvmsg with MSG_PEEK to size the buffer, a
// second recvmsg, and a page-sized allocation. Here one thread sleeps in
// recvmsg itself and the kernel wakes it when a packet is queued; the
// buffer is reused; the verdict goes out from the same thread.
type nfqSock struct {
	fd    int
	queue uint16
	seq   atomic.Uint32
	// readerDone is closed by readerExit. The socket is closed by whichever
	// of close and readerExit comes second, so a reader stuck in a decision
	// never reads or writes a closed (and possibly reused) descriptor.
	readerDone chan struct{}
	mu         sync.Mutex
	closed     bool // close was called
	exited     bool // readerExit was called
	hasReader  bool // a reader was started (see startReader)
}

// NFQUEUE protocol constants (linux/netfilter/nfnetlink.h,
// nfnetlink_queue.h).
const (
	nfnlSubsysQueue = 3
	nfqnlMsgPacket  = 0
	nfqnlMsgVerdict = 1
	nfqnlMsgConfig  = 2

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2
	nfqaMark       = 3
	nfqaPayload    = 10

	nfqaCfgCmd      = 1
	nfqaCfgParams   = 2
	nfqaCfgQueueLen = 3
	nfqaCfgMask     = 4
	nfqaCfgFlags    = 5

	nfqnlCfgCmdBind   = 1
	nfqnlCfgCmdUnbind = 2
	nfqnlCopyPacket   = 2
	nfqaCfgFFailOpen  = 1

	nfAccept = 1

	nlmsgHdrLen = 16
	nfgenLen    = 4
)

// nfqRecvTimeout bounds how long the reader sleeps in recvmsg before it
// looks whether it should stop.
const nfqRecvTimeout = 100 * time.Millisecond

// openNFQSock binds queue num with the inspector's settings: whole packets
// up to 64 KiB, at most maxLen waiting, and fail-open (the kernel accepts
// what it cannot queue instead of dropping it).
func openNFQSock(num uint16, maxLen uint32) (*nfqSock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	s := &nfqSock{fd: fd, queue: num, readerDone: make(chan struct{})}
	fail := func(err error) (*nfqSock, error) { _ = unix.Close(fd); return nil, err }
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail(fmt.Errorf("netlink bind: %w", err))
	}
	// A full socket buffer must not end the reader (the kernel then
	// accepts packets itself: fail-open); a bigger one rides out bursts.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	tv := unix.NsecToTimeval(nfqRecvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail(fmt.Errorf("netlink receive timeout: %w", err))
	}
	var params [5]byte // struct nfqnl_msg_config_params: __be32 copy_range, u8 copy_mode (packed)
	binary.BigEndian.PutUint32(params[:], 0xffff)
	params[4] = nfqnlCopyPacket
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	for _, attrs := range [][]nlAttr{
		{{nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, 0}}},
		{{nfqaCfgParams, params[:]}},
		{{nfqaCfgQueueLen, be32(maxLen)}, {nfqaCfgFlags, be32(nfqaCfgFFailOpen)}, {nfqaCfgMask, be32(nfqaCfgFFailOpen)}},
	} {
		if err := s.config(attrs); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

type nlAttr struct {
	typ  uint16
	data []byte
}

// appendMsg appends one nfnetlink message of the queue subsystem.
func (s *nfqSock) appendMsg(b []byte, msgType uint16, flags uint16, attrs ...nlAttr) []byte {
	return appendNFMsg(b, nfnlSubsysQueue<<8|msgType, flags, s.seq.Add(1), s.queue, attrs...)
}

// appendNFMsg appends one nfnetlink message (linux/netfilter/nfnetlink.h):
// the netlink header, struct nfgenmsg with resID (the queue or log group),
// and the attributes.
func appendNFMsg(b []byte, typ, flags uint16, seq uint32, resID uint16, attrs ...nlAttr) []byte {
	start := len(b)
	b = binary.NativeEndian.AppendUint32(b, 0) // length, set below
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel
	b = append(b, unix.AF_UNSPEC, unix.NFNETLINK_V0)
	b = binary.BigEndian.AppendUint16(b, resID)
	for _, a := range attrs {
		b = binary.NativeEndian.AppendUint16(b, uint16(4+len(a.data)))
		b = binary.NativeEndian.AppendUint16(b, a.typ)
		b = append(b, a.data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// config sends a configuration message and waits for its acknowledgement.
func (s *nfqSock) config(attrs []nlAttr) error {
	msg := s.appendMsg(nil, nfqnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, attrs...)
	seq := binary.NativeEndian.Uint32(msg[8:])
	if err := unix.Sendto(s.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("NFQUEUE config: %w", err)
	}
	// A packet queued meanwhile (a rule of a previous run still queueing
	// here) must not be left without a verdict.
	return awaitAck(s.fd, seq, "NFQUEUE config", func(d []byte) { nfqPackets(d, func(p nfqPacket) { _ = s.verdict(p.id, 0) }) })
}

// awaitAck reads fd until the acknowledgement of request seq and returns
// its error; other datagrams read meanwhile go to other.
func awaitAck(fd int, seq uint32, what string, other func(datagram []byte)) error {
	buf := make([]byte, 0xffff+4096)
	for tries := 0; tries < 64; tries++ { // until our acknowledgement
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR { // SO_RCVTIMEO makes recvmsg non-restartable (signal(7))
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		other(buf[:n])
		for m := buf[:n]; len(m) >= nlmsgHdrLen; {
			l := int(binary.NativeEndian.Uint32(m))
			if l < nlmsgHdrLen || l > len(m) {
				break
			}
			if binary.NativeEndian.Uint16(m[4:]) == unix.NLMSG_ERROR && binary.NativeEndian.Uint32(m[8:]) == seq && l >= nlmsgHdrLen+4 {
				if e := int32(binary.NativeEndian.Uint32(m[nlmsgHdrLen:])); e != 0 {
					return fmt.Errorf("%s: %w", what, unix.Errno(-e))
				}
				return nil
			}
			m = m[(l+3)&^3:]
		}
	}
	return fmt.Errorf("%s: no acknowledgement", what)
}

// appendVerdict appends the verdict for packet id: accept, with mark set
// when it is not zero.
func (s *nfqSock) appendVerdict(b []byte, id, mark uint32) []byte {
	var hdr [8]byte // struct nfqnl_msg_verdict_hdr: __be32 verdict, __be32 id
	binary.BigEndian.PutUint32(hdr[:], nfAccept)
	binary.BigEndian.PutUint32(hdr[4:], id)
	if mark == 0 {
		return s.appendMsg(b, nfqnlMsgVerdict, unix.NLM_F_REQUEST, nlAttr{nfqaVerdictHdr, hdr[:]})
	}
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], mark)
	return s.appendMsg(b, nfqnlMsgVerdict, unix.NLM_F_REQUEST, nlAttr{nfqaVerdictHdr, hdr[:]}, nlAttr{nfqaMark, m[:]})
}

// verdict sends the verdict for one packet (safe from any goroutine: each
// sendmsg is one whole netlink datagram).
func (s *nfqSock) verdict(id, mark uint32) error {
	var buf [64]byte
	return s.send(s.appendVerdict(buf[:0], id, mark))
}

func (s *nfqSock) send(b []byte) error {
	for {
		err := unix.Sendto(s.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err != unix.EINTR {
			return err
		}
	}
}

// nfqPacket is what the inspector needs of a queued packet.
type nfqPacket struct {
	id      uint32
	payload []byte // the IP packet; valid until the next read
}

// read waits for the next datagram (at most nfqRecvTimeout) and calls f for
// every queued packet in it. It returns unix.EAGAIN on the timeout.
func (s *nfqSock) read(buf []byte, f func(nfqPacket)) error {
	n, _, err := unix.Recvfrom(s.fd, buf, 0)
	if err != nil {
		return err
	}
	nfqPackets(buf[:n], f)
	return nil
}

// nfqPackets calls f for every well-formed queued-packet message in the
// netlink datagram b; anything malformed ends the walk.
func nfqPackets(b []byte, f func(nfqPacket)) {
	for m := b; len(m) >= nlmsgHdrLen; {
		l := int(binary.NativeEndian.Uint32(m))
		if l < nlmsgHdrLen || l > len(m) {
			return // truncated: nothing more to read in this datagram
		}
		if typ := binary.NativeEndian.Uint16(m[4:]); typ == nfnlSubsysQueue<<8|nfqnlMsgPacket && l >= nlmsgHdrLen+nfgenLen {
			if p, ok := parseNFQPacket(m[nlmsgHdrLen+nfgenLen : l]); ok {
				f(p)
			}
		}
		m = m[min((l+3)&^3, len(m)):]
	}
}

// parseNFQPacket reads the packet id and payload attributes.
func parseNFQPacket(a []byte) (nfqPacket, bool) {
	var p nfqPacket
	haveID := false
	for len(a) >= 4 {
		l := int(binary.NativeEndian.Uint16(a))
		typ := binary.NativeEndian.Uint16(a[2:]) & 0x3fff // without the nested / byte-order flags
		if l < 4 || l > len(a) {
			break
		}
		v := a[4:l]
		switch typ {
		case nfqaPacketHdr:
			if len(v) >= 4 {
				p.id, haveID = binary.BigEndian.Uint32(v), true
			}
		case nfqaPayload:
			p.payload = v
		}
		a = a[min((l+3)&^3, len(a)):]
	}
	return p, haveID
}

// close unbinds the queue (packets still queued are dropped by the kernel:
// the caller drains first) and closes the socket, or leaves that to the
// reader if it has not returned yet.
func (s *nfqSock) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	_ = s.config([]nlAttr{{nfqaCfgCmd, []byte{nfqnlCfgCmdUnbind, 0, 0, 0}}})
	if s.exited || !s.hasReader {
		return unix.Close(s.fd)
	}
	return nil
}

// startReader records that a reader goroutine now owns reading; it must
// call readerExit when it returns.
func (s *nfqSock) startReader() {
	s.mu.Lock()
	s.hasReader = true
	s.mu.Unlock()
}

// readerExit is the reader's last call: it closes the socket if close has
// already run.
func (s *nfqSock) readerExit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exited = true
	close(s.readerDone)
	if s.closed {
		_ = unix.Close(s.fd)
	}
}
