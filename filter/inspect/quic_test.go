package inspect

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 9001 Appendix A.1 and RFC 9369 Appendix A.1: client Initial keys for
// DCID 0x8394c8f03e515708.
func TestClientInitialSecrets(t *testing.T) {
	tests := []struct {
		name        string
		v           *quicVersion
		key, iv, hp string
	}{
		{"v1 RFC 9001 A.1", &quicV1, "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"},
		{"v2 RFC 9369 A.1", &quicV2, "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9"},
	}
	dcid := unhex(t, "8394c8f03e515708")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, iv, hp := clientInitialSecrets(tc.v, dcid)
			if hex.EncodeToString(key) != tc.key || hex.EncodeToString(iv) != tc.iv || hex.EncodeToString(hp) != tc.hp {
				t.Errorf("keys = %x %x %x, want %s %s %s", key, iv, hp, tc.key, tc.iv, tc.hp)
			}
		})
	}
}

// rfcCryptoFrame is the CRYPTO frame of the client Initial in RFC 9001
// Appendix A.2 (and RFC 9369 Appendix A.2): a ClientHello for example.com.
const rfcCryptoFrame = `
060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868
04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578
616d706c652e636f6dff01000100000a00080006001d00170018001000070005
04616c706e000500050100000000003300260024001d00209370b2c9caa47fba
baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400
0d0010000e0403050306030203080408050806002d00020101001c0002400100
3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000
75300901100f088394c8f03e51570806048000ffff`

// protect builds a client Initial the way RFC 9001 §5 describes (the
// inverse of QUICFlow.open), for test inputs.
func protect(t testing.TB, v *quicVersion, first byte, version []byte, dcid []byte, pn uint32, payload []byte, size int) []byte {
	t.Helper()
	key, iv, hp := clientInitialSecrets(v, dcid)
	pnLen := 4
	hdr := []byte{first}
	hdr = append(hdr, version...)
	hdr = append(hdr, byte(len(dcid)))
	hdr = append(hdr, dcid...)
	hdr = append(hdr, 0, 0) // no SCID, no token
	plen := size - len(hdr) - 2 - pnLen - 16
	payload = append(payload, make([]byte, plen-len(payload))...)
	length := pnLen + len(payload) + 16
	hdr = append(hdr, 0x40|byte(length>>8), byte(length))
	pnOff := len(hdr)
	hdr = append(hdr, byte(pn>>24), byte(pn>>16), byte(pn>>8), byte(pn))
	blk, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(blk)
	nonce := append([]byte(nil), iv...)
	for i := range 4 {
		nonce[11-i] ^= byte(pn >> (8 * i))
	}
	pkt := aead.Seal(hdr, nonce, payload, hdr)
	hpb, _ := aes.NewCipher(hp)
	var mask [16]byte
	hpb.Encrypt(mask[:], pkt[pnOff+4:pnOff+20])
	pkt[0] ^= mask[0] & 0x0f
	for i := range pnLen {
		pkt[pnOff+i] ^= mask[1+i]
	}
	return pkt
}

// The RFC's unprotected client Initial, protected with our keys, must give
// the RFC's protected header and first ciphertext bytes, and read back as
// the RFC's ClientHello (server name example.com).
func TestQUICRFCVectors(t *testing.T) {
	dcid := unhex(t, "8394c8f03e515708")
	tests := []struct {
		name    string
		v       *quicVersion
		first   byte
		version string
		want    string // protected header + sample (RFC Appendix A.2)
	}{
		{"v1 RFC 9001 A.2", &quicV1, 0xc3, "00000001", "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11d242b123dc9b"},
		{"v2 RFC 9369 A.2", &quicV2, 0xd3, "6b3343cf", "d76b3343cf088394c8f03e5157080000449ea0c95e82"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkt := protect(t, tc.v, tc.first, unhex(t, tc.version), dcid, 2, unhex(t, rfcCryptoFrame), 1200)
			want := unhex(t, tc.want)
			if !bytes.Equal(pkt[:len(want)], want) {
				t.Errorf("protected packet starts %x, want %x", pkt[:len(want)], want)
			}
			if !IsQUICInitial(pkt) {
				t.Errorf("IsQUICInitial = false")
			}
			h, err := NewQUICFlow().Datagram(pkt)
			if err != nil || h.ServerName != "example.com" {
				t.Fatalf("Datagram = %+v, %v, want example.com", h, err)
			}
			pkt[len(pkt)-1] ^= 1 // authentication must fail
			if _, err := NewQUICFlow().Datagram(pkt); !errors.Is(err, ErrMalformed) {
				t.Errorf("tampered Datagram = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestQUICCaptures(t *testing.T) {
	for _, tc := range []struct {
		file    string
		version uint32
	}{{"quicgo-v1.bin", QUICv1}, {"quicgo-v2.bin", QUICv2}} {
		t.Run(tc.file, func(t *testing.T) {
			dgs := datagrams(t, readCapture(t, tc.file))
			q := NewQUICFlow()
			h, err := q.Datagram(dgs[0])
			for i := 1; errors.Is(err, ErrNeedMore) && i < len(dgs); i++ {
				h, err = q.Datagram(dgs[i])
			}
			if err != nil || h.ServerName != "quic.example.com" {
				t.Fatalf("Datagram = %+v, %v", h, err)
			}
			if q.Version() != tc.version {
				t.Errorf("Version = %#x, want %#x", q.Version(), tc.version)
			}
			if len(h.ALPN) != 1 || h.ALPN[0] != "h3" {
				t.Errorf("ALPN = %q", h.ALPN)
			}
		})
	}
}

// A hello split over two datagrams that arrive in reverse order, with the
// CRYPTO frames inside each packet out of order as Chrome sends them.
func TestQUICAcrossDatagrams(t *testing.T) {
	dcid := unhex(t, "0102030405060708")
	frame := unhex(t, rfcCryptoFrame)
	msg := frame[4:] // the ClientHello (frame header: 06 00 40f1)
	crypto := func(off int, data []byte) []byte {
		b := []byte{0x06, 0x40 | byte(off>>8), byte(off), 0x40 | byte(len(data)>>8), byte(len(data))}
		return append(b, data...)
	}
	// first datagram: [100:150] then [0:100] then PING; second: [150:]
	p1 := append(append(crypto(100, msg[100:150]), crypto(0, msg[:100])...), 0x01)
	p2 := crypto(150, msg[150:])
	d1 := protect(t, &quicV1, 0xc3, unhex(t, "00000001"), dcid, 0, p1, 1200)
	d2 := protect(t, &quicV1, 0xc3, unhex(t, "00000001"), dcid, 1, p2, 1200)
	q := NewQUICFlow()
	if _, err := q.Datagram(d2); !errors.Is(err, ErrNeedMore) {
		t.Fatalf("first datagram = %v, want ErrNeedMore", err)
	}
	h, err := q.Datagram(d1)
	if err != nil || h.ServerName != "example.com" {
		t.Fatalf("second datagram = %+v, %v", h, err)
	}
	// Two Initials coalesced in one datagram.
	q = NewQUICFlow()
	h, err = q.Datagram(append(protect(t, &quicV1, 0xc3, unhex(t, "00000001"), dcid, 0, p1, 600), protect(t, &quicV1, 0xc3, unhex(t, "00000001"), dcid, 1, p2, 600)...))
	if err != nil || h.ServerName != "example.com" {
		t.Fatalf("coalesced = %+v, %v", h, err)
	}
}

func TestQUICMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short header", []byte{0x40, 1, 2, 3, 4, 5, 6, 7, 8}},
		{"unknown version", unhex(t, "c0ff00001d088394c8f03e5157080000449e00000000")},
		{"dcid too long", unhex(t, "c00000000115")},
		{"length past end", unhex(t, "c000000001088394c8f03e5157080000449e00")},
		{"dns", []byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewQUICFlow().Datagram(tc.in); !errors.Is(err, ErrMalformed) {
				t.Errorf("Datagram(%x) = %v, want ErrMalformed", tc.in, err)
			}
		})
	}
}

func FuzzQUICFlow(f *testing.F) {
	for _, name := range []string{"quicgo-v1.bin", "quicgo-v2.bin"} {
		dgs := datagrams(f, readCapture(f, name))
		f.Add(dgs[0], dgs[min(1, len(dgs)-1)])
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		q := NewQUICFlow()
		_, _ = q.Datagram(a)
		h, err := q.Datagram(b)
		if err == nil && h.ServerName == "" && len(h.SupportedVersions) == 0 {
			t.Errorf("success without a hello")
		}
	})
}
