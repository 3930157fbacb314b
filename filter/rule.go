package filter

import (
	"strconv"
	"time"
)

// Rule is one compiled-in indicator. Value is in the form an admin wrote it;
// Compile canonicalises it. Everything besides Value, Type and Action is carried
// through to the Match so that interceptors and the UI can explain a decision.
//
// A policy holds one Rule per indicator, a million of them with a big feed,
// so the fields most list entries leave empty (title, application, bypass
// duration) sit behind Meta, nil when none is set: 48 bytes a rule instead
// of 96 (7.9 MB of the agent's heap with the 83,808-name StevenBlack list,
// issue 21). Read them through the methods, which treat a nil Meta as empty.
type Rule struct {
	Value string
	// ID is the indicator's id as its source wrote it. A hosts file or
	// domain list names none: its rules leave ID empty and derive it from
	// their Line and Meta.IDSource ("list.txt:123"). Read it through
	// IndicatorID or AppendID, which do both.
	ID string
	// Meta is nil when the indicator sets none of its fields (NewRuleMeta).
	Meta   *RuleMeta
	Type   Type
	Action Action
	// Line is the line of the list a rule with a derived id came from.
	Line uint32
}

// RuleMeta is what an indicator may add to explain itself. Rules with the
// same RuleMeta may share one (an application's indicators do).
type RuleMeta struct {
	Title         string
	Application   string // app name; a Warn bypass covers the whole application (CONTRACT §1)
	ApplicationID string
	// BypassDuration overrides the feed's bypass duration for this indicator
	// (indicator bypassDurationHours); zero means "use the feed setting".
	BypassDuration time.Duration
	// IDSource, when set, is the file name the ids of rules without an ID
	// derive from: IDSource + ":" + Line. The 83,808 ids of the
	// StevenBlack list held as strings were 1.35 MB of the agent's heap
	// (issue 21); derived, they cost each rule 4 bytes of its padding.
	IDSource string
}

// NewRuleMeta returns m's fields as a *RuleMeta, or nil when every one is
// zero (the Rule then costs no Meta).
func NewRuleMeta(m RuleMeta) *RuleMeta {
	if m == (RuleMeta{}) {
		return nil
	}
	return &m
}

// IndicatorID is the indicator's id: ID, or for a rule of a list the id
// derived from its source and line (see Rule.ID).
func (r *Rule) IndicatorID() string {
	if r.ID != "" || r.Meta == nil || r.Meta.IDSource == "" {
		return r.ID
	}
	// Built on the stack and copied once: every blocked answer's record
	// asks (issue 21), and AppendID(nil) grew a slice two or three times.
	var buf [64]byte
	return string(r.AppendID(buf[:0]))
}

// AppendID appends IndicatorID to b, without allocating when b has room.
func (r *Rule) AppendID(b []byte) []byte {
	if r.ID != "" || r.Meta == nil || r.Meta.IDSource == "" {
		return append(b, r.ID...)
	}
	b = append(b, r.Meta.IDSource...)
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(r.Line), 10)
}

// Title is the indicator's title, or "".
func (r *Rule) Title() string {
	if r.Meta == nil {
		return ""
	}
	return r.Meta.Title
}

// Application is the app name the indicator belongs to, or "": a Warn
// bypass covers the whole application (CONTRACT §1).
func (r *Rule) Application() string {
	if r.Meta == nil {
		return ""
	}
	return r.Meta.Application
}

// ApplicationID is the app's id in the catalog, or "".
func (r *Rule) ApplicationID() string {
	if r.Meta == nil {
		return ""
	}
	return r.Meta.ApplicationID
}

// BypassDuration is the indicator's own bypass duration; zero means "use
// the feed setting".
func (r *Rule) BypassDuration() time.Duration {
	if r.Meta == nil {
		return 0
	}
	return r.Meta.BypassDuration
}

// Match is the outcome of a lookup. Rule is nil (and Action zero) when no
// indicator matched.
type Match struct {
	Action Action
	Rule   *Rule
}
