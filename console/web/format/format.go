// Package format turns the console's numbers and times into the short, human
// strings its pages and charts show: bytes as KB/MB/GB, counts with thousands
// separators, and times per reporting period. Every function is pure and
// total: NaN, ±Inf, negative and huge inputs give a readable string, never a
// panic.
package format

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Bytes formats n bytes with binary multiples labelled KB, MB, GB, TB, PB
// and EB, the units Windows and the Defender portal show admins (1 KB = 1,024
// bytes). Values below 1 KB are exact ("512 B"); larger ones keep three
// significant digits ("1.5 MB", "12.3 GB", "512 GB").
func Bytes(n float64) string {
	if s, ok := special(n, Bytes); ok {
		return s
	}
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatFloat(math.Round(n), 'f', 0, 64) + " B"
	}
	v, i := n/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return sig3(v) + " " + units[i:i+1] + "B"
}

// BytesIn formats n in the given unit (a power of 1,024: 0 for bytes, 1 for
// KB, 2 for MB...) so that the labels of one chart axis share a unit.
func BytesIn(n float64, unit int) string {
	if unit <= 0 || math.IsNaN(n) || math.IsInf(n, 0) {
		return Bytes(n)
	}
	if unit > 6 {
		unit = 6
	}
	v := n / math.Pow(1024, float64(unit))
	return sig3(v) + " " + "KMGTPE"[unit-1:unit] + "B"
}

// ByteUnit picks the unit BytesIn should use for an axis whose largest value
// is max.
func ByteUnit(max float64) int {
	if math.IsNaN(max) || math.IsInf(max, 0) {
		return 0
	}
	max = math.Abs(max)
	u := 0
	for max >= 1024 && u < 6 {
		max /= 1024
		u++
	}
	return u
}

// Count formats an integer count with thousands separators ("12,345"). From
// a million on it switches to a compact form ("1.23 M", "4.5 B") so a number
// always fits a table cell or an axis label. Fractions are rounded.
func Count(n float64) string {
	if s, ok := special(n, Count); ok {
		return s
	}
	switch {
	case n >= 1e15:
		return strconv.FormatFloat(n, 'e', 2, 64)
	case n >= 1e12:
		return sig3(n/1e12) + " T"
	case n >= 1e9:
		return sig3(n/1e9) + " B"
	case n >= 1e6:
		return sig3(n/1e6) + " M"
	}
	return Int(int64(math.Round(n)))
}

// special formats what no unit applies to: NaN (missing) as "–", the
// infinities, and negative values as a minus sign before f(-n).
func special(n float64, f func(float64) string) (string, bool) {
	switch {
	case math.IsNaN(n):
		return "–", true
	case math.IsInf(n, 1):
		return "∞", true
	case math.IsInf(n, -1):
		return "−∞", true
	case n < 0:
		return "−" + f(-n), true
	}
	return "", false
}

// Int formats n with thousands separators.
func Int(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "−" + b.String()
	}
	return b.String()
}

// Percent formats a ratio (0.125 → "12.5%").
func Percent(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "–"
	}
	return trimZeros(strconv.FormatFloat(r*100, 'f', 1, 64)) + "%"
}

// sig3 keeps three significant digits: 1.23, 12.3, 123; past 10⁶ it uses
// exponent notation so no label grows without bound.
func sig3(v float64) string {
	if math.Abs(v) >= 1e6 {
		return strconv.FormatFloat(v, 'e', 2, 64)
	}
	return trimZeros(strconv.FormatFloat(v, 'f', decimalsFor(v), 64))
}

func decimalsFor(v float64) int {
	switch a := math.Abs(v); {
	case a >= 100:
		return 0
	case a >= 10:
		return 1
	}
	return 2
}

func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// Tick formats a time on a chart axis whose whole range spans span: hours for
// a day ("14:00"), weekday and day for a week ("Mon 3"), day and month for
// longer ranges ("3 Jun"), month and year past a year ("Jun 2026").
func Tick(t time.Time, span time.Duration) string {
	switch {
	case span <= 36*time.Hour:
		return t.Format("15:04")
	case span <= 10*24*time.Hour:
		return t.Format("Mon 2")
	case span <= 400*24*time.Hour:
		return t.Format("2 Jan")
	}
	return t.Format("Jan 2006")
}

// Stamp formats a time in full for tables and tooltips, with the precision
// that a bucket of size step needs: "Tue 3 Jun 2026 14:00" for hourly data,
// "Tue 3 Jun 2026" for daily data.
func Stamp(t time.Time, step time.Duration) string {
	if step >= 24*time.Hour {
		return t.Format("Mon 2 Jan 2006")
	}
	return t.Format("Mon 2 Jan 2006 15:04")
}

// Ago says how long before now t was, coarsely ("just now", "5 min ago",
// "3 h ago", "2 days ago"); past 30 days, or for a future t, the date.
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return t.Format("2 Jan 2006 15:04")
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 24*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	case d < 48*time.Hour:
		return "yesterday"
	case d < 30*24*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
	}
	return t.Format("2 Jan 2006")
}
