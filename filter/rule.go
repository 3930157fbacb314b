package filter

import "time"

// Rule is one compiled-in indicator. Value is in the form an admin wrote it;
// Compile canonicalises it. Everything besides Value, Type and Action is carried
// through to the Match so that interceptors and the UI can explain a decision.
type Rule struct {
	Value  string
	Type   Type
	Action Action
	ID     string

	Title         string
	Application   string // app name; a Warn bypass covers the whole application (CONTRACT §1)
	ApplicationID string
	// BypassDuration overrides the feed's bypass duration for this indicator
	// (indicator bypassDurationHours); zero means "use the feed setting".
	BypassDuration time.Duration
}

// Match is the outcome of a lookup. Rule is nil (and Action zero) when no
// indicator matched.
type Match struct {
	Action Action
	Rule   *Rule
}
