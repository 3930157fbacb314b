package agent

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/netward/netward/agent/notify"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/hostnet"
	"github.com/netward/netward/telemetry"
)

type inspNoticeRecorder chan notify.Notice

func (r inspNoticeRecorder) Notify(_ context.Context, n notify.Notice, _ func()) error {
	r <- n
	return nil
}

// TestEmitInspect checks what one inspector decision becomes: the telemetry
// record (ActionType, Source, RemoteUrl) and whether the user is told.
func TestEmitInspect(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"version":1,"dataDir":"`+t.TempDir()+`"}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := make(chan telemetry.Record, 16)
	a.addSink(func(r telemetry.Record) { recs <- r })
	notices := make(inspNoticeRecorder, 16)
	n := notify.New(notify.Config{Backend: notices})
	a.warn.notifier.Store(n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	warnRule := &filter.Rule{Value: "warned.test", Type: filter.TypeDomain, Action: filter.Warn, ID: "2", Application: "Demo"}
	blockRule := &filter.Rule{Value: "198.51.100.7", Type: filter.TypeIP, Action: filter.Block, ID: "3"}
	urlRule := &filter.Rule{Value: "http://www.example.com/forbidden/", Type: filter.TypeURL, Action: filter.Block, ID: "4"}
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	remote := netip.MustParseAddrPort("203.0.113.5:443")
	tests := []struct {
		name       string
		ev         hostnet.InspectEvent
		wantAction string // "" = no record
		wantURL    string
		wantNotice string // "" = no notice
	}{
		{"warn by sni", hostnet.InspectEvent{Source: "sni", Protocol: "Tcp", Name: "www.warned.test",
			Decision: filter.Decision{Match: filter.Match{Rule: warnRule}, Verdict: filter.VerdictWarn}},
			telemetry.NetworkProtectionWarned, "www.warned.test", "www.warned.test"},
		{"block by quic", hostnet.InspectEvent{Source: "quic", Protocol: "Quic", Name: "q.warned.test",
			Decision: filter.Decision{Match: filter.Match{Rule: warnRule}, Verdict: filter.VerdictBlock}},
			telemetry.NetworkProtectionBlocked, "q.warned.test", "q.warned.test"},
		{"http url path", hostnet.InspectEvent{Source: "http", Protocol: "Tcp", Name: "www.example.com", Path: "/forbidden/x",
			Decision: filter.Decision{Match: filter.Match{Rule: urlRule}, Verdict: filter.VerdictBlock}},
			telemetry.NetworkProtectionBlocked, "http://www.example.com/forbidden/x", "www.example.com"},
		{"ip rule", hostnet.InspectEvent{Source: "ip", Protocol: "Tcp",
			Decision: filter.Decision{Match: filter.Match{Rule: blockRule}, Verdict: filter.VerdictBlock}},
			telemetry.NetworkProtectionBlocked, "", "203.0.113.5"},
		{"doh is silent", hostnet.InspectEvent{Source: "sni", Protocol: "Tcp", Name: "dns.google", Reason: "doh",
			Decision: filter.Decision{Verdict: filter.VerdictBlock}},
			telemetry.NetworkProtectionBlocked, "dns.google", ""},
		{"quic unreadable dropped", hostnet.InspectEvent{Source: "quic", Protocol: "Quic", Reason: "unreadable",
			Decision: filter.Decision{Verdict: filter.VerdictBlock}},
			telemetry.NetworkProtectionBlocked, "", ""},
		{"allowed named", hostnet.InspectEvent{Source: "sni", Protocol: "Tcp", Name: "ok.test"},
			telemetry.ConnectionSuccess, "ok.test", ""},
		{"allowed unnamed", hostnet.InspectEvent{Source: "ip", Protocol: "Tcp"}, "", "", ""},
		// A loud case last: a notice from a silent case above would arrive first.
		{"warn again", hostnet.InspectEvent{Source: "sni", Protocol: "Tcp", Name: "last.warned.test",
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
				if r.ActionType != tc.wantAction || r.Source != tc.ev.Source || r.RemoteUrl != tc.wantURL ||
					r.Protocol != tc.ev.Protocol || r.RemoteIP != "203.0.113.5" || r.RemotePort != 443 || r.LocalPort != 40000 {
					t.Errorf("record = %+v, want %s source %s url %q", r, tc.wantAction, tc.ev.Source, tc.wantURL)
				}
				if rule := tc.ev.Decision.Match.Rule; rule != nil && (r.IndicatorId != rule.ID || r.Application != rule.Application) {
					t.Errorf("indicator %q app %q, want %q %q", r.IndicatorId, r.Application, rule.ID, rule.Application)
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
		json, quic string
		capture    bool
	}{
		{`{"version":1,"sni":{"enabled":true}}`, hostnet.QUICInspect, false},
		{`{"version":1,"sni":{"enabled":true,"quic":"block"},"dns":{"capture":true}}`, hostnet.QUICBlock, true},
		{`{"version":1,"sni":{"enabled":true,"quic":"allow","failClosed":true}}`, hostnet.QUICAllow, false},
	} {
		cfg, err := ParseConfig([]byte(tc.json), "test")
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
		if c.QUIC != tc.quic || c.BlockEncryptedDNS != tc.capture || c.FailClosed != cfg.SNI.FailClosed || c.Decider == nil || c.OnDecision == nil {
			t.Errorf("%s: config %+v, want quic %s, encrypted DNS blocked %v", tc.json, c, tc.quic, tc.capture)
		}
		if _, err := hostnet.NewInspector(c); err != nil && runtime.GOOS == "linux" {
			t.Errorf("%s: NewInspector: %v", tc.json, err)
		}
	}
}

// TestInspIPRules: the inspector is given the prefixes of every IpAddress
// indicator that may refuse or must record a connection, and nothing else.
func TestInspIPRules(t *testing.T) {
	p, err := filter.Compile([]filter.Rule{
		{Value: "203.0.113.7", Type: filter.TypeIP, Action: filter.Block, ID: "1"},
		{Value: "198.51.100.0/24", Type: filter.TypeIP, Action: filter.Audit, ID: "2"},
		{Value: "2001:db8::/32", Type: filter.TypeIP, Action: filter.Warn, ID: "3"},
		{Value: "192.0.2.1", Type: filter.TypeIP, Action: filter.Allowed, ID: "4"},
		{Value: "bad.example", Type: filter.TypeDomain, Action: filter.Block, ID: "5"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(inspIPRules(p))
	if want := "[203.0.113.7/32 198.51.100.0/24 2001:db8::/32]"; got != want {
		t.Errorf("inspIPRules = %s, want %s", got, want)
	}
	if inspIPRules(nil) != nil {
		t.Error("no policy: want no prefixes")
	}
}
