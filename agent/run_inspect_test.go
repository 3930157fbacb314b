package agent

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/agent/bypass"
	"github.com/netward/netward/agent/notify"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/hostnet"
	"github.com/netward/netward/filter/inspect"
	"github.com/netward/netward/telemetry"
)

// inspNoticeRecorder is a notify.Backend that hands every notice to its
// channel.
type inspNoticeRecorder chan notify.Notice

func (r inspNoticeRecorder) Notify(_ context.Context, n notify.Notice, _ func()) error {
	r <- n
	return nil
}

// TestEmitInspect checks what one inspector decision becomes: the telemetry
// record (ActionType, Source, RemoteUrl) and whether the user is told.
func TestEmitInspect(t *testing.T) {
	a := bareAgent(t, nil)
	recs := make(chan telemetry.Record, 16)
	a.addSink(func(r telemetry.Record) { recs <- r })
	notices := make(inspNoticeRecorder, 16)
	n := notify.New(notify.Config{Backend: notices})
	a.warn.notifier.Store(n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	warnRule := &filter.Rule{Value: "warned.test", Type: filter.TypeDomain, Action: filter.Warn, ID: "2", Meta: &filter.RuleMeta{Application: "Demo"}}
	blockRule := &filter.Rule{Value: "198.51.100.7", Type: filter.TypeIP, Action: filter.Block, ID: "3"}
	urlRule := &filter.Rule{Value: "http://www.example.com/forbidden/", Type: filter.TypeURL, Action: filter.Block, ID: "4"}
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	remote := netip.MustParseAddrPort("203.0.113.5:443")
	tests := []struct {
		name       string
		ev         inspect.Event
		wantAction string // "" = no record
		wantURL    string
		wantNotice string // "" = no notice
	}{
		{"warn by sni", inspect.Event{Source: inspect.SourceSNI, Protocol: inspect.ProtoTCP, Name: "www.warned.test",
			Decision: filter.Decision{Match: filter.Match{Rule: warnRule}, Verdict: filter.VerdictWarn}},
			telemetry.NetworkProtectionWarned, "www.warned.test", "www.warned.test"},
		{"block by quic", inspect.Event{Source: inspect.SourceQUIC, Protocol: inspect.ProtoQUIC, Name: "q.warned.test",
			Decision: filter.Decision{Match: filter.Match{Rule: warnRule}, Verdict: filter.VerdictBlock}},
			telemetry.NetworkProtectionBlocked, "q.warned.test", "q.warned.test"},
		{"http url path", inspect.Event{Source: inspect.SourceHTTP, Protocol: inspect.ProtoTCP, Name: "www.example.com", Path: "/forbidden/x",
			Decision: filter.Decision{Match: filter.Match{Rule: urlRule}, Verdict: filter.VerdictBlock}},
			telemetry.NetworkProtectionBlocked, "http://www.example.com/forbidden/x", "www.example.com"},
		{"ip rule", inspect.Event{Source: inspect.SourceIP, Protocol: inspect.ProtoTCP,
			Decision: filter.Decision{Match: filter.Match{Rule: blockRule}, Verdict: filter.VerdictBlock}},
			telemetry.NetworkProtectionBlocked, "", "203.0.113.5"},
		{"doh is silent", inspect.Event{Source: inspect.SourceSNI, Protocol: inspect.ProtoTCP, Name: "dns.google", Reason: inspect.ReasonDoH,
			Decision: filter.Decision{Verdict: filter.VerdictBlock}},
			telemetry.NetworkProtectionBlocked, "dns.google", ""},
		{"quic unreadable dropped", inspect.Event{Source: inspect.SourceQUIC, Protocol: inspect.ProtoQUIC, Reason: inspect.ReasonUnreadable,
			Decision: filter.Decision{Verdict: filter.VerdictBlock}},
			telemetry.NetworkProtectionBlocked, "", ""},
		{"allowed named", inspect.Event{Source: inspect.SourceSNI, Protocol: inspect.ProtoTCP, Name: "ok.test"},
			telemetry.ConnectionSuccess, "ok.test", ""},
		{"allowed unnamed", inspect.Event{Source: inspect.SourceIP, Protocol: inspect.ProtoTCP}, "", "", ""},
		// A loud case last: a notice from a silent case above would arrive first.
		{"warn again", inspect.Event{Source: inspect.SourceSNI, Protocol: inspect.ProtoTCP, Name: "last.warned.test",
			Decision: filter.Decision{Match: filter.Match{Rule: warnRule}, Verdict: filter.VerdictWarn}},
			telemetry.NetworkProtectionWarned, "last.warned.test", "last.warned.test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Time, tc.ev.Remote = at, remote
			tc.ev.Local = netip.MustParseAddrPort("192.0.2.1:40000")
			a.emitInspect(tc.ev)
			select {
			case r := <-recs:
				if tc.wantAction == "" {
					t.Fatalf("record %+v, want none", r)
				}
				if r.ActionType != tc.wantAction || r.Source != tc.ev.Source.String() || r.RemoteUrl != tc.wantURL ||
					r.Protocol != tc.ev.Protocol.String() || r.RemoteIP != "203.0.113.5" || r.RemotePort != 443 || r.LocalPort != 40000 {
					t.Errorf("record = %+v, want %s source %s url %q", r, tc.wantAction, tc.ev.Source, tc.wantURL)
				}
				if rule := tc.ev.Decision.Match.Rule; rule != nil && (r.IndicatorId != rule.IndicatorID() || r.Application != rule.Application()) {
					t.Errorf("indicator %q app %q, want %q %q", r.IndicatorId, r.Application, rule.IndicatorID(), rule.Application())
				}
			default:
				if tc.wantAction != "" {
					t.Fatalf("no record, want %s", tc.wantAction)
				}
			}
			if tc.wantNotice == "" {
				return
			}
			select {
			case nt := <-notices:
				if nt.Name != tc.wantNotice || nt.Blocked != (tc.ev.Decision.Verdict == filter.VerdictBlock) {
					t.Errorf("notice = %+v, want name %q", nt, tc.wantNotice)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no notice for %q", tc.wantNotice)
			}
		})
	}
}

func TestInspectConfig(t *testing.T) {
	for _, tc := range []struct {
		json    string
		quic    inspect.QUICMode
		capture bool
	}{
		{`{"version":1,"sni":{"enabled":true}}`, inspect.QUICInspect, false},
		{`{"version":1,"sni":{"enabled":true,"quic":"block"},"dns":{"capture":true}}`, inspect.QUICBlock, true},
		{`{"version":1,"sni":{"enabled":true,"quic":"allow","failClosed":true}}`, inspect.QUICAllow, false},
	} {
		cfg, err := parseConfig(t, []byte(tc.json), "test")
		if err != nil {
			t.Fatal(err)
		}
		a, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := a.inspectConfig()
		// The agent's own sockets (AgentMark) must never be queued.
		if c.SkipMark != hostnet.AgentMark || c.SkipMask != 0xffffffff {
			t.Errorf("%s: skip %#x/%#x, want AgentMark %#x/0xffffffff", tc.json, c.SkipMark, c.SkipMask, hostnet.AgentMark)
		}
		if e := c.Engine; e.QUIC != tc.quic || e.BlockEncryptedDNS != tc.capture || e.FailClosed != cfg.SNI.FailClosed || e.Decider == nil || e.OnDecision == nil {
			t.Errorf("%s: config %+v, want quic %s, encrypted DNS blocked %v", tc.json, c, tc.quic, tc.capture)
		}
		if _, err := hostnet.NewInspector(c); err != nil && runtime.GOOS == "linux" {
			t.Errorf("%s: NewInspector: %v", tc.json, err)
		}
	}
}

// TestAgentIPVerdicts is issue 14 §4 in the agent: the kernel's IP verdicts
// come from the one decision — policy (longest prefix), mode,
// convertWarnToBlock and bypasses — and follow each change at once. A
// bypass of a warned address (named as the notice names it: the address)
// opens it; a Block can never be bypassed.
func TestAgentIPVerdicts(t *testing.T) {
	a := policyAgent(t)
	dir := a.cfg.DataDir
	store, err := bypass.Open(bypass.Config{Path: filepath.Join(dir, "bypass.db"), OnChange: a.dp.BypassesChanged}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a.warn.store.Store(store)
	a.dp.SetBypasses(store)

	got := make(chan filter.IPVerdicts, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	changed := a.dp.Changed()
	last := a.dp.IPVerdicts()
	go func() {
		a.followIPVerdicts(ctx, func(v filter.IPVerdicts) { got <- v }, last, changed)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	next := func(what string) filter.IPVerdicts {
		t.Helper()
		select {
		case v := <-got:
			return v
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no new IP verdicts (the change was not announced)", what)
		}
		return filter.IPVerdicts{}
	}
	str := func(f filter.FamilyRanges) string {
		var parts []string
		for _, r := range f.V4 {
			parts = append(parts, r.First.String()+"-"+r.Last.String())
		}
		return strings.Join(parts, " ")
	}

	a.dp.SetPolicy(compileRules(t,
		filter.Rule{Value: "198.51.100.0/24", Type: filter.TypeIP, Action: filter.Block, ID: "1"},
		filter.Rule{Value: "198.51.100.7", Type: filter.TypeIP, Action: filter.Allowed, ID: "2"},
		filter.Rule{Value: "203.0.113.0/24", Type: filter.TypeIP, Action: filter.Warn, ID: "3", Meta: &filter.RuleMeta{Title: "Monitored range"}}))
	v := next("policy")
	if str(v.Block) != "198.51.100.0-198.51.100.6 198.51.100.8-198.51.100.255" || str(v.Warn) != "203.0.113.0-203.0.113.255" {
		t.Fatalf("after the policy: block %s, warn %s", str(v.Block), str(v.Warn))
	}
	if _, err := a.createBypass("198.51.100.9", "alice", bypass.HowCLI); !errors.Is(err, bypass.ErrBlock) {
		t.Errorf("bypass of a blocked address: %v, want ErrBlock", err)
	}
	e, err := a.createBypass("203.0.113.9", "alice", bypass.HowCLI)
	if err != nil || e.Indicator != "203.0.113.0/24" || e.IndicatorType != "IpAddress" {
		t.Fatalf("bypass of a warned address: %+v %v", e, err)
	}
	if v := next("bypass"); v.Warn.Len() != 0 || str(v.Inspect) != "203.0.113.0-203.0.113.255" || v.Block.Len() != 2 {
		t.Errorf("after the bypass: %+v", v)
	}
	if res, err := a.check("http://203.0.113.9/", "alice"); err != nil || res.Kind != "ip" || res.Action != "bypassed" {
		t.Errorf("check of an IP-literal URL after the bypass: %+v %v", res, err)
	}
	if n, err := a.revokeBypass("203.0.113.9"); n != 1 || err != nil {
		t.Fatalf("revoke: %d %v", n, err)
	}
	if v := next("revoke"); str(v.Warn) != "203.0.113.0-203.0.113.255" {
		t.Errorf("after the revoke: warn %s", str(v.Warn))
	}
	if err := a.setMode("audit"); err != nil {
		t.Fatal(err)
	}
	if v := next("mode"); v.Block.Len() != 0 || v.Warn.Len() != 0 || v.Inspect.Len() != 3 {
		t.Errorf("audit mode: %+v", v)
	}
}

// TestCheckIPLiterals: `netward check` answers IP-literal URLs and
// host:port from the IP rules (before, `check http://198.51.100.7/` said
// allow for a blocked /24).
func TestCheckIPLiterals(t *testing.T) {
	a := policyAgent(t)
	a.dp.SetPolicy(compileRules(t,
		filter.Rule{Value: "198.51.100.0/24", Type: filter.TypeIP, Action: filter.Block, ID: "7"},
		filter.Rule{Value: "2001:db8::/32", Type: filter.TypeIP, Action: filter.Block, ID: "8"},
		filter.Rule{Value: "example.com", Type: filter.TypeDomain, Action: filter.Warn, ID: "9"}))
	for _, tc := range []struct{ q, kind, target, action, id string }{
		{"http://198.51.100.7/", "ip", "198.51.100.7", "block", "7"},
		{"https://198.51.100.7:8443/x", "ip", "198.51.100.7", "block", "7"},
		{"198.51.100.7:443", "ip", "198.51.100.7", "block", "7"},
		{"[2001:db8::1]:443", "ip", "2001:db8::1", "block", "8"},
		{"http://[2001:db8::1]/", "ip", "2001:db8::1", "block", "8"},
		{"198.51.100.7", "ip", "198.51.100.7", "block", "7"},
		{"203.0.113.7:80", "ip", "203.0.113.7", "allow", ""},
		{"www.example.com:443", "name", "www.example.com", "warn", "9"},
	} {
		res, err := a.check(tc.q, "")
		if err != nil {
			t.Errorf("check %q: %v", tc.q, err)
			continue
		}
		id := ""
		if res.Indicator != nil {
			id = res.Indicator.ID
		}
		if res.Kind != tc.kind || res.Target != tc.target || res.Action != tc.action || id != tc.id {
			t.Errorf("check %q = %s %s %s (indicator %q), want %s %s %s (%q)", tc.q, res.Kind, res.Target, res.Action, id, tc.kind, tc.target, tc.action, tc.id)
		}
	}
}

// policyAgent is an agent on a fresh data directory that starts nothing.
func policyAgent(t *testing.T) *Agent {
	t.Helper()
	cfg, err := parseConfig(t, []byte(`{"version":1,"dataDir":"`+filepath.ToSlash(t.TempDir())+`"}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func compileRules(t *testing.T, rules ...filter.Rule) *filter.Policy {
	t.Helper()
	p, err := filter.Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
