package filter

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalName(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":                   "example.com",
		"Example.COM.":                  "example.com",
		"_dmarc.Example.com":            "_dmarc.example.com",
		"12724.xyz":                     "12724.xyz",
		"1.2.3.4":                       "1.2.3.4",
		"bücher.example":                "xn--bcher-kva.example",
		"BÜCHER.example.":               "xn--bcher-kva.example",
		"xn--bcher-kva.example":         "xn--bcher-kva.example",
		"a-b.c_d":                       "a-b.c_d",
		"a\u00ad.com":                   "a.com", // soft hyphen maps to nothing (UTS #46)
		strings.Repeat("a", 63):         strings.Repeat("a", 63),
		strings.Repeat("ab.", 84) + "a": strings.Repeat("ab.", 84) + "a",
	} {
		got, err := CanonicalName(in)
		if err != nil || got != want {
			t.Errorf("CanonicalName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"":                                "empty name",
		".":                               "empty name",
		"a..b":                            "empty label",
		".a":                              "empty label",
		"a b":                             "not allowed",
		"a/b":                             "not allowed",
		strings.Repeat("a", 64) + ".com":  "limit is 63",
		strings.Repeat("abc.", 63) + "ab": "limit is 253",
		"\u00ad.com":                      "empty after IDNA",
		"\x80.example.com":                "not valid UTF-8",
		"a\xff":                           "not valid UTF-8",
		"a.com..":                         "empty label",
	} {
		got, err := CanonicalName(in)
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), msg) {
			t.Errorf("CanonicalName(%q) = %q, %v; want an ErrInvalidName mentioning %q", in, got, err, msg)
		}
	}
}

// TestCanonicalNameKeepsString checks the fast path: an already canonical
// name is returned as is, without a copy.
func TestCanonicalNameKeepsString(t *testing.T) {
	in := "www.example.com"
	if n := testing.AllocsPerRun(100, func() { CanonicalName(in) }); n != 0 {
		t.Errorf("CanonicalName of a canonical name: %v allocations", n)
	}
}

func FuzzCanonicalName(f *testing.F) {
	for _, s := range readSample(f) {
		f.Add(s)
	}
	for _, s := range []string{"", ".", "..", "Example.COM.", "bücher.example", "a\u00ad.com", "\u3002", "a\uff0eb",
		"xn--", "_", "-", "1.2.3.4", "K\u212a.com", "ß.de", strings.Repeat("a.", 130)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := CanonicalName(s)
		slow, slowErr := canonicalName(s)
		if (err == nil) != (slowErr == nil) || got != slow {
			t.Fatalf("fast path %q, %v disagrees with %q, %v", got, err, slow, slowErr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
			return
		}
		if !isCanonical(got) {
			t.Fatalf("CanonicalName(%q) = %q, which is not canonical", s, got)
		}
		again, err := CanonicalName(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, got, again, err)
		}
	})
}
