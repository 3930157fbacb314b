package dnsproxy

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
)

// The wire fast path answers the most common query — one question about an
// ordinary host name, answered from the cache — straight from bytes: the
// query is read without building a dns.Msg, and the reply is a copy of the
// cached answer packed once, with the client's ID, flags and question and
// the TTLs aged in place. It decides exactly like the general path (the
// decision is still taken on every query, after the cache); anything it is
// not sure about goes to the general path, so parseQuery only has to be
// right about what it accepts.

// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD and CD).
const (
	flagQR = 1 << 15
	flagRD = 1 << 8
	flagRA = 1 << 7
	flagAD = 1 << 5
	flagCD = 1 << 4
)

// maxFastChain bounds the CNAME chain the fast path decides; longer chains
// take the general path.
const maxFastChain = 8

// wireQuery is a query in the common form, parsed from the wire.
type wireQuery struct {
	id    uint16
	flags uint16
	// qname is the question name as the client sent it (its case is kept
	// in the reply: DNS 0x20 clients check it), a slice of the datagram.
	qname []byte
	qtype uint16
	// edns says the client sent an OPT record (RFC 6891); size and do are
	// its UDP payload size and DO bit.
	edns bool
	size uint16
	do   bool
}

// parseQuery reads b as a query in the common form: a QUERY with one
// question whose name is uncompressed and made of letters, digits, '-' and
// '_', class IN, a type the proxy relays, and nothing after it but at most
// one OPT record of version 0 with only cookie or padding options (RFC 7873,
// RFC 7830), which the proxy does not echo anyway. It appends the name in
// the cache's form (lowercase, trailing dot) to name. Anything else returns
// false and takes the general path, which answers it correctly.
func parseQuery(b []byte, q *wireQuery, name []byte) ([]byte, bool) {
	if len(b) < 12+1+4 {
		return name, false
	}
	q.id = binary.BigEndian.Uint16(b)
	q.flags = binary.BigEndian.Uint16(b[2:])
	if q.flags&flagQR != 0 || (q.flags>>11)&0xF != dns.OpcodeQuery {
		return name, false
	}
	if binary.BigEndian.Uint16(b[4:]) != 1 || binary.BigEndian.Uint16(b[6:]) != 0 || binary.BigEndian.Uint16(b[8:]) != 0 {
		return name, false
	}
	arcount := binary.BigEndian.Uint16(b[10:])
	if arcount > 1 {
		return name, false
	}
	off := 12
	for {
		if off >= len(b) {
			return name, false
		}
		l := int(b[off])
		off++
		if l == 0 {
			break
		}
		// 0xC0 and above are compression pointers, 0x40–0xBF reserved
		// label types: both are beyond 63 (RFC 1035 §4.1.4, RFC 6891 §5).
		if l > 63 || off+l > len(b) || off+l-12 > 255 {
			return name, false
		}
		for _, c := range b[off : off+l] {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			default:
				return name, false
			}
			name = append(name, c)
		}
		name = append(name, '.')
		off += l
	}
	// The root has no name to decide; a name over 255 octets is malformed
	// (RFC 1035 §2.3.4).
	if off == 13 || off-12 > 255 || off+4 > len(b) {
		return name, false
	}
	q.qname = b[12:off]
	q.qtype = binary.BigEndian.Uint16(b[off:])
	if binary.BigEndian.Uint16(b[off+2:]) != dns.ClassINET {
		return name, false
	}
	switch q.qtype {
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeTSIG:
		return name, false
	}
	off += 4
	q.edns, q.size, q.do = false, 0, false
	if arcount == 1 {
		// RFC 6891 §6.1.2: root owner, TYPE 41, CLASS = UDP payload size,
		// TTL = extended RCODE, VERSION, DO and Z flags, then the options.
		if off+11 > len(b) || b[off] != 0 || binary.BigEndian.Uint16(b[off+1:]) != dns.TypeOPT {
			return name, false
		}
		if b[off+5] != 0 || b[off+6] != 0 { // extended rcode, version (BADVERS is the general path's)
			return name, false
		}
		q.edns = true
		q.size = binary.BigEndian.Uint16(b[off+3:])
		q.do = b[off+7]&0x80 != 0
		rdlen := int(binary.BigEndian.Uint16(b[off+9:]))
		off += 11
		end := off + rdlen
		if end > len(b) {
			return name, false
		}
		for off < end {
			if off+4 > end {
				return name, false
			}
			code := binary.BigEndian.Uint16(b[off:])
			if code != dns.EDNS0COOKIE && code != dns.EDNS0PADDING {
				return name, false
			}
			off += 4 + int(binary.BigEndian.Uint16(b[off+2:]))
			if off > end {
				return name, false
			}
		}
	}
	return name, off == len(b)
}

// maxReply is the largest reply a client may get over UDP (RFC 1035 §4.2.1
// without EDNS0; with it, the client's size up to upstreamUDPSize).
func (q *wireQuery) maxReply() int {
	if !q.edns {
		return 512
	}
	return min(max(int(q.size), 512), upstreamUDPSize)
}

// wireAnswer is a cached answer packed once for the fast path: the whole
// message, uncompressed, with ID 0 and the question in lowercase, and where each record's
// TTL sits with the TTL as received.
type wireAnswer struct {
	msg   []byte
	qend  int // end of the question section
	rcode uint16
	ad    bool
	ttlAt []int
	ttl   []uint32
}

// packAnswer packs m (an upstream answer without OPT) for the fast path
// under the question (lowercase name, qtype, IN), or returns nil when the
// fast path cannot serve it (an extended rcode, which needs an OPT record).
func packAnswer(m *dns.Msg, name string, qtype uint16) *wireAnswer {
	if m.Rcode > 0xF {
		return nil
	}
	// Uncompressed, like the general path's replies that fit (miekg's
	// Truncate): a pointer into the question would give the client's
	// spelling of the name to every record that shares a suffix with it.
	t := &dns.Msg{
		MsgHdr:   dns.MsgHdr{Response: true, Rcode: m.Rcode},
		Question: []dns.Question{{Name: name, Qtype: qtype, Qclass: dns.ClassINET}},
		Answer:   m.Answer, Ns: m.Ns, Extra: m.Extra,
	}
	b, err := t.Pack()
	if err != nil {
		return nil
	}
	w := &wireAnswer{msg: b, rcode: uint16(m.Rcode), ad: m.AuthenticatedData}
	off, ok := skipName(b, 12)
	if !ok || off+4 > len(b) {
		return nil
	}
	w.qend = off + 4
	off = w.qend
	n := int(binary.BigEndian.Uint16(b[6:])) + int(binary.BigEndian.Uint16(b[8:])) + int(binary.BigEndian.Uint16(b[10:]))
	for range n {
		if off, ok = skipName(b, off); !ok || off+10 > len(b) {
			return nil
		}
		w.ttlAt = append(w.ttlAt, off+4)
		w.ttl = append(w.ttl, binary.BigEndian.Uint32(b[off+4:]))
		off += 10 + int(binary.BigEndian.Uint16(b[off+8:]))
	}
	if off != len(b) {
		return nil
	}
	return w
}

// skipName returns the offset after the (possibly compressed) name at off.
func skipName(b []byte, off int) (int, bool) {
	for off < len(b) {
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xC0 == 0xC0: // a pointer ends the name
			return off + 2, off+2 <= len(b)
		case l > 63:
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}

// optLen is the size of the OPT record the proxy adds for an EDNS0 client.
const optLen = 11

// reply appends to dst the reply to q: the relayed answer with the client's
// ID, RD and CD bits and question name, RA set, AD only when the client asked
// for it (RFC 6840 §5.8), TTLs aged by elapsed seconds (a record whose TTL ran
// out while the entry lives gets the entry's remaining seconds, as
// ttlAdjusted), and an OPT record (payload size upstreamUDPSize, the client's
// DO bit) when the client sent one (RFC 6891 §7).
func (w *wireAnswer) reply(dst []byte, q *wireQuery, elapsed, remaining uint32) []byte {
	start := len(dst)
	dst = append(dst, w.msg...)
	r := dst[start:]
	binary.BigEndian.PutUint16(r, q.id)
	flags := uint16(flagQR|flagRA) | q.flags&(flagRD|flagCD) | w.rcode
	if w.ad && (q.flags&flagAD != 0 || q.do) {
		flags |= flagAD
	}
	binary.BigEndian.PutUint16(r[2:], flags)
	copy(r[12:], q.qname)
	for i, at := range w.ttlAt {
		ttl := w.ttl[i]
		if ttl > elapsed {
			ttl -= elapsed
		} else {
			ttl = remaining
		}
		binary.BigEndian.PutUint32(r[at:], ttl)
	}
	if q.edns {
		binary.BigEndian.PutUint16(r[10:], binary.BigEndian.Uint16(r[10:])+1)
		var do byte
		if q.do {
			do = 0x80
		}
		dst = append(dst, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(upstreamUDPSize>>8), byte(upstreamUDPSize&0xFF),
			0, 0, do, 0, 0, 0)
	}
	return dst
}

// replyLen is the length reply produces for q.
func (w *wireAnswer) replyLen(q *wireQuery) int {
	if q.edns {
		return len(w.msg) + optLen
	}
	return len(w.msg)
}

// The owner names of the synthetic SOA (synthSOA), in wire form.
var (
	soaNS   = []byte("\x07netward\x07invalid\x00")
	soaMbox = []byte("\x0ahostmaster\x07netward\x07invalid\x00")
)

// appendRefusal appends to dst the refusal of q, the general path's reply
// (blockedReply, then finish) byte for byte: the client's ID, RD and CD
// bits and question, RA, rcode; an address record (ip valid) or else a
// synthetic SOA (synthSOA), both owned by the question name as the client
// spelled it, with TTL ttl; and, for an EDNS0 client, the OPT record
// (payload size upstreamUDPSize, the client's DO bit) carrying Extended DNS
// Error 15 (RFC 8914) with edeText. Nothing is compressed, as miekg/dns
// packs a UDP reply that fits.
func appendRefusal(dst []byte, q *wireQuery, ip netip.Addr, rcode int, ttl uint32, d filter.Decision, name string) []byte {
	var an, ns, ar uint16
	if ip.IsValid() {
		an = 1
	} else {
		ns = 1
	}
	if q.edns {
		ar = 1
	}
	flags := uint16(flagQR|flagRA) | q.flags&(flagRD|flagCD) | uint16(rcode&0xF)
	dst = binary.BigEndian.AppendUint16(dst, q.id)
	dst = binary.BigEndian.AppendUint16(dst, flags)
	dst = binary.BigEndian.AppendUint16(dst, 1)
	dst = binary.BigEndian.AppendUint16(dst, an)
	dst = binary.BigEndian.AppendUint16(dst, ns)
	dst = binary.BigEndian.AppendUint16(dst, ar)
	dst = append(dst, q.qname...)
	dst = binary.BigEndian.AppendUint16(dst, q.qtype)
	dst = binary.BigEndian.AppendUint16(dst, dns.ClassINET)
	// The record's owner, type, class and TTL.
	rr := func(t uint16) {
		dst = append(dst, q.qname...)
		dst = binary.BigEndian.AppendUint16(dst, t)
		dst = binary.BigEndian.AppendUint16(dst, dns.ClassINET)
		dst = binary.BigEndian.AppendUint32(dst, ttl)
	}
	switch {
	case ip.Is4():
		rr(dns.TypeA)
		a := ip.As4()
		dst = binary.BigEndian.AppendUint16(dst, 4)
		dst = append(dst, a[:]...)
	case ip.Is6():
		rr(dns.TypeAAAA)
		a := ip.As16()
		dst = binary.BigEndian.AppendUint16(dst, 16)
		dst = append(dst, a[:]...)
	default:
		rr(dns.TypeSOA)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(soaNS)+len(soaMbox)+20))
		dst = append(dst, soaNS...)
		dst = append(dst, soaMbox...)
		for _, v := range [...]uint32{1, 3600, 600, 86400, ttl} { // serial, refresh, retry, expire, minimum (synthSOA)
			dst = binary.BigEndian.AppendUint32(dst, v)
		}
	}
	if q.edns {
		var do byte
		if q.do {
			do = 0x80
		}
		dst = append(dst, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(upstreamUDPSize>>8), byte(upstreamUDPSize&0xFF),
			0, 0, do, 0)
		rdlen := len(dst)
		dst = append(dst, 0, 0) // RDLENGTH, set below
		dst = binary.BigEndian.AppendUint16(dst, dns.EDNS0EDE)
		olen := len(dst)
		dst = append(dst, 0, 0) // OPTION-LENGTH, set below
		dst = binary.BigEndian.AppendUint16(dst, dns.ExtendedErrorCodeBlocked)
		dst = appendEDEText(dst, d, name)
		binary.BigEndian.PutUint16(dst[olen:], uint16(len(dst)-olen-2))
		binary.BigEndian.PutUint16(dst[rdlen:], uint16(len(dst)-rdlen-2))
	}
	return dst
}
