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

// Settings are the feed-level switches that shape a Decision.
type Settings struct {
	Mode               Mode
	ConvertWarnToBlock bool
}

// BypassFunc reports whether a bypass is active for the matched rule and until
// when. It is consulted only for Warn matches: a Block can never be bypassed.
type BypassFunc func(m Match) (time.Time, bool)

// Decide applies CONTRACT §1 modes and §2 bypass semantics to a policy match.
// bypass may be nil.
func Decide(m Match, s Settings, bypass BypassFunc) Decision {
	d := Decision{Match: m}
	switch m.Action {
	case Allowed, 0:
		d.Would = VerdictAllow
	case Audit:
		d.Would = VerdictAudit
	case Block:
		d.Would = VerdictBlock
	case Warn:
		d.Would = VerdictWarn
		if s.ConvertWarnToBlock {
			d.Would = VerdictBlock
		} else if bypass != nil {
			if until, ok := bypass(m); ok {
				d.Would = VerdictBypassed
				d.BypassExpires = until
			}
		}
	}
	d.Verdict = d.Would
	if d.Would.Blocks() {
		switch s.Mode {
		case ModeAudit:
			d.Verdict = VerdictAudit // allowed, and recorded as audited
		case ModeOff:
			d.Verdict = VerdictAllow // no enforcement; the transaction is still reported
		}
	}
	return d
}
