package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/hostnet"
	"github.com/netward/netward/telemetry"
)

// inspectState is the agent's inspect component state.
type inspectState struct {
	inspector *hostnet.Inspector
}

// InspectStats returns the inline inspector's counters, and false when
// inspection is off.
func (a *Agent) InspectStats() (hostnet.InspectStats, bool) {
	if a.insp.inspector == nil {
		return hostnet.InspectStats{}, false
	}
	return a.insp.inspector.Stats(), true
}

// startInspect starts inline TLS/QUIC/HTTP inspection when sni.enabled: an
// NFQUEUE reader whose verdicts come from the shared decision
// (DecideName/DecideAddr/DecideURL), so DNS and the handshake never disagree.
func (a *Agent) startInspect(ctx context.Context, g *errgroup.Group) error {
	if !a.cfg.SNI.Enabled {
		return nil
	}
	ins, err := hostnet.NewInspector(a.inspectConfig())
	if err != nil {
		return fmt.Errorf("sni: %w", err)
	}
	a.insp.inspector = ins
	g.Go(func() error {
		a.followInspectIPRules(ctx, ins, time.Second)
		return nil
	})
	g.Go(func() error {
		if err := ins.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("sni: %w", err)
		}
		return nil
	})
	return nil
}

// inspIPRules returns the prefixes of policy p's IpAddress indicators that
// need the SYN of connections on every port: any that is not Allowed (Audit
// too, so the audited connection is recorded). Allowed IP rules change
// nothing for a connection nobody blocks. The inspector keeps them in the
// kernel, so only connections to those addresses are queued from the SYN.
func inspIPRules(p *filter.Policy) []netip.Prefix {
	if p == nil {
		return nil
	}
	var out []netip.Prefix
	for _, r := range p.Rules() {
		if r.Type != filter.TypeIP || r.Action == filter.Allowed {
			continue
		}
		if pfx, err := netip.ParsePrefix(r.Value); err == nil { // compiled values are canonical prefixes
			out = append(out, pfx)
		}
	}
	return out
}

// followInspectIPRules keeps the inspector's IP rules in step with the
// policy, checking every interval for a new policy (a pointer compare; the
// rules are scanned only when the policy changed). A new IP indicator
// therefore applies from the SYN on every port within one interval; on
// 443/853/80 it applies at once, from the first data segment, since those
// are always queued.
func (a *Agent) followInspectIPRules(ctx context.Context, ins *hostnet.Inspector, every time.Duration) {
	last := a.Policy()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if p := a.Policy(); p != last {
				last = p
				ins.SetIPRules(inspIPRules(p))
			}
		}
	}
}

// inspectConfig is the inspector's configuration from the agent's.
func (a *Agent) inspectConfig() hostnet.InspectConfig {
	return hostnet.InspectConfig{
		Decider: a,
		// IP rules apply on every TCP port: a flow to an address they may
		// refuse is queued from its SYN; only 443/853/80 are read further
		// for a name. Kept current by followInspectIPRules.
		IPRules: inspIPRules(a.Policy()),
		// The agent's own sockets (DNS upstreams, feed, uploads) carry
		// AgentMark and are never queued: the agent must not wait on itself.
		SkipMark:          hostnet.AgentMark,
		SkipMask:          0xffffffff,
		QUIC:              a.cfg.SNI.QUIC,
		FailClosed:        a.cfg.SNI.FailClosed,
		BlockEncryptedDNS: a.cfg.DNS.Capture,
		OnDecision:        a.emitInspect,
		Panics:            a.panics,
		Log:               a.log,
		Now:               a.now,
	}
}

// emitInspect turns an inspector decision into a telemetry record: every
// protection event, and a ConnectionSuccess for allowed flows whose name was
// read (unnamed allowed flows are recorded by conntrack accounting). A
// refused connection (Block, or Warn without a bypass: the connection is
// reset) also tells the user, because a reset TLS or QUIC handshake cannot
// show the warn page; for a Warn the notice says how to continue.
func (a *Agent) emitInspect(e hostnet.InspectEvent) {
	if inspNotifies(e) {
		name := e.Name
		if name == "" {
			name = e.Remote.Addr().String()
		}
		a.NotifyUser(e.Decision, name, "")
	}
	action := ActionTypeFor(e.Decision)
	if action == "" {
		switch {
		case e.Reason == "unreadable" && e.Protocol == telemetry.ProtoQUIC:
			action = telemetry.ConnectionFailed // dropped so the browser falls back to TCP
		case e.Name != "":
			action = telemetry.ConnectionSuccess
		default:
			return
		}
	}
	r := telemetry.Record{
		Timestamp:  e.Time.UTC(),
		ActionType: action,
		RemoteIP:   e.Remote.Addr().String(),
		RemotePort: int(e.Remote.Port()),
		RemoteUrl:  e.Name,
		LocalIP:    e.Local.Addr().String(),
		LocalPort:  int(e.Local.Port()),
		Protocol:   e.Protocol,
		Source:     e.Source,
	}
	if e.Source == telemetry.SourceHTTP && e.Name != "" {
		r.RemoteUrl = "http://" + e.Name + e.Path
	}
	if rule := e.Decision.Match.Rule; rule != nil {
		r.IndicatorId = rule.ID
		r.Application = rule.Application
	}
	a.Emit(r)
}

// inspNotifies reports whether the user hears about decision e: refusals by
// an indicator. Refusals the user did not ask for by name — encrypted DNS the
// browser tries in the background (dot, doh), QUIC dropped so the browser
// falls back to TCP — stay silent; they are in telemetry.
func inspNotifies(e hostnet.InspectEvent) bool {
	if !e.Decision.Verdict.Blocks() || e.Decision.Match.Rule == nil {
		return false
	}
	switch e.Reason {
	case "dot", "doh", "quic-block", "unreadable":
		return false
	}
	return true
}

var _ hostnet.InspectDecider = (*Agent)(nil)
