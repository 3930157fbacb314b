package dnsproxy

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"

	"github.com/miekg/dns"
)

// upQuery is what the proxy asks an upstream: the client's question with
// its DO and CD wishes, and the ID of the current attempt.
type upQuery struct {
	id     uint16
	q      dns.Question
	do, cd bool
}

// newID is a random message ID (RFC 5452 §4.3: an off-path spoofer must
// guess it with the source port). crypto/rand, as miekg's dns.Id, without
// its allocation; on Linux 6.11+ it is a vDSO call, no syscall.
func newID() uint16 {
	var b [2]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
	return binary.BigEndian.Uint16(b[:])
}

// appendUpstreamQuery appends the wire form of u to b, byte for byte what
// miekg/dns packs for a dns.Msg with RD, CD as asked, the question, and
// SetEdns0(upstreamUDPSize, do) (FuzzPackUpstreamQuery checks it):
// building it by hand skips the Msg, its OPT record and the packer's
// allocations on every forwarded query (issue 21).
func appendUpstreamQuery(b []byte, u *upQuery) ([]byte, error) {
	flags := uint16(flagRD)
	if u.cd {
		flags |= flagCD
	}
	b = binary.BigEndian.AppendUint16(b, u.id)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = append(b, 0, 1, 0, 0, 0, 0, 0, 1) // one question, one additional (the OPT)
	b, err := appendName(b, u.q.Name)
	if err != nil {
		return b, err
	}
	b = binary.BigEndian.AppendUint16(b, u.q.Qtype)
	b = binary.BigEndian.AppendUint16(b, u.q.Qclass)
	// OPT (RFC 6891 §6.1.2): root owner, TYPE 41, CLASS = payload size,
	// TTL = extended rcode 0, version 0, DO, Z; no options.
	var do byte
	if u.do {
		do = 0x80
	}
	b = append(b, 0, 0, 41, byte(upstreamUDPSize>>8), byte(upstreamUDPSize&0xFF), 0, 0, do, 0, 0, 0)
	return b, nil
}

var errName = errors.New("dnsproxy: malformed question name")

// appendName appends the wire form of the fully qualified presentation-
// format name s (as miekg/dns unpacks it: \DDD and \X escapes), without
// compression: miekg's packDomainName for a name that does not repeat.
// Empty labels, labels over 63 octets, names over 255 octets and names
// that are not fully qualified are errors.
func appendName(b []byte, s string) ([]byte, error) {
	if s == "." {
		return append(b, 0), nil
	}
	start := len(b)
	lenAt := len(b)
	b = append(b, 0) // the first label's length, set at its end
	label := 0
	closed := false // the last character was an unescaped dot
	for i := 0; i < len(s); i++ {
		c := s[i]
		closed = false
		switch c {
		case '\\':
			if i+1 >= len(s) {
				return b, errName
			}
			if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
				// miekg's dddToByte: wraps above 255 (its unpacker never
				// writes such an escape).
				c = byte(100*int(s[i+1]-'0') + 10*int(s[i+2]-'0') + int(s[i+3]-'0'))
				i += 3
			} else {
				c = s[i+1]
				i++
			}
			b = append(b, c)
			label++
		case '.':
			if label == 0 || label > 63 {
				return b, errName
			}
			b[lenAt] = byte(label)
			lenAt = len(b)
			b = append(b, 0)
			label = 0
			closed = true
		default:
			b = append(b, c)
			label++
		}
		if len(b)-start > 255 {
			return b, errName
		}
	}
	if !closed {
		return b, errName
	}
	return b, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// replyMatches checks that m answers u: same ID, a response to a QUERY, and
// the same single question (name compared case-insensitively, RFC 4343).
func replyMatches(u *upQuery, m *dns.Msg) bool {
	if !m.Response || m.Id != u.id || m.Opcode != dns.OpcodeQuery {
		return false
	}
	if len(m.Question) != 1 {
		// A FORMERR/NOTIMP may legitimately carry no question.
		return len(m.Question) == 0 && (m.Rcode == dns.RcodeFormatError || m.Rcode == dns.RcodeNotImplemented)
	}
	a, b := m.Question[0], u.q
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}
