package jsonbytes

import "testing"

func needs(c byte) bool { return c < 0x20 || c == '"' || c == '\\' || c >= 0x80 }

// TestPlain8 checks the eight-byte test against the byte loop's rule for
// every byte value at every position, beside plain neighbours.
func TestPlain8(t *testing.T) {
	for _, fill := range []byte{'a', '!', '~', 0x21, 0x5d, 0x7f} {
		for pos := 0; pos < 8; pos++ {
			for c := 0; c < 256; c++ {
				var x uint64
				for i := 0; i < 8; i++ {
					b := fill
					if i == pos {
						b = byte(c)
					}
					x |= uint64(b) << (8 * i)
				}
				if got, want := Plain8(x), !needs(byte(c)); got != want {
					t.Fatalf("Plain8 with %#x at byte %d among %q = %v, want %v", c, pos, fill, got, want)
				}
			}
		}
	}
}

// TestPlain8Pairs: two bytes of any values at any two positions (a borrow
// out of one subtraction could hide or invent the other), the rest plain.
func TestPlain8Pairs(t *testing.T) {
	for i := 0; i < 8; i++ {
		for j := i + 1; j < 8; j++ {
			for c := 0; c < 256; c++ {
				for d := 0; d < 256; d++ {
					x := uint64(0x6161616161616161) // "aaaaaaaa"
					x &^= 0xff<<(8*i) | 0xff<<(8*j)
					x |= uint64(c)<<(8*i) | uint64(d)<<(8*j)
					if got, want := Plain8(x), !needs(byte(c)) && !needs(byte(d)); got != want {
						t.Fatalf("Plain8(%#016x) = %v, want %v", x, got, want)
					}
				}
			}
		}
	}
}
