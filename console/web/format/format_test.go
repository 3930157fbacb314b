package format

import (
	"math"
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0 B"}, {512, "512 B"}, {1023.6, "1024 B"}, {1024, "1 KB"}, {1536, "1.5 KB"},
		{10 * 1024 * 1024, "10 MB"}, {1.234 * (1 << 30), "1.23 GB"}, {512 * (1 << 30), "512 GB"},
		{5 * (1 << 50), "5 PB"}, {1e300, "8.67e+281 EB"}, {-2048, "−2 KB"},
		{math.NaN(), "–"}, {math.Inf(1), "∞"}, {math.Inf(-1), "−∞"},
	} {
		if got := Bytes(tc.in); got != tc.want {
			t.Errorf("Bytes(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBytesIn(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		unit int
		want string
	}{
		{0, 2, "0 MB"}, {512 * 1024, 2, "0.5 MB"}, {300 << 20, 2, "300 MB"}, {1 << 30, 3, "1 GB"}, {700, 0, "700 B"},
	} {
		if got := BytesIn(tc.in, tc.unit); got != tc.want {
			t.Errorf("BytesIn(%v, %d) = %q, want %q", tc.in, tc.unit, got, tc.want)
		}
	}
	for _, tc := range []struct {
		max  float64
		want int
	}{{0, 0}, {1000, 0}, {2048, 1}, {5 << 30, 3}, {math.Inf(1), 0}, {1e300, 6}} {
		if got := ByteUnit(tc.max); got != tc.want {
			t.Errorf("ByteUnit(%v) = %d, want %d", tc.max, got, tc.want)
		}
	}
}

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {7, "7"}, {999, "999"}, {1000, "1,000"}, {12345.4, "12,345"}, {999999, "999,999"},
		{1234567, "1.23 M"}, {4.5e9, "4.5 B"}, {2e12, "2 T"}, {1e20, "1.00e+20"}, {-1500, "−1,500"},
		{math.NaN(), "–"}, {math.Inf(1), "∞"},
	} {
		if got := Count(tc.in); got != tc.want {
			t.Errorf("Count(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Int(-1234567); got != "−1,234,567" {
		t.Errorf("Int(-1234567) = %q", got)
	}
	if got := Percent(0.125); got != "12.5%" {
		t.Errorf("Percent(0.125) = %q", got)
	}
}

func TestTimes(t *testing.T) {
	at := time.Date(2026, 6, 3, 14, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		span time.Duration
		want string
	}{
		{24 * time.Hour, "14:00"}, {7 * 24 * time.Hour, "Wed 3"}, {30 * 24 * time.Hour, "3 Jun"},
		{90 * 24 * time.Hour, "3 Jun"}, {3 * 365 * 24 * time.Hour, "Jun 2026"},
	} {
		if got := Tick(at, tc.span); got != tc.want {
			t.Errorf("Tick(%v, %v) = %q, want %q", at, tc.span, got, tc.want)
		}
	}
	if got := Stamp(at, time.Hour); got != "Wed 3 Jun 2026 14:00" {
		t.Errorf("Stamp hourly = %q", got)
	}
	if got := Stamp(at, 24*time.Hour); got != "Wed 3 Jun 2026" {
		t.Errorf("Stamp daily = %q", got)
	}
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{10 * time.Second, "just now"}, {5 * time.Minute, "5 min ago"}, {3 * time.Hour, "3 h ago"},
		{30 * time.Hour, "yesterday"}, {5 * 24 * time.Hour, "5 days ago"}, {40 * 24 * time.Hour, "24 Apr 2026"},
		{-time.Hour, "3 Jun 2026 15:00"},
	} {
		if got := Ago(at.Add(-tc.d), at); got != tc.want {
			t.Errorf("Ago(-%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := Ago(time.Time{}, at); got != "never" {
		t.Errorf("Ago(zero) = %q", got)
	}
}
