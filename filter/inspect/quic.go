package inspect

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"

	"github.com/quic-go/quic-go/quicvarint"
)

// QUIC versions whose Initial packets can be read (RFC 9000, RFC 9369).
const (
	QUICv1 uint32 = 0x00000001
	QUICv2 uint32 = 0x6b3343cf
)

// quicVersion holds what differs between QUIC v1 and v2 Initial protection.
type quicVersion struct {
	salt        []byte
	key, iv, hp string // HKDF-Expand-Label labels
	initialType byte   // long-header packet type bits of an Initial
}

var (
	// RFC 9001 §5.2.
	quicV1 = quicVersion{
		salt: []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a},
		key:  "quic key", iv: "quic iv", hp: "quic hp", initialType: 0,
	}
	// RFC 9369 §3.3.1–3.3.2 (v2 also renumbers packet types, §3.2).
	quicV2 = quicVersion{
		salt: []byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9},
		key:  "quicv2 key", iv: "quicv2 iv", hp: "quicv2 hp", initialType: 1,
	}
)

func versionParams(v uint32) (*quicVersion, bool) {
	switch v {
	case QUICv1:
		return &quicV1, true
	case QUICv2:
		return &quicV2, true
	}
	return nil, false
}

// initialKeys are the client's Initial packet protection keys.
type initialKeys struct {
	aead cipher.AEAD
	hp   cipher.Block
	iv   [12]byte
}

// hkdfExpandLabel is TLS 1.3's HKDF-Expand-Label with an empty context
// (RFC 8446 §7.1), as QUIC uses it (RFC 9001 §5.1).
func hkdfExpandLabel(secret []byte, label string, length int) []byte {
	info := make([]byte, 0, 4+6+len(label))
	info = append(info, byte(length>>8), byte(length), byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, 0)
	out, err := hkdf.Expand(sha256.New, secret, string(info), length)
	if err != nil { // only for lengths > 255*32, never the case here
		panic("inspect: hkdf: " + err.Error())
	}
	return out
}

// clientInitialSecrets derives key, iv and hp for the client's Initial
// packets from the Destination Connection ID the client chose (RFC 9001 §5.2).
func clientInitialSecrets(v *quicVersion, dcid []byte) (key, iv, hp []byte) {
	initial, err := hkdf.Extract(sha256.New, dcid, v.salt)
	if err != nil {
		panic("inspect: hkdf: " + err.Error())
	}
	client := hkdfExpandLabel(initial, "client in", 32)
	return hkdfExpandLabel(client, v.key, 16), hkdfExpandLabel(client, v.iv, 12), hkdfExpandLabel(client, v.hp, 16)
}

func newInitialKeys(v *quicVersion, dcid []byte) *initialKeys {
	key, iv, hp := clientInitialSecrets(v, dcid)
	k := &initialKeys{}
	blk, _ := aes.NewCipher(key) // 16-byte keys cannot fail
	k.aead, _ = cipher.NewGCM(blk)
	k.hp, _ = aes.NewCipher(hp)
	copy(k.iv[:], iv)
	return k
}

// QUICFlow gathers the ClientHello from a client's Initial packets: coalesced
// packets within a datagram and CRYPTO frames across datagrams, by offset.
// A post-quantum ClientHello (X25519MLKEM768) does not fit one 1200-byte
// datagram, so two or more datagrams is the normal case.
type QUICFlow struct {
	version uint32
	odcid   []byte // the client's original Destination Connection ID
	keys    *initialKeys
	crypto  Stream
	scratch []byte
	records []byte
}

// NewQUICFlow returns an empty flow.
func NewQUICFlow() *QUICFlow { return &QUICFlow{crypto: Stream{max: MaxHello + 4}} }

// Version is the QUIC version of the flow's Initial packets (0 before one).
func (q *QUICFlow) Version() uint32 { return q.version }

// IsQUICInitial reports cheaply whether a UDP payload starts with a long-header
// Initial packet of a version this package reads.
func IsQUICInitial(b []byte) bool {
	if len(b) < 7 || b[0]&0xc0 != 0xc0 {
		return false
	}
	v, ok := versionParams(binary.BigEndian.Uint32(b[1:5]))
	return ok && (b[0]>>4)&3 == v.initialType
}

// Datagram adds one UDP payload from the client. It returns the ClientHello
// once the CRYPTO stream holds all of it, ErrNeedMore before, ErrMalformed
// for anything that is not a readable Initial of QUIC v1 or v2 (including
// unknown versions and packets that fail authentication), ErrTooLarge past
// MaxHello. A datagram is never modified.
func (q *QUICFlow) Datagram(b []byte) (ClientHello, error) {
	sawInitial := false
	for len(b) > 0 {
		if b[0]&0x80 == 0 {
			break // short header: the rest is 1-RTT data (RFC 9000 §12.2)
		}
		n, initial, err := q.packet(b)
		if err != nil {
			return ClientHello{}, err
		}
		sawInitial = sawInitial || initial
		b = b[n:]
	}
	if !sawInitial {
		return ClientHello{}, ErrMalformed
	}
	return q.hello()
}

// packet handles one long-header packet at the start of b and returns its
// length and whether it was an Initial.
func (q *QUICFlow) packet(b []byte) (int, bool, error) {
	if len(b) < 7 || b[0]&0x40 == 0 { // fixed bit (RFC 9000 §17.2)
		return 0, false, ErrMalformed
	}
	version := binary.BigEndian.Uint32(b[1:5])
	v, ok := versionParams(version)
	if !ok || (q.version != 0 && version != q.version) {
		return 0, false, ErrMalformed
	}
	p := 5
	dcidLen := int(b[p])
	p++
	if dcidLen > 20 || len(b) < p+dcidLen+1 {
		return 0, false, ErrMalformed
	}
	dcid := b[p : p+dcidLen]
	p += dcidLen
	scidLen := int(b[p])
	p++
	if scidLen > 20 || len(b) < p+scidLen {
		return 0, false, ErrMalformed
	}
	p += scidLen
	initial := (b[0]>>4)&3 == v.initialType
	if initial {
		tokLen, n, err := quicvarint.Parse(b[p:])
		if err != nil || tokLen > uint64(len(b)-p-n) {
			return 0, false, ErrMalformed
		}
		p += n + int(tokLen)
	}
	if (b[0]>>4)&3 == (v.initialType+3)&3 { // Retry has no Length field; a client never sends one
		return 0, false, ErrMalformed
	}
	length, n, err := quicvarint.Parse(b[p:])
	if err != nil || length > uint64(len(b)-p-n) {
		return 0, false, ErrMalformed
	}
	p += n
	end := p + int(length)
	if !initial {
		return end, false, nil // 0-RTT or Handshake: not ours to read
	}
	if q.version == 0 {
		q.version = version
		q.odcid = append([]byte(nil), dcid...)
		q.keys = newInitialKeys(v, q.odcid)
	}
	pkt := b[:end]
	plain, err := q.open(q.keys, pkt, p)
	if err != nil && !bytes.Equal(dcid, q.odcid) {
		// After a Retry the client derives keys from the new DCID (RFC 9001 §5.2).
		plain, err = q.open(newInitialKeys(v, dcid), pkt, p)
	}
	if err != nil {
		return 0, false, err
	}
	if err := q.frames(plain); err != nil {
		return 0, false, err
	}
	return end, true, nil
}

// open removes header protection (RFC 9001 §5.4) and decrypts the payload
// (§5.3) of the packet pkt whose packet number starts at pnOff.
func (q *QUICFlow) open(k *initialKeys, pkt []byte, pnOff int) ([]byte, error) {
	if len(pkt) < pnOff+4+16 {
		return nil, ErrMalformed
	}
	var mask [16]byte
	k.hp.Encrypt(mask[:], pkt[pnOff+4:pnOff+4+16])
	q.scratch = append(q.scratch[:0], pkt...)
	hdr := q.scratch
	hdr[0] ^= mask[0] & 0x0f
	pnLen := int(hdr[0]&3) + 1
	var pn uint64
	for i := range pnLen {
		hdr[pnOff+i] ^= mask[1+i]
		pn = pn<<8 | uint64(hdr[pnOff+i])
	}
	// The truncated packet number is the full one for a client's first
	// Initials, which start at 0 (RFC 9000 §17.1).
	nonce := k.iv
	for i := range 8 {
		nonce[11-i] ^= byte(pn >> (8 * i))
	}
	hl := pnOff + pnLen
	plain, err := k.aead.Open(hdr[hl:hl], nonce[:], hdr[hl:], hdr[:hl])
	if err != nil {
		return nil, ErrMalformed
	}
	return plain, nil
}

// frames reads the frames of a decrypted Initial; only the types RFC 9000
// §12.4 allows in Initial packets are accepted.
func (q *QUICFlow) frames(b []byte) error {
	if len(b) == 0 {
		return ErrMalformed // RFC 9000 §12.4: a packet carries at least one frame
	}
	varint := func() (uint64, bool) {
		v, n, err := quicvarint.Parse(b)
		if err != nil {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	for len(b) > 0 {
		typ := b[0]
		b = b[1:]
		switch typ {
		case 0x00, 0x01: // PADDING, PING
		case 0x02, 0x03: // ACK (RFC 9000 §19.3)
			var ok bool
			var count uint64
			_, ok1 := varint()
			_, ok2 := varint()
			count, ok = varint()
			_, ok3 := varint()
			if !ok || !ok1 || !ok2 || !ok3 || count > uint64(len(b)) {
				return ErrMalformed
			}
			for range 2 * count {
				if _, ok := varint(); !ok {
					return ErrMalformed
				}
			}
			if typ == 0x03 {
				for range 3 {
					if _, ok := varint(); !ok {
						return ErrMalformed
					}
				}
			}
		case 0x06: // CRYPTO (RFC 9000 §19.6)
			off, ok1 := varint()
			n, ok2 := varint()
			if !ok1 || !ok2 || n > uint64(len(b)) {
				return ErrMalformed
			}
			data := b[:n]
			b = b[n:]
			if err := q.crypto.Write(off, data); err != nil {
				return err
			}
		default: // CONNECTION_CLOSE and anything else: nothing to read
			return ErrMalformed
		}
	}
	return nil
}

// hello parses the ClientHello once the CRYPTO stream holds all of it, by
// framing it in TLS records and reusing ParseClientHello.
func (q *QUICFlow) hello() (ClientHello, error) {
	c := q.crypto.Contiguous()
	if len(c) < 4 {
		return ClientHello{}, ErrNeedMore
	}
	if c[0] != handshakeClientHello {
		return ClientHello{}, ErrMalformed
	}
	l := int(c[1])<<16 | int(c[2])<<8 | int(c[3])
	if l > MaxHello {
		return ClientHello{}, ErrTooLarge
	}
	if len(c) < 4+l {
		return ClientHello{}, ErrNeedMore
	}
	msg := c[:4+l]
	q.records = q.records[:0]
	for len(msg) > 0 {
		n := min(len(msg), maxPlaintextRecordLen)
		q.records = append(q.records, recordTypeHandshake, 3, 3, byte(n>>8), byte(n))
		q.records = append(q.records, msg[:n]...)
		msg = msg[n:]
	}
	return ParseClientHello(q.records)
}
