package web

import (
	"net/http"
	"time"
)

// Period is a reporting period of the Cloud-Discovery views.
type Period string

// The periods of the period selector.
const (
	Period24h Period = "24h"
	Period7d  Period = "7d"
	Period30d Period = "30d"
	Period90d Period = "90d"
)

// Periods lists the periods in selector order.
func Periods() []Period { return []Period{Period24h, Period7d, Period30d, Period90d} }

// ParsePeriod accepts "24h", "7d", "30d" and "90d".
func ParsePeriod(s string) (Period, bool) {
	switch p := Period(s); p {
	case Period24h, Period7d, Period30d, Period90d:
		return p, true
	}
	return "", false
}

// PeriodOf returns the period the request asks for (?period=), or def.
func PeriodOf(req *http.Request, def Period) Period {
	if p, ok := ParsePeriod(req.URL.Query().Get("period")); ok {
		return p
	}
	return def
}

// Duration is the length of the period.
func (p Period) Duration() time.Duration {
	switch p {
	case Period24h:
		return 24 * time.Hour
	case Period7d:
		return 7 * 24 * time.Hour
	case Period90d:
		return 90 * 24 * time.Hour
	}
	return 30 * 24 * time.Hour
}

// Step is the natural bucket of the period's charts: hours up to a week,
// days beyond.
func (p Period) Step() time.Duration {
	if p == Period24h || p == Period7d {
		return time.Hour
	}
	return 24 * time.Hour
}

// Range is the period ending at now, aligned to whole steps so that charts
// and tables of one page agree: to is the end of the current hour or day.
func (p Period) Range(now time.Time) (from, to time.Time) {
	step := p.Step()
	to = now.Truncate(step).Add(step)
	if step == 24*time.Hour { // Truncate works in UTC; align to local midnight
		y, m, d := now.Date()
		to = time.Date(y, m, d+1, 0, 0, 0, 0, now.Location())
		return to.AddDate(0, 0, -int(p.Duration()/(24*time.Hour))), to
	}
	return to.Add(-p.Duration()), to
}

// Short is the selector label ("24 h", "7 d").
func (p Period) Short() string {
	switch p {
	case Period24h:
		return "24 h"
	case Period7d:
		return "7 d"
	case Period90d:
		return "90 d"
	}
	return "30 d"
}

// Label is the long name ("Last 24 hours").
func (p Period) Label() string {
	switch p {
	case Period24h:
		return "Last 24 hours"
	case Period7d:
		return "Last 7 days"
	case Period90d:
		return "Last 90 days"
	}
	return "Last 30 days"
}
