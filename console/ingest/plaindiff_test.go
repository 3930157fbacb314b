package ingest

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// plainStringBytewise is plainString's scan as it was before the
// eight-byte skip (79bb920^), the reference for FuzzPlainStringBytewise;
// the escapes it found are resolved by the same unescapeShort.
func plainStringBytewise(b []byte, i int) (s []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	ascii, escaped := true, false
	j := i + 1
	for ; j < len(b); j++ {
		c := b[j]
		if c == '"' {
			break
		}
		switch {
		case c == '\\':
			escaped = true
			j++
		case c < 0x20:
			return nil, 0, false
		case c >= 0x80:
			ascii = false
		}
	}
	if j >= len(b) {
		return nil, 0, false
	}
	s = b[i+1 : j]
	if !ascii && !utf8.Valid(s) {
		return nil, 0, false
	}
	if escaped {
		if s, ok = unescapeShort(nil, s); !ok {
			return nil, 0, false
		}
	}
	return s, j + 1, true
}

// FuzzPlainStringBytewise: the eight-byte scan gives the byte loop's
// content, end and ok at every start index of any input.
func FuzzPlainStringBytewise(f *testing.F) {
	f.Add([]byte(`"CORP\\alice","x":"h1.cdn2.example.com"`))
	f.Add([]byte(`"abcdefgh\"ijklmnop"`))
	f.Add([]byte("\"abcdefg\xc3\xa9hijklmno\""))
	f.Add([]byte(`"abcdefghijklmno\`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// A scratch buffer reused across calls, left holding other bytes:
		// an escaped string's content must not depend on what it held.
		scratch := []byte("left over from an earlier string")
		for i := range len(b) + 1 {
			ws, wend, wok := plainStringBytewise(b, i)
			for _, sc := range []*[]byte{nil, &scratch} {
				s, end, ok := plainString(b, i, sc)
				if ok != wok || end != wend || !bytes.Equal(s, ws) {
					t.Fatalf("plainString(%q, %d, scratch %v) = %q, %d, %v; byte loop %q, %d, %v", b, i, sc != nil, s, end, ok, ws, wend, wok)
				}
			}
		}
	})
}
