package indicators

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/netward/netward/filter"
)

// Options tune the parsers.
type Options struct {
	// Action is given to entries of formats that carry none (hosts files and
	// domain lists); zero means Block.
	Action filter.Action
	// Now is used to warn about indicators that have already expired; zero
	// disables that warning (the compiler drops them anyway).
	Now time.Time
	// AllowDefaultRoute accepts IpAddress indicators of a whole address
	// family (0.0.0.0/0, ::/0). Without it they are rejected: one such line
	// — often a routing-table line pasted into a list — would Block (or
	// Warn, or queue) every connection of the machine. The agent's
	// indicators.allowDefaultRoute and validate's --allow-default-route set it.
	AllowDefaultRoute bool
}

func (o Options) action() filter.Action {
	if o.Action == 0 {
		return filter.Block
	}
	return o.Action
}

// Field keys, mapped by each format to its own column or JSON field name.
const (
	fID      = "id"
	fType    = "type"
	fValue   = "value"
	fAction  = "action"
	fExpires = "expires"
	fBypass  = "bypass"
)

// rawFields are an indicator's fields as written, before validation.
type rawFields struct {
	id, typ, value, action, expires, title, app, appID string
	hasBypass                                          bool
	bypassHours                                        float64
}

// where locates one field of the indicator being validated.
type where func(field string) Position

// add validates f and appends it to the set, or records every problem with
// it. It reports whether the indicator was loaded.
func (s *Set) add(f rawFields, at where, line, col, index int, o Options) bool {
	ok := true
	typ, typErr := filter.ParseType(f.typ)
	if typErr != nil {
		ok = false
		if errors.Is(typErr, filter.ErrFileIndicator) {
			s.errorf(at(fType), "indicator type %q: %v", f.typ, typErr)
		} else {
			s.errorf(at(fType), "%v", typErr)
		}
	}
	act, err := filter.ParseAction(f.action)
	if err != nil {
		ok = false
		s.errorf(at(fAction), "%v", err)
	}
	var value string
	if f.value == "" {
		ok = false
		s.errorf(at(fValue), "indicator value is empty")
	} else if typErr == nil {
		v, err := canonicalValue(typ, f.value)
		switch {
		case err != nil:
			ok = false
			s.errorf(at(fValue), "%s %q: %v", typ, f.value, err)
		case typ == filter.TypeIP && isDefaultRoute(v) && !o.AllowDefaultRoute:
			ok = false
			s.errorf(at(fValue), "%s %q covers every address: as an indicator it would apply %s to all traffic of the machine; it is refused unless indicators.allowDefaultRoute is true (validate: --allow-default-route)", typ, f.value, f.action)
		case typ == filter.TypeIP && isDefaultRoute(v):
			s.warnf(at(fValue), "%s %q covers every address (allowed by indicators.allowDefaultRoute): more specific indicators still win (CONTRACT §1)", typ, f.value)
		}
		value = v
	}
	var exp time.Time
	if f.expires != "" {
		t, err := parseTime(f.expires)
		if err != nil {
			ok = false
			s.errorf(at(fExpires), "expiration time %q: %v", f.expires, err)
		}
		exp = t
	}
	var bypass time.Duration
	if f.hasBypass {
		h := f.bypassHours
		if math.IsNaN(h) || h < 0 || h > 24*366 {
			ok = false
			s.errorf(at(fBypass), "bypassDurationHours %v is outside 0..8784 (one year)", h)
		} else {
			bypass = time.Duration(h * float64(time.Hour))
		}
	}
	if !ok {
		s.Rejected++
		return false
	}
	if !exp.IsZero() && !o.Now.IsZero() && !exp.After(o.Now) {
		s.warnf(at(fExpires), "expired at %s: not loaded", exp.Format(time.RFC3339))
	}
	s.Indicators = append(s.Indicators, Indicator{
		ID: f.id, Value: value, Type: typ, Action: act, Title: f.title,
		Application: f.app, ApplicationID: f.appID, Expires: exp, BypassDuration: bypass,
		line: int32(line), col: int32(col), index: int32(index),
	})
	return true
}

// canonicalValue validates v as an indicator of type t and returns its
// canonical form. Invalid values are rejected, never mangled (CONTRACT §1).
func canonicalValue(t filter.Type, v string) (string, error) {
	v = strings.TrimSpace(v)
	switch t {
	case filter.TypeDomain:
		if strings.ContainsAny(v, "/:") {
			return "", errors.New("a DomainName holds a host name only; use a Url indicator for a URL")
		}
		return filter.CanonicalName(v)
	case filter.TypeIP:
		p, err := filter.ParsePrefix(v)
		if err != nil {
			return "", err
		}
		return p.String(), nil
	case filter.TypeURL:
		u, err := filter.ParseURL(v)
		if err != nil {
			return "", err
		}
		return u.String(), nil
	}
	return "", fmt.Errorf("unknown type %v", t)
}

// isDefaultRoute reports whether the canonical IP value v is a whole address
// family: 0.0.0.0/0 or ::/0 (IPv4-mapped ::ffff:0:0/96 is 0.0.0.0/0 once
// canonical).
func isDefaultRoute(v string) bool { return strings.HasSuffix(v, "/0") }

// parseTime reads an expiration time: RFC 3339 (what MDE exports), or the
// same without a zone (read as UTC, as MDE does), or a date (midnight UTC).
// "0001-01-01T00:00:00Z", MDE's "no expiry", is the zero time.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() <= 1 {
				return time.Time{}, nil
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not a timestamp; write RFC 3339 like 2026-12-31T23:59:59Z")
}

// validateSettings checks feed settings, reporting each bad field.
func (s *Set) validateSettings(st Settings, at where) Settings {
	if _, ok := filter.ParseMode(st.Mode); !ok {
		s.errorf(at("settings.mode"), "mode %q is not one of off, audit, block; the local config's mode applies", st.Mode)
		st.Mode = ""
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"settings.warnRedirectUrl", &st.WarnRedirectURL}, {"settings.blockRedirectUrl", &st.BlockRedirectURL}} {
		if *f.v == "" {
			continue
		}
		u, err := url.Parse(*f.v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			s.errorf(at(f.name), "%q is not an absolute http(s) URL; it is ignored", *f.v)
			*f.v = ""
		}
	}
	if h := st.BypassDurationHours; math.IsNaN(h) || h < 0 || h > 24*366 {
		s.errorf(at("settings.bypassDurationHours"), "%v is outside 0..8784 (one year); the default of 24 hours applies", h)
		st.BypassDurationHours = 0
	}
	return st
}
