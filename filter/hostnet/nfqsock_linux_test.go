//go:build linux

package hostnet

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netward/netward/internal/e2e"
)

// kernelPacketMsg is a queued-packet message laid out as
// nfnetlink_queue.c builds it: nlmsghdr, nfgenmsg, then attributes, each
// padded to 4 octets.
func kernelPacketMsg(id uint32, payload []byte) []byte {
	var hdr [7]byte // packet_id, hw_protocol, hook
	binary.BigEndian.PutUint32(hdr[:], id)
	body := []byte{unix.AF_INET, 0, 0, 7} // nfgenmsg, queue 7
	body = kernelAttr(body, nfqaPacketHdr, hdr[:])
	body = kernelAttr(body, nfqaMark, []byte{0, 0, 0, 1})
	body = kernelAttr(body, nfqaPayload, payload)
	return kernelMsg(nfnlSubsysQueue<<8|nfqnlMsgPacket, body)
}

// kernelAttr appends a netlink attribute padded to 4 octets, as the kernel
// lays them out.
func kernelAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// kernelMsg is a netlink message of type typ from the kernel carrying body.
func kernelMsg(typ uint16, body []byte) []byte {
	m := binary.NativeEndian.AppendUint32(nil, uint32(nlmsgHdrLen+len(body)))
	m = binary.NativeEndian.AppendUint16(m, typ)
	m = binary.NativeEndian.AppendUint16(m, 0)
	m = binary.NativeEndian.AppendUint32(m, 0)
	m = binary.NativeEndian.AppendUint32(m, 0)
	return append(m, body...)
}

func TestNFQPackets(t *testing.T) {
	one := kernelPacketMsg(42, []byte{0x45, 1, 2}) // a 3-octet payload needs padding
	two := kernelPacketMsg(43, make([]byte, 600))
	var got []nfqPacket
	nfqPackets(append(append([]byte(nil), one...), two...), func(p nfqPacket) { got = append(got, p) })
	if len(got) != 2 || got[0].id != 42 || string(got[0].payload) != "\x45\x01\x02" || got[1].id != 43 || len(got[1].payload) != 600 {
		t.Fatalf("parsed %+v", got)
	}
	// Truncated, zero-length and lying lengths end the walk without a panic.
	for _, b := range [][]byte{one[:len(one)-1], one[:nlmsgHdrLen], make([]byte, 32), {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		n := 0
		nfqPackets(b, func(nfqPacket) { n++ })
		if n != 0 {
			t.Errorf("%x: %d packets from a malformed datagram", b, n)
		}
	}
	// A message without a packet header attribute has no id to answer.
	noHdr := kernelPacketMsg(1, nil)
	binary.NativeEndian.PutUint16(noHdr[nlmsgHdrLen+nfgenLen+2:], 99)
	nfqPackets(noHdr, func(p nfqPacket) { t.Errorf("packet without a header: %+v", p) })
}

func FuzzNFQPackets(f *testing.F) {
	f.Add(kernelPacketMsg(1, []byte{0x45}))
	f.Add(append(kernelPacketMsg(1, nil), kernelPacketMsg(2, make([]byte, 70))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		nfqPackets(b, func(p nfqPacket) {
			if len(p.payload) > len(b) {
				t.Fatalf("payload beyond the datagram")
			}
		})
	})
}

// TestAppendVerdict: the verdict message as nfnetlink_queue.c reads it.
func TestAppendVerdict(t *testing.T) {
	s := &nfqSock{queue: 0x0102}
	for _, mark := range []uint32{0, InspectMarkBlock} {
		b := s.appendVerdict(nil, 0xA0B0C0D0, mark)
		want := 16 + 4 + 12
		if mark != 0 {
			want += 8
		}
		if len(b) != want || int(binary.NativeEndian.Uint32(b)) != want {
			t.Fatalf("mark %#x: length %d, header says %d, want %d", mark, len(b), binary.NativeEndian.Uint32(b), want)
		}
		if typ := binary.NativeEndian.Uint16(b[4:]); typ != 3<<8|1 {
			t.Errorf("type %#x, want NFNL_SUBSYS_QUEUE<<8|NFQNL_MSG_VERDICT", typ)
		}
		if fl := binary.NativeEndian.Uint16(b[6:]); fl != unix.NLM_F_REQUEST {
			t.Errorf("flags %#x", fl)
		}
		if q := binary.BigEndian.Uint16(b[18:]); q != 0x0102 {
			t.Errorf("res_id %#x, want the queue number big-endian", q)
		}
		a := b[20:]
		if binary.NativeEndian.Uint16(a) != 12 || binary.NativeEndian.Uint16(a[2:]) != nfqaVerdictHdr ||
			binary.BigEndian.Uint32(a[4:]) != nfAccept || binary.BigEndian.Uint32(a[8:]) != 0xA0B0C0D0 {
			t.Errorf("verdict header attribute %x", a[:12])
		}
		if mark != 0 {
			a = a[12:]
			if binary.NativeEndian.Uint16(a) != 8 || binary.NativeEndian.Uint16(a[2:]) != nfqaMark || binary.BigEndian.Uint32(a[4:]) != mark {
				t.Errorf("mark attribute %x", a)
			}
		}
	}
}

// TestNFQSockBind: against the real kernel, binding a queue works, a second
// socket cannot take the same queue (the error says so), and after close
// the queue is free again.
func TestNFQSockBind(t *testing.T) {
	e2e.Require(t) // root
	const num = 4711
	a, err := openNFQSock(num, 16)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := openNFQSock(num, 16); err == nil {
		b.close()
		t.Fatal("a second socket bound the same queue")
	} else if !errors.Is(err, unix.EPERM) { // nfqnl_recv_config: the queue belongs to another port id
		t.Errorf("second bind: %v, want EPERM", err)
	}
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	c, err := openNFQSock(num, 16)
	if err != nil {
		t.Fatalf("queue not free after close: %v", err)
	}
	// Nothing queued: a read times out instead of blocking for ever.
	if err := c.read(make([]byte, 4096), func(nfqPacket) {}); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("read on an idle queue: %v, want EAGAIN after the timeout", err)
	}
	_ = c.close()
}
