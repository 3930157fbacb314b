package filter

import (
	"net/netip"
	"testing"
	"time"
)

// fakeBypasses is a bypass state: every Warn of the listed indicator ids
// is bypassed until the given time, for the listed users ("" = the device).
type fakeBypasses struct {
	until time.Time
	ids   map[string][]string // indicator id -> users
}

func (f fakeBypasses) Active(m Match, user string, now time.Time) (time.Time, bool) {
	if m.Rule == nil || !now.Before(f.until) {
		return time.Time{}, false
	}
	for _, u := range f.ids[m.Rule.ID] {
		if u == "" || user == "" || u == user {
			return f.until, true
		}
	}
	return time.Time{}, false
}

func decisionPolicy(t testing.TB) *Policy {
	t.Helper()
	p, err := Compile([]Rule{
		{Value: "blocked.test", Type: TypeDomain, Action: Block, ID: "1"},
		{Value: "warned.test", Type: TypeDomain, Action: Warn, ID: "2", Meta: &RuleMeta{Application: "Demo"}},
		{Value: "audited.test", Type: TypeDomain, Action: Audit, ID: "3"},
		{Value: "198.51.100.0/24", Type: TypeIP, Action: Warn, ID: "4"},
		{Value: "http://warned.test/dl/", Type: TypeURL, Action: Block, ID: "5"},
		{Value: "https://plain.test/", Type: TypeURL, Action: Block, ID: "6"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// closed reports whether ch has been closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Every change is published: Set, SetPolicy, SetMode, SetBypasses and
// BypassesChanged each close the channel Changed returned before them, and
// nothing else does.
func TestDecisionPointPublishes(t *testing.T) {
	d := NewDecisionPoint(Settings{}, nil)
	p := decisionPolicy(t)
	for _, tc := range []struct {
		name   string
		change func()
	}{
		{"Set", func() { d.Set(p, Settings{Mode: ModeAudit}) }},
		{"SetPolicy", func() { d.SetPolicy(p) }},
		{"ClearModeOverride", func() { d.ClearModeOverride() }},
		{"OverrideMode", func() { d.OverrideMode(ModeOff) }},
		{"SetBypasses", func() { d.SetBypasses(fakeBypasses{}) }},
		{"BypassesChanged", d.BypassesChanged},
	} {
		ch := d.Changed()
		d.DecideName("warned.test")
		d.State()
		if closed(ch) {
			t.Fatalf("%s: closed by a read", tc.name)
		}
		tc.change()
		if !closed(ch) {
			t.Errorf("%s: the change was not published", tc.name)
		}
		if closed(d.Changed()) {
			t.Errorf("%s: the next channel is already closed", tc.name)
		}
	}
	if st := d.State(); st.Policy != p || st.Settings.Mode != ModeOff {
		t.Errorf("state = %+v, want the policy and mode off", st)
	}
	if n := d.Swaps(); n != 2 {
		t.Errorf("Swaps() = %d, want 2 (Set and SetPolicy)", n)
	}
}

// OverrideMode keeps the policy and the other settings; Set replaces both.
func TestDecisionPointSettings(t *testing.T) {
	d := NewDecisionPoint(Settings{Mode: ModeAudit}, nil)
	if d.State().Policy == nil || d.DecideName("any.test").Match.Rule != nil {
		t.Fatal("a new decision point must hold an empty policy")
	}
	p := decisionPolicy(t)
	d.Set(p, Settings{WarnRedirectURL: "https://intranet.example/apps", BypassDuration: time.Hour})
	d.OverrideMode(ModeOff)
	if st := d.State(); st.Policy != p || st.Settings.WarnRedirectURL != "https://intranet.example/apps" || st.Settings.Mode != ModeOff {
		t.Errorf("after OverrideMode: %+v", st.Settings)
	}
	if v := d.DecideName("blocked.test"); v.Verdict != VerdictAllow || v.Would != VerdictBlock {
		t.Errorf("mode off: %v would %v", v.Verdict, v.Would)
	}
	d.ClearModeOverride()
	d.Set(p, Settings{ConvertWarnToBlock: true})
	if v := d.DecideName("warned.test"); v.Verdict != VerdictBlock {
		t.Errorf("convertWarnToBlock: %v", v.Verdict)
	}
}

// A local override stays across new sets until cleared (issue 23: `netward
// mode`); the source's mode is kept beside it and comes back on clear.
func TestDecisionPointModeOverride(t *testing.T) {
	d := NewDecisionPoint(Settings{Mode: ModeBlock}, nil)
	p := decisionPolicy(t)
	d.OverrideMode(ModeAudit)
	d.Set(p, Settings{Mode: ModeBlock})
	st := d.State()
	if st.Settings.Mode != ModeAudit || !st.ModeOverridden || st.SourceMode != ModeBlock {
		t.Fatalf("after a new set: mode %v overridden %v source %v; want audit, true, block", st.Settings.Mode, st.ModeOverridden, st.SourceMode)
	}
	if v := d.DecideName("blocked.test"); v.Verdict != VerdictAudit {
		t.Errorf("overridden to audit: %v", v.Verdict)
	}
	d.Set(p, Settings{Mode: ModeOff})
	if st := d.State(); st.Settings.Mode != ModeAudit || st.SourceMode != ModeOff {
		t.Errorf("second set: mode %v source %v", st.Settings.Mode, st.SourceMode)
	}
	d.ClearModeOverride()
	if st := d.State(); st.Settings.Mode != ModeOff || st.ModeOverridden {
		t.Errorf("cleared: mode %v overridden %v; want the source's off", st.Settings.Mode, st.ModeOverridden)
	}
}

func TestBypassDurationFor(t *testing.T) {
	own := &Rule{Meta: &RuleMeta{BypassDuration: 2 * time.Second}}
	for _, tc := range []struct {
		name string
		s    Settings
		r    *Rule
		want time.Duration
	}{
		{"indicator", Settings{BypassDuration: time.Hour}, own, 2 * time.Second},
		{"feed", Settings{BypassDuration: time.Hour}, &Rule{}, time.Hour},
		{"default", Settings{}, &Rule{}, DefaultBypassDuration},
		{"no rule", Settings{}, nil, DefaultBypassDuration},
	} {
		if got := tc.s.BypassDurationFor(tc.r); got != tc.want {
			t.Errorf("%s: BypassDurationFor = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The bypass state counts for Warn matches only, by the decision point's
// clock, for the device (the interceptors) or one user (Explain).
func TestDecisionPointBypasses(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	d := NewDecisionPoint(Settings{}, func() time.Time { return now })
	d.Set(decisionPolicy(t), Settings{})
	if v := d.DecideName("warned.test"); v.Verdict != VerdictWarn {
		t.Fatalf("before any bypass store: %v", v.Verdict)
	}
	until := now.Add(time.Hour)
	d.SetBypasses(fakeBypasses{until: until, ids: map[string][]string{"2": {"alice"}, "4": {""}, "1": {""}}})
	name := func(n string) Target { return Target{Kind: TargetName, Name: n} }
	for _, tc := range []struct {
		name string
		got  Decision
		want Verdict
	}{
		{"device", d.DecideName("www.warned.test"), VerdictBypassed},
		{"alice", d.Explain(name("warned.test"), "alice").Decision, VerdictBypassed},
		{"bob", d.Explain(name("warned.test"), "bob").Decision, VerdictWarn},
		{"address", d.DecideAddr(netip.MustParseAddr("198.51.100.7")), VerdictBypassed},
		{"block never", d.DecideName("blocked.test"), VerdictBlock},
		{"url rule first", d.DecideURL("warned.test", "/dl/x.exe"), VerdictBlock},
		{"url falls back to the host", d.DecideURL("warned.test", "/other"), VerdictBypassed},
	} {
		if tc.got.Verdict != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got.Verdict, tc.want)
		}
	}
	if v := d.DecideName("warned.test"); !v.BypassExpires.Equal(until) {
		t.Errorf("BypassExpires = %v, want %v", v.BypassExpires, until)
	}
	now = until
	if v := d.DecideName("warned.test"); v.Verdict != VerdictWarn {
		t.Errorf("at expiry: %v, want warn", v.Verdict)
	}
	if v := d.IPVerdicts(); v.Warn.Len() != 1 {
		t.Errorf("IP verdicts after expiry: %+v, want the /24 warned again", v)
	}
}

// Explain is `netward check`: the target's kind, the http-only note, and
// whether the user may continue.
func TestExplain(t *testing.T) {
	d := NewDecisionPoint(Settings{}, nil)
	d.Set(decisionPolicy(t), Settings{Mode: ModeAudit})
	for _, tc := range []struct {
		q                    string
		verdict, would       Verdict
		id                   string
		httpOnly, bypassable bool
	}{
		{"warned.test", VerdictAudit, VerdictWarn, "2", false, true},
		{"http://warned.test/dl/x.exe", VerdictAudit, VerdictBlock, "5", true, false},
		{"http://warned.test/", VerdictAudit, VerdictWarn, "2", false, true},
		{"plain.test", VerdictAllow, VerdictAllow, "", false, false},
		{"http://plain.test/x", VerdictAudit, VerdictBlock, "6", true, false},
		{"198.51.100.7:443", VerdictAudit, VerdictWarn, "4", false, true},
		{"audited.test", VerdictAudit, VerdictAudit, "3", false, false},
	} {
		tg, err := ParseTarget(tc.q)
		if err != nil {
			t.Fatalf("ParseTarget(%q): %v", tc.q, err)
		}
		e := d.Explain(tg, "")
		id := ""
		if r := e.Decision.Match.Rule; r != nil {
			id = r.ID
		}
		if e.Decision.Verdict != tc.verdict || e.Decision.Would != tc.would || id != tc.id ||
			e.HTTPOnly != tc.httpOnly || e.Bypassable != tc.bypassable || e.Mode != ModeAudit || e.Target != tg {
			t.Errorf("Explain(%q) = %+v, want %v would %v id %q httpOnly %v bypassable %v",
				tc.q, e, tc.verdict, tc.would, tc.id, tc.httpOnly, tc.bypassable)
		}
	}
	d.OverrideMode(ModeBlock)
	d.Set(d.State().Policy, Settings{ConvertWarnToBlock: true})
	if e := d.Explain(Target{Kind: TargetName, Name: "warned.test"}, ""); e.Bypassable || e.Decision.Verdict != VerdictBlock {
		t.Errorf("convertWarnToBlock: %+v, want a Block nobody may continue past", e)
	}
}

// A change racing another is never lost: each writer's field survives.
func TestDecisionPointConcurrentWriters(t *testing.T) {
	d := NewDecisionPoint(Settings{}, nil)
	p := decisionPolicy(t)
	done := make(chan struct{})
	go func() {
		for range 1000 {
			d.SetPolicy(p)
		}
		close(done)
	}()
	for range 1000 {
		d.OverrideMode(ModeAudit)
	}
	<-done
	if st := d.State(); st.Policy != p || st.Settings.Mode != ModeAudit {
		t.Errorf("state = %+v, want both writes", st)
	}
}

// The interceptors' questions stay allocation-free with a bypass state.
func TestDecisionPointAllocs(t *testing.T) {
	d := NewDecisionPoint(Settings{}, nil)
	d.Set(decisionPolicy(t), Settings{})
	d.SetBypasses(fakeBypasses{until: time.Now().Add(time.Hour), ids: map[string][]string{"2": {""}}})
	addr := netip.MustParseAddr("198.51.100.7")
	for name, f := range map[string]func(){
		"DecideName": func() { d.DecideName("www.warned.test") },
		"DecideAddr": func() { d.DecideAddr(addr) },
		"DecideURL":  func() { d.DecideURL("warned.test", "/dl/x") },
	} {
		if n := testing.AllocsPerRun(100, f); n > 0 {
			t.Errorf("%s allocates %v times", name, n)
		}
	}
}

func BenchmarkDecisionPointDecideName(b *testing.B) {
	d := NewDecisionPoint(Settings{}, nil)
	d.Set(decisionPolicy(b), Settings{})
	d.SetBypasses(fakeBypasses{until: time.Now().Add(time.Hour), ids: map[string][]string{"2": {""}}})
	b.ReportAllocs()
	for b.Loop() {
		d.DecideName("www.warned.test")
	}
}
