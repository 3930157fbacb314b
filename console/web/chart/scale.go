package chart

import (
	"math"
	"time"

	"github.com/netward/netward/console/web/format"
)

// yAxis is a value axis: its domain and its labelled ticks.
type yAxis struct {
	lo, hi float64
	ticks  []float64
	labels []string
}

// newYAxis makes a "nice" axis (steps of 1, 2, 2.5 or 5 × 10ⁿ in the display
// unit) that covers lo..hi and zero, with about n intervals. Count axes never
// step by fractions; byte axes step in the unit of their largest value.
func newYAxis(lo, hi float64, unit Unit, n int) yAxis {
	lo, hi = math.Min(lo, 0), math.Max(hi, 0)
	if hi == lo {
		hi = lo + 1
	}
	scale := 1.0
	byteUnit := 0
	if unit == Bytes {
		byteUnit = format.ByteUnit(math.Max(math.Abs(lo), math.Abs(hi)))
		scale = math.Pow(1024, float64(byteUnit))
	}
	slo, shi := lo/scale, hi/scale
	step := niceStep((shi - slo) / float64(n))
	if unit == Count && scale == 1 && step < 1 {
		step = 1
	}
	a := yAxis{}
	if step <= 0 || math.IsInf(step, 0) || math.IsNaN(step) {
		a.lo, a.hi = lo, hi
		a.ticks = []float64{lo, hi}
	} else {
		first, last := math.Floor(slo/step), math.Ceil(shi/step)
		if last-first > 12 { // float precision on extreme ranges
			first, last = slo/step, shi/step
		}
		a.lo, a.hi = first*step*scale, last*step*scale
		for i := 0.0; first+i <= last && i <= 12; i++ {
			a.ticks = append(a.ticks, (first+i)*step*scale)
		}
	}
	for _, t := range a.ticks {
		if t == 0 {
			a.labels = append(a.labels, "0")
			continue
		}
		if unit == Bytes {
			a.labels = append(a.labels, format.BytesIn(t, byteUnit))
		} else {
			a.labels = append(a.labels, format.Count(t))
		}
	}
	if a.hi == a.lo {
		a.hi = a.lo + 1
	}
	return a
}

// pos maps v to 0 (bottom) .. 1 (top).
func (a yAxis) pos(v float64) float64 {
	f := (v/2 - a.lo/2) / (a.hi/2 - a.lo/2) // halves: no overflow at ±1e300
	return math.Max(0, math.Min(1, f))
}

// niceStep rounds a raw step up to 1, 2, 2.5 or 5 × 10ⁿ.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / p; {
	case f <= 1:
		return p
	case f <= 2:
		return 2 * p
	case f <= 2.5:
		return 2.5 * p
	case f <= 5:
		return 5 * p
	}
	return 10 * p
}

// timeTick is one label on a time axis.
type timeTick struct {
	at    float64 // fraction of the axis, 0..1
	label string
}

// timeTicks labels the range from..to with at most max ticks on calendar
// boundaries of loc: whole hours, midnights, Mondays, first days of months or
// years, whichever step keeps the count within max.
func timeTicks(from, to time.Time, loc *time.Location, max int) []timeTick {
	from, to = from.In(loc), to.In(loc)
	a, b := unixSeconds(from), unixSeconds(to)
	if !(b > a) {
		return []timeTick{{at: 0.5, label: format.Tick(from, 30*24*time.Hour)}}
	}
	spanSec := b - a
	span := time.Duration(math.Min(spanSec*1e9, float64(math.MaxInt64/2)))
	type stepKind struct {
		d      time.Duration // fixed steps
		months int           // calendar steps
	}
	steps := []stepKind{
		{d: time.Hour}, {d: 2 * time.Hour}, {d: 3 * time.Hour}, {d: 4 * time.Hour}, {d: 6 * time.Hour},
		{d: 12 * time.Hour}, {d: 24 * time.Hour}, {d: 48 * time.Hour}, {d: 7 * 24 * time.Hour},
		{d: 14 * 24 * time.Hour}, {months: 1}, {months: 3}, {months: 6}, {months: 12},
	}
	var chosen stepKind
	for _, s := range steps {
		n := 0.0
		if s.d > 0 {
			n = spanSec / s.d.Seconds()
		} else {
			n = spanSec / (float64(s.months) * 30.4 * 86400)
		}
		if n <= float64(max) {
			chosen = s
			break
		}
	}
	if chosen.d == 0 && chosen.months == 0 { // longer than max years
		chosen.months = 12 * int(math.Ceil(spanSec/(365.25*86400)/float64(max)))
	}
	var t time.Time
	switch {
	case chosen.months > 0:
		t = time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, loc)
		if chosen.months >= 12 {
			t = time.Date(from.Year(), 1, 1, 0, 0, 0, 0, loc)
		}
	case chosen.d >= 24*time.Hour:
		t = time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc)
		if chosen.d == 7*24*time.Hour || chosen.d == 14*24*time.Hour {
			for t.Weekday() != time.Monday {
				t = t.AddDate(0, 0, -1)
			}
		}
	default:
		h := int(chosen.d / time.Hour)
		t = time.Date(from.Year(), from.Month(), from.Day(), from.Hour()/h*h, 0, 0, 0, loc)
	}
	var ticks []timeTick
	for i := 0; i < 4*max+4 && len(ticks) < max+1; i++ {
		s := unixSeconds(t)
		if s > b {
			break
		}
		if s >= a {
			ticks = append(ticks, timeTick{at: (s - a) / spanSec, label: format.Tick(t, span)})
		}
		next := t
		switch {
		case chosen.months > 0:
			next = t.AddDate(0, chosen.months, 0)
		case chosen.d >= 24*time.Hour:
			next = t.AddDate(0, 0, int(chosen.d/(24*time.Hour)))
		default:
			next = t.Add(chosen.d)
		}
		if !next.After(t) { // year 9999 and beyond: time stops moving
			break
		}
		t = next
	}
	return ticks
}
