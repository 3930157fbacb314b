package filter

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// Limits from RFC 1035 §2.3.4 (label ≤ 63 octets, name ≤ 255 octets on the
// wire, which is 253 characters in presentation form without the root dot).
const (
	maxLabelLen = 63
	maxNameLen  = 253
)

// ErrInvalidName is wrapped by every CanonicalName error.
var ErrInvalidName = errors.New("invalid domain name")

// idnaProfile converts Unicode labels to punycode (RFC 5891). It is used only
// for labels that are not plain ASCII, because real names contain underscores
// (_dmarc.example.com) and other ASCII that strict IDNA profiles reject.
var idnaProfile = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.BidiRule())

// CanonicalName returns the canonical form of a domain name as CONTRACT §1
// defines it: lowercase, no trailing dot, Unicode labels in punycode, labels of
// 1–63 octets, at most 253 octets. ASCII labels may contain letters, digits, '-'
// and '_' (all-digit labels are fine). Anything else is rejected with an error
// that says what is wrong; names are never silently mangled.
func CanonicalName(s string) (string, error) {
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrInvalidName)
	}
	var b strings.Builder
	b.Grow(len(name))
	for i, label := range strings.Split(name, ".") {
		if i > 0 {
			b.WriteByte('.')
		}
		if label == "" {
			return "", fmt.Errorf("%w %q: empty label (two dots in a row, or a leading dot)", ErrInvalidName, s)
		}
		if !isASCII(label) {
			a, err := idnaProfile.ToASCII(label)
			if err != nil {
				return "", fmt.Errorf("%w %q: label %q is not a valid internationalised label: %v", ErrInvalidName, s, label, err)
			}
			label = a
		}
		if len(label) > maxLabelLen {
			return "", fmt.Errorf("%w %q: label %q is %d octets, the limit is %d", ErrInvalidName, s, label, len(label), maxLabelLen)
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				return "", fmt.Errorf("%w %q: character %q is not allowed in a host name", ErrInvalidName, s, rune(c))
			}
			b.WriteByte(c)
		}
	}
	out := b.String()
	if len(out) > maxNameLen {
		return "", fmt.Errorf("%w %q: %d octets, the limit is %d", ErrInvalidName, s, len(out), maxNameLen)
	}
	return out, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
