package filter

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Decider is the one decision every interceptor asks: the DNS proxy about
// the names it answers, the inline inspector about server names, HTTP
// requests and addresses, the pages about the site they show. Because they
// all ask the same DecisionPoint, DNS, SNI, QUIC and HTTP can never disagree
// about a name. Implementations are safe for concurrent use and called on
// hot paths, and keep no name they are given: the DNS proxy's fast path
// passes a view of its read buffer.
type Decider interface {
	DecideName(name string) Decision
	DecideAddr(addr netip.Addr) Decision
	DecideURL(host, path string) Decision
}

// Bypasses is the device's bypass state (the agent's bypass store).
type Bypasses interface {
	// Active reports whether a bypass covers the Warn match m for user at
	// now, and until when. user "" means any user of the device: a DNS
	// answer or a kernel verdict serves the whole host.
	Active(m Match, user string, now time.Time) (time.Time, bool)
}

// State is what decisions are computed from at one instant: the policy and
// the settings in force. It is immutable: a change publishes a new State.
type State struct {
	Policy   *Policy
	Settings Settings
	// SourceMode is the mode the indicator source (or the config, when the
	// source sets none) asks for. Settings.Mode differs from it only while
	// a local override is in force (ModeOverridden).
	SourceMode     Mode
	ModeOverridden bool
}

// DecisionPoint is the decision in force: the policy, the settings and the
// bypasses, behind one value every interceptor and the control API ask (it
// implements Decider). Changes are published, not polled: Changed returns a
// channel closed at the next change of any of the three, so whatever is
// computed from them (the kernel's IP verdicts, the pruning of bypasses)
// follows at once.
type DecisionPoint struct {
	state  atomic.Pointer[State]
	bypass atomic.Pointer[bypassSource] // nil until SetBypasses: nothing is bypassed
	now    func() time.Time
	swaps  atomic.Uint64

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
}

type bypassSource struct{ Bypasses }

// NewDecisionPoint starts with an empty policy, the settings s and no
// bypass. now is the clock bypass expiry is judged by (nil: time.Now).
func NewDecisionPoint(s Settings, now func() time.Time) *DecisionPoint {
	if now == nil {
		now = time.Now
	}
	empty, _ := Compile(nil) // cannot fail: no rule
	d := &DecisionPoint{now: now, changed: make(chan struct{})}
	d.state.Store(&State{Policy: empty, Settings: s, SourceMode: s.Mode})
	return d
}

// State returns the policy and settings in force; never nil.
func (d *DecisionPoint) State() *State { return d.state.Load() }

// Set installs a policy with its settings in one swap (no decision sees
// the new policy with the old settings) and publishes the change. A local
// mode override in force stays: s.Mode becomes the source's mode only.
func (d *DecisionPoint) Set(p *Policy, s Settings) {
	d.update(func(st *State) {
		src := s.Mode
		if st.ModeOverridden {
			s.Mode = st.Settings.Mode
		}
		*st = State{Policy: p, Settings: s, SourceMode: src, ModeOverridden: st.ModeOverridden}
	})
	d.swaps.Add(1)
	d.publish()
}

// SetPolicy installs p under the settings in force (a recompiled set whose
// indicators expired) and publishes the change.
func (d *DecisionPoint) SetPolicy(p *Policy) {
	d.update(func(st *State) { st.Policy = p })
	d.swaps.Add(1)
	d.publish()
}

// OverrideMode makes m the enforcement mode until ClearModeOverride, over
// whatever mode later sets bring (an admin's local decision, `netward
// mode`), and publishes the change.
func (d *DecisionPoint) OverrideMode(m Mode) {
	d.update(func(st *State) { st.Settings.Mode, st.ModeOverridden = m, true })
	d.publish()
}

// ClearModeOverride returns to the source's mode and publishes the change.
func (d *DecisionPoint) ClearModeOverride() {
	d.update(func(st *State) { st.Settings.Mode, st.ModeOverridden = st.SourceMode, false })
	d.publish()
}

// update replaces the state with a copy changed by f. Writers are
// serialised, so two updates never lose one another.
func (d *DecisionPoint) update(f func(*State)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := *d.state.Load()
	f(&st)
	d.state.Store(&st)
}

// Swaps counts the policies installed since the start (Set, SetPolicy).
func (d *DecisionPoint) Swaps() uint64 { return d.swaps.Load() }

// SetBypasses makes b the bypass state decisions consult, and publishes
// the change.
func (d *DecisionPoint) SetBypasses(b Bypasses) {
	d.bypass.Store(&bypassSource{b})
	d.publish()
}

// BypassesChanged publishes a change of the bypass state: one created,
// revoked, pruned or expired (the bypass store calls it).
func (d *DecisionPoint) BypassesChanged() { d.publish() }

// Changed returns a channel that is closed at the next change of the
// policy, the settings or the bypasses. Take it before reading the state
// a computation starts from, so a change in between is not missed.
func (d *DecisionPoint) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

func (d *DecisionPoint) publish() {
	d.mu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// DecideName is the decision for a host name; a bypass by any user of the
// device counts (a DNS answer serves the whole host).
func (d *DecisionPoint) DecideName(name string) Decision {
	st := d.state.Load()
	return d.decide(st, st.Policy.MatchName(name), "")
}

// DecideAddr is the decision for a connection to an IP address.
func (d *DecisionPoint) DecideAddr(addr netip.Addr) Decision {
	st := d.state.Load()
	return d.decide(st, st.Policy.MatchAddr(addr), "")
}

// DecideURL is the decision for a plain-HTTP request: URL rules first, then
// the host's domain rules.
func (d *DecisionPoint) DecideURL(host, path string) Decision {
	st := d.state.Load()
	return d.decide(st, st.Policy.MatchRequest(host, path), "")
}

// decide is Decide with the bypass store as the BypassFunc, without a
// closure: the hot paths stay allocation-free, and
// only a Warn pays for the bypass lookup.
func (d *DecisionPoint) decide(st *State, m Match, user string) Decision {
	dec := Decision{Match: m, Would: would(m.Action, st.Settings.ConvertWarnToBlock)}
	if dec.Would == VerdictWarn {
		d.bypassed(&dec, user)
	}
	dec.Verdict = enforced(dec.Would, st.Settings.Mode)
	return dec
}

// bypassed turns the Warn dec into VerdictBypassed when a bypass covers it
// for user.
func (d *DecisionPoint) bypassed(dec *Decision, user string) {
	if b := d.bypass.Load(); b != nil {
		if until, ok := b.Active(dec.Match, user, d.now()); ok {
			dec.Would, dec.BypassExpires = VerdictBypassed, until
		}
	}
}

// Explanation is a decision as `netward check` tells it (CONTRACT §3).
type Explanation struct {
	Target   Target
	Decision Decision
	Mode     Mode
	// HTTPOnly says a Url with a path decides (the query's, or the matched
	// indicator's): enforceable on plain HTTP only (CONTRACT §1).
	HTTPOnly bool
	// Bypassable says the match is a Warn the user may continue past (one
	// that convertWarnToBlock does not turn into a Block).
	Bypassable bool
}

// Explain is the decision for t as user meets it: a bypass counts if that
// user or the whole device created it (user "": any user of the device).
func (d *DecisionPoint) Explain(t Target, user string) Explanation {
	st := d.state.Load()
	m := st.Policy.MatchTarget(t)
	e := Explanation{Target: t, Decision: d.decide(st, m, user), Mode: st.Settings.Mode,
		Bypassable: m.Action == Warn && !st.Settings.ConvertWarnToBlock}
	if r := m.Rule; r != nil && r.Type == TypeURL {
		if t.Kind == TargetURL && t.URL.HTTPOnly() {
			e.HTTPOnly = true
		} else if u, err := ParseURL(r.Value); err == nil && u.HTTPOnly() {
			e.HTTPOnly = true
		}
	}
	return e
}

// IPVerdicts is the same decision for every address of the policy's IP
// indicators at once, for the kernel (see Policy.IPVerdicts): a bypass by
// any user opens a warned address for the device, as for DNS.
func (d *DecisionPoint) IPVerdicts() IPVerdicts {
	st := d.state.Load()
	return st.Policy.IPVerdicts(st.Settings, func(m Match) (time.Time, bool) {
		if b := d.bypass.Load(); b != nil {
			return b.Active(m, "", d.now())
		}
		return time.Time{}, false
	})
}

var _ Decider = (*DecisionPoint)(nil)
