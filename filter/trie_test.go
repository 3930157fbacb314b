package filter

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestLabelBackMatchesLabelHash checks that the word-at-a-time label hash of
// lookups equals the byte-wise one Compile uses, on names with dots, case,
// non-ASCII bytes and labels of every length around the word size.
func TestLabelBackMatchesLabelHash(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	alpha := "aZ.-_09.\x80\xff.Az"
	for it := 0; it < 200000; it++ {
		n := r.IntN(40)
		bs := make([]byte, n)
		for i := range bs {
			bs[i] = alpha[r.IntN(len(alpha))]
		}
		s := string(bs)
		b := unsafe.Slice(unsafe.StringData(s), len(s))
		end := len(s)
		for end > 0 {
			lh, start := labelBack(b, end)
			i := end - 1
			for i >= 0 && s[i] != '.' {
				i--
			}
			if start != i+1 {
				t.Fatalf("%q end %d: start %d want %d", s, end, start, i+1)
			}
			if start < end && lh != labelHash(s, start, end) {
				t.Fatalf("%q [%d:%d]: hash differs", s, start, end)
			}
			end = start - 1
		}
	}
}
