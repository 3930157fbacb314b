package filter

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

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
	if isCanonical(s) {
		return s, nil // the common case: no copy, so Compile keeps the caller's strings
	}
	return canonicalName(s)
}

// isCanonical reports whether s is already in the form CanonicalName returns.
func isCanonical(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	n := 0 // length of the current label
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			if n++; n > maxLabelLen {
				return false
			}
		case c == '.' && n > 0:
			n = 0
		default:
			return false
		}
	}
	return n > 0
}

// canonicalName is CanonicalName without the fast path.
func canonicalName(s string) (string, error) {
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
			if !utf8.ValidString(label) { // IDNA would turn the bad bytes into U+FFFD and accept them
				return "", fmt.Errorf("%w %q: label %q is not valid UTF-8", ErrInvalidName, s, label)
			}
			a, err := idnaProfile.ToASCII(label)
			if err != nil {
				return "", fmt.Errorf("%w %q: label %q is not a valid internationalised label: %v", ErrInvalidName, s, label, err)
			}
			if a == "" { // the label was only characters IDNA maps to nothing
				return "", fmt.Errorf("%w %q: label %q is empty after IDNA mapping", ErrInvalidName, s, label)
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
