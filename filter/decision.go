package filter

import "time"

// Mode is the device's enforcement mode (CONTRACT §1).
type Mode uint8

const (
	ModeBlock Mode = iota // default: enforce
	ModeAudit             // every would-be Warn/Block is recorded as audited and allowed
	ModeOff               // no enforcement; reporting continues
)

// ParseMode reads "off", "audit" or "block"; "" is block.
func ParseMode(s string) (Mode, bool) {
	switch s {
	case "block", "":
		return ModeBlock, true
	case "audit":
		return ModeAudit, true
	case "off":
		return ModeOff, true
	}
	return 0, false
}

func (m Mode) String() string {
	switch m {
	case ModeAudit:
		return "audit"
	case ModeOff:
		return "off"
	}
	return "block"
}

// Verdict is what an interceptor does with a connection or query, after mode,
// convertWarnToBlock and bypasses have been applied to the policy Match.
type Verdict uint8

const (
	VerdictAllow    Verdict = iota // no match, or Allowed: pass, nothing to record beyond the transaction
	VerdictAudit                   // pass and record as audited (Audit rule, or mode audit turning a Warn/Block into this)
	VerdictBlock                   // refuse
	VerdictWarn                    // refuse, but the user may continue (creates a bypass)
	VerdictBypassed                // a Warn the user has continued past: pass and record the bypass
)

func (v Verdict) String() string {
	switch v {
	case VerdictAudit:
		return "audit"
	case VerdictBlock:
		return "block"
	case VerdictWarn:
		return "warn"
	case VerdictBypassed:
		return "bypassed"
	}
	return "allow"
}

// Blocks reports whether the interceptor must refuse the connection.
func (v Verdict) Blocks() bool { return v == VerdictBlock || v == VerdictWarn }

// Decision is the single outcome every interceptor acts on, so DNS, SNI, QUIC
// and HTTP can never disagree about a name.
type Decision struct {
	Match   Match
	Verdict Verdict
	// Would is the verdict block mode would have taken; it differs from Verdict
	// in audit and off modes and is what gets recorded.
	Would Verdict
	// BypassExpires is set when Verdict is VerdictBypassed.
	BypassExpires time.Time
}

// Settings are the console's device settings (CONTRACT §5) merged with the
// local configuration: the switches that shape a Decision, and what the
// pages and bypasses built on it need.
type Settings struct {
	Mode               Mode
	ConvertWarnToBlock bool
	// WarnRedirectURL and BlockRedirectURL are the organisation's links the
	// warn and block pages offer (CONTRACT §2).
	WarnRedirectURL, BlockRedirectURL string
	// BypassDuration is the feed's bypassDurationHours; zero means
	// DefaultBypassDuration.
	BypassDuration time.Duration
}

// DefaultBypassDuration applies when neither the indicator nor the feed sets
// a bypass duration (CONTRACT §2).
const DefaultBypassDuration = 24 * time.Hour

// BypassDurationFor is how long a bypass of the indicator r lasts: the
// indicator's own duration, else the feed's, else DefaultBypassDuration
// (CONTRACT §2).
func (s *Settings) BypassDurationFor(r *Rule) time.Duration {
	switch {
	case r != nil && r.BypassDuration() > 0:
		return r.BypassDuration()
	case s.BypassDuration > 0:
		return s.BypassDuration
	}
	return DefaultBypassDuration
}

// BypassFunc reports whether a bypass is active for the matched rule and until
// when. It is consulted only for Warn matches: a Block can never be bypassed.
type BypassFunc func(m Match) (time.Time, bool)

// Decide applies CONTRACT §1 modes and §2 bypass semantics to a policy match.
// bypass may be nil.
func Decide(m Match, s Settings, bypass BypassFunc) Decision {
	d := Decision{Match: m, Would: would(m.Action, s.ConvertWarnToBlock)}
	if d.Would == VerdictWarn && bypass != nil {
		if until, ok := bypass(m); ok {
			d.Would, d.BypassExpires = VerdictBypassed, until
		}
	}
	d.Verdict = enforced(d.Would, s.Mode)
	return d
}

// would is the verdict of an indicator action in block mode, before any
// bypass: a Warn may still be bypassed.
func would(a Action, convertWarnToBlock bool) Verdict {
	switch a {
	case Audit:
		return VerdictAudit
	case Block:
		return VerdictBlock
	case Warn:
		if convertWarnToBlock {
			return VerdictBlock
		}
		return VerdictWarn
	}
	return VerdictAllow // no match, or Allowed
}

// enforced is what mode m makes of the block-mode verdict v: in audit mode
// a refusal is allowed and recorded as audited, in off mode it is allowed
// (the transaction is still reported).
func enforced(v Verdict, m Mode) Verdict {
	if v.Blocks() {
		switch m {
		case ModeAudit:
			return VerdictAudit
		case ModeOff:
			return VerdictAllow
		}
	}
	return v
}
