package inspect

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func readCapture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "inspect", name))
	if err != nil {
		t.Fatalf("read capture (regenerate with: go run testdata/inspect/capture.go): %v", err)
	}
	return b
}

// datagrams splits a capture of 2-byte-length-prefixed datagrams.
func datagrams(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) >= 2 {
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			t.Fatalf("truncated datagram capture")
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

var tlsCaptures = []struct {
	file, name string
	version    uint16 // a version that must be offered
}{
	{"curl-tls13.bin", "www.example.com", 0x0304},
	{"openssl-tls12.bin", "blocked.example.org", 0x0303},
	{"openssl-tls13.bin", "a.example.net", 0x0304},
	{"go-mlkem.bin", "pq.example.com", 0x0304},
}

func TestParseClientHelloCaptures(t *testing.T) {
	for _, tc := range tlsCaptures {
		t.Run(tc.file, func(t *testing.T) {
			b := readCapture(t, tc.file)
			h, err := ParseClientHello(b)
			if err != nil {
				t.Fatalf("ParseClientHello = %v", err)
			}
			if h.ServerName != tc.name {
				t.Errorf("ServerName = %q, want %q", h.ServerName, tc.name)
			}
			found := false
			for _, v := range h.SupportedVersions {
				found = found || v == tc.version
			}
			if !found {
				t.Errorf("SupportedVersions = %x, want %x among them", h.SupportedVersions, tc.version)
			}
			// Every strict prefix is "need more", never malformed.
			n, _ := HelloLength(b)
			for i := 0; i < n; i++ {
				if _, err := ParseClientHello(b[:i]); !errors.Is(err, ErrNeedMore) {
					t.Fatalf("ParseClientHello(prefix %d/%d) = %v, want ErrNeedMore", i, n, err)
				}
			}
		})
	}
}

// The post-quantum hello does not fit one segment: it must be read after
// reassembly from any split, any order.
func TestClientHelloReassembly(t *testing.T) {
	b := readCapture(t, "go-mlkem.bin")
	if len(b) <= 1460 {
		t.Fatalf("post-quantum hello is %d bytes; expected it to exceed one 1460-byte segment", len(b))
	}
	const isn = 0xfffffff0 // wraps around 2^32 inside the hello
	type seg struct {
		off  int
		data []byte
	}
	split := func(sizes ...int) []seg {
		var out []seg
		off := 0
		for i := 0; off < len(b); i++ {
			n := min(sizes[i%len(sizes)], len(b)-off)
			out = append(out, seg{off, b[off : off+n]})
			off += n
		}
		return out
	}
	reverse := func(s []seg) []seg {
		for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
			s[i], s[j] = s[j], s[i]
		}
		return s
	}
	overlapping := func() []seg {
		var out []seg
		for off := 0; off < len(b); off += 100 {
			out = append(out, seg{off, b[off:min(off+300, len(b))]})
		}
		return reverse(out)
	}
	tests := []struct {
		name string
		segs []seg
	}{
		{"mss 1460", split(1460)},
		{"mss 536", split(536)},
		{"tiny 7-byte segments", split(7)},
		{"out of order", reverse(split(400))},
		{"overlapping out of order", overlapping()},
		{"duplicates", append(split(1000), split(500)...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewTCPStream(MaxHelloStream)
			if err := s.Segment(isn-1, true, nil); err != nil {
				t.Fatal(err)
			}
			var h ClientHello
			var err error
			for i, sg := range tc.segs {
				if werr := s.Segment(isn+uint32(sg.off), false, sg.data); werr != nil {
					t.Fatalf("Segment = %v", werr)
				}
				h, err = ParseClientHello(s.Contiguous())
				if i < len(tc.segs)-1 && err == nil && len(tc.segs) > 1 && tc.name != "duplicates" {
					// only possible once every byte is in
					if len(s.Contiguous()) < len(b) {
						t.Fatalf("parsed before all bytes arrived")
					}
				}
			}
			if err != nil {
				t.Fatalf("after all segments: %v", err)
			}
			if h.ServerName != "pq.example.com" {
				t.Errorf("ServerName = %q", h.ServerName)
			}
		})
	}
}

// A later overlapping segment must not rewrite bytes already received.
func TestStreamFirstCopyWins(t *testing.T) {
	s := NewStream(64)
	_ = s.Write(0, []byte("hello"))
	_ = s.Write(2, []byte("XXXworld"))
	if got := string(s.Contiguous()); got != "helloworld" {
		t.Errorf("Contiguous = %q, want %q", got, "helloworld")
	}
	if err := s.Write(70, []byte("x")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Write past bound = %v, want ErrTooLarge", err)
	}
	holes := NewStream(1 << 20)
	var err error
	for i := 0; i < 2*maxSpans && err == nil; i++ {
		err = holes.Write(uint64(10*i+5), []byte("a"))
	}
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("too many holes = %v, want ErrMalformed", err)
	}
}

// A hello fragmented into many small TLS records is still one hello.
func TestClientHelloRecordFragmentation(t *testing.T) {
	b := readCapture(t, "go-mlkem.bin")
	msg := b[5:] // single-record capture: the handshake message
	if int(binary.BigEndian.Uint16(b[3:5])) != len(msg) {
		t.Skip("capture is not a single record")
	}
	var rec []byte
	for len(msg) > 0 {
		n := min(100, len(msg))
		rec = append(rec, 22, 3, 1, 0, byte(n))
		rec = append(rec, msg[:n]...)
		msg = msg[n:]
	}
	h, err := ParseClientHello(rec)
	if err != nil || h.ServerName != "pq.example.com" {
		t.Fatalf("ParseClientHello(100-byte records) = %+v, %v", h, err)
	}
}

func TestParseClientHelloMalformed(t *testing.T) {
	hello := readCapture(t, "curl-tls13.bin")
	corrupt := append([]byte(nil), hello...)
	corrupt[9+2+32] = 0xff // session id length past the message
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ErrMalformed},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.2\r\n"), ErrMalformed},
		{"alert record", []byte{21, 3, 3, 0, 2, 2, 40}, ErrMalformed},
		{"server hello", []byte{22, 3, 3, 0, 4, 2, 0, 0, 40}, ErrMalformed},
		{"record too long", []byte{22, 3, 3, 0x50, 0, 1}, ErrMalformed},
		{"ssl2 version", []byte{22, 2, 0, 0, 4, 1, 0, 0, 40}, ErrMalformed},
		{"huge hello", []byte{22, 3, 1, 0, 4, 1, 0xff, 0, 0}, ErrTooLarge},
		{"corrupt inside", corrupt, ErrMalformed},
		{"empty", nil, ErrNeedMore},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseClientHello(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("ParseClientHello(%q) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

// The fuzz seeds are real client handshakes in testdata/inspect; its
// README.md says how each was captured (curl, openssl s_client, Go crypto/tls
// offering X25519MLKEM768, quic-go v1 and v2) and capture.go regenerates them.
func FuzzParseClientHello(f *testing.F) {
	for _, tc := range tlsCaptures {
		f.Add(readCapture(f, tc.file))
	}
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseClientHello(b)
		if err == nil && len(h.ServerName) > 255 {
			t.Errorf("ServerName longer than a DNS name: %d", len(h.ServerName))
		}
		if err != nil && !errors.Is(err, ErrNeedMore) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("unexpected error %v", err)
		}
	})
}

func FuzzTCPStream(f *testing.F) {
	f.Add(uint32(1), []byte("abcdef"), uint16(3), uint16(2))
	f.Fuzz(func(t *testing.T, isn uint32, data []byte, cut, shift uint16) {
		s := NewTCPStream(1024)
		_ = s.Segment(isn, true, nil)
		c := int(cut) % (len(data) + 1)
		_ = s.Segment(isn+1+uint32(c), false, data[c:])
		_ = s.Segment(isn+1-uint32(shift), false, data[:c])
		got := s.Contiguous()
		if len(got) > 1024 {
			t.Fatalf("stream grew past bound: %d", len(got))
		}
		if shift == 0 && len(data) <= 1024 && string(got) != string(data) {
			t.Fatalf("Contiguous = %q, want %q", got, data)
		}
	})
}
