package indicators

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

func seededKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed([]byte(strings.Repeat(string(rune('a'+seed)), ed25519.SeedSize)))
	return priv.Public().(ed25519.PublicKey), priv
}

func TestFreshnessRoundTrip(t *testing.T) {
	pub, priv := seededKey(0)
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	f := SignFreshness(priv, 42, "v42", at)
	h := f.String()
	if !strings.HasPrefix(h, "seq=42;at=2026-11-22T09:00:00Z;ed25519=") {
		t.Fatalf("header = %q, want seq=42;at=2026-11-22T09:00:00Z;ed25519=…", h)
	}
	got, err := ParseFreshness(h)
	if err != nil {
		t.Fatalf("ParseFreshness(%q): %v", h, err)
	}
	if got.Seq != 42 || !got.At.Equal(at.Truncate(time.Second)) {
		t.Fatalf("parsed seq %d at %v, want 42 at %v", got.Seq, got.At, at.Truncate(time.Second))
	}
	if err := got.Verify(pub, "v42"); err != nil {
		t.Fatalf("Verify with the signed version: %v", err)
	}
	// Another version, another key, a changed seq or time: refused.
	if err := got.Verify(pub, "v41"); !errors.Is(err, ErrFreshness) {
		t.Errorf("Verify(other version) = %v, want ErrFreshness", err)
	}
	otherPub, _ := seededKey(1)
	if err := got.Verify(otherPub, "v42"); !errors.Is(err, ErrFreshness) {
		t.Errorf("Verify(other key) = %v, want ErrFreshness", err)
	}
	for _, tamper := range []string{
		strings.Replace(h, "seq=42", "seq=43", 1),
		strings.Replace(h, "09:00:00Z", "09:00:01Z", 1),
		strings.Replace(h, "2026-11-22T09:00:00Z", "2026-11-22T10:00:00+01:00", 1), // same instant, other bytes
	} {
		f, err := ParseFreshness(tamper)
		if err != nil {
			t.Fatalf("ParseFreshness(%q): %v", tamper, err)
		}
		if err := f.Verify(pub, "v42"); err == nil {
			t.Errorf("Verify(%q) = nil, want a signature error", tamper)
		}
	}
}

func TestParseFreshnessOrderAndSpaces(t *testing.T) {
	pub, priv := seededKey(0)
	f := SignFreshness(priv, 7, "abc", time.Unix(1_800_000_000, 0))
	parts := strings.Split(f.String(), ";")
	h := " " + parts[2] + " ; " + parts[0] + ";unknown=1;  " + parts[1] + " "
	got, err := ParseFreshness(h)
	if err != nil {
		t.Fatalf("ParseFreshness(%q): %v", h, err)
	}
	if err := got.Verify(pub, "abc"); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestParseFreshnessErrors(t *testing.T) {
	_, priv := seededKey(0)
	good := SignFreshness(priv, 1, "v", time.Unix(1_800_000_000, 0)).String()
	sig := good[strings.Index(good, "ed25519="):]
	tests := []struct{ name, h, want string }{
		{"empty", "", "seq missing"},
		{"no seq", "at=2026-01-01T00:00:00Z;" + sig, "seq missing"},
		{"negative seq", "seq=-1;at=2026-01-01T00:00:00Z;" + sig, "not a non-negative integer"},
		{"no at", "seq=1;" + sig, "at missing"},
		{"bad at", "seq=1;at=yesterday;" + sig, "not an RFC 3339 time"},
		{"no sig", "seq=1;at=2026-01-01T00:00:00Z", "ed25519 missing"},
		{"short sig", "seq=1;at=2026-01-01T00:00:00Z;ed25519=AAAA", "64-byte signature"},
		{"not key=value", "seq=1;garbage;" + sig, "not key=value"},
		{"repeated", "seq=1;seq=2;at=2026-01-01T00:00:00Z;" + sig, "repeated"},
		{"too long", "seq=1;x=" + strings.Repeat("a", 2000), "longer than 1024"},
		{"too many", strings.Repeat("a=1;", 0) + manyParams(20), "more than 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFreshness(tt.h)
			if err == nil || !errors.Is(err, ErrFreshness) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseFreshness(%q) = %v, want an ErrFreshness containing %q", tt.h, err, tt.want)
			}
		})
	}
}

func manyParams(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("k")
		b.WriteByte(byte('a' + i))
		b.WriteString("=1;")
	}
	return b.String()
}

func TestAgentInfoRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   AgentInfo
		want string
	}{
		{"linux", AgentInfo{"1.2.3", "linux", "Debian GNU/Linux 12 (bookworm)", 42},
			"version=1.2.3; os=linux/Debian GNU/Linux 12 (bookworm); seq=42"},
		{"sanitised", AgentInfo{"dev;x", "windows", "10.0\r\n; seq=99 é", 0},
			"version=dev x; os=windows/10.0    seq=99 ?; seq=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.in.String()
			if h != tt.want {
				t.Fatalf("String() = %q, want %q", h, tt.want)
			}
			got, err := ParseAgentInfo(h)
			if err != nil {
				t.Fatalf("ParseAgentInfo(%q): %v", h, err)
			}
			if got.Seq != tt.in.Seq || got.Platform != tt.in.Platform {
				t.Fatalf("ParseAgentInfo(%q) = %+v, want seq %d platform %q", h, got, tt.in.Seq, tt.in.Platform)
			}
		})
	}
}

func TestParseAgentInfoErrors(t *testing.T) {
	for _, h := range []string{"", "os=linux/x; seq=1", "version=1; seq=x", "version=1;;seq=-3", "version"} {
		if a, err := ParseAgentInfo(h); err == nil {
			t.Errorf("ParseAgentInfo(%q) = %+v, want an error", h, a)
		}
	}
	a, err := ParseAgentInfo("version=2.0; future=yes")
	if err != nil || a.Version != "2.0" || a.Seq != 0 {
		t.Errorf("ParseAgentInfo with an unknown parameter and no seq = %+v, %v; want version 2.0 seq 0", a, err)
	}
}

func FuzzParseFreshness(f *testing.F) {
	_, priv := seededKey(0)
	f.Add(SignFreshness(priv, 3, "v", time.Unix(1_800_000_000, 0)).String())
	f.Add("seq=;at=;ed25519=")
	f.Add("version=1; os=linux/x; seq=3")
	f.Fuzz(func(t *testing.T, h string) {
		if fr, err := ParseFreshness(h); err == nil {
			if _, err := ParseFreshness(fr.String()); err != nil {
				t.Fatalf("ParseFreshness(%q) ok but its String %q does not parse: %v", h, fr.String(), err)
			}
		}
		if a, err := ParseAgentInfo(h); err == nil {
			if _, err := ParseAgentInfo(a.String()); err != nil {
				t.Fatalf("ParseAgentInfo(%q) ok but its String %q does not parse: %v", h, a.String(), err)
			}
		}
	})
}
