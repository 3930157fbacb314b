package agent

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/hostnet"
	"github.com/netward/netward/filter/inspect"
	"github.com/netward/netward/telemetry"
)

// inspectState is the agent's inspect component state.
type inspectState struct {
	inspector *hostnet.Inspector
}

// inspectStats returns the inline inspector's counters, and false when
// inspection is off.
func (a *Agent) inspectStats() (hostnet.InspectorStats, bool) {
	if a.insp.inspector == nil {
		return hostnet.InspectorStats{}, false
	}
	return a.insp.inspector.Stats(), true
}

// startInspect starts inline TLS/QUIC/HTTP inspection when sni.enabled: an
// NFQUEUE reader whose verdicts come from the decision point, so DNS and the
// handshake never disagree.
func (a *Agent) startInspect(ctx context.Context, g *errgroup.Group) error {
	if !a.cfg.SNI.Enabled {
		return nil
	}
	changed := a.dp.Changed() // before the verdicts in inspectConfig are computed
	cfg := a.inspectConfig()
	if len(cfg.Engine.ProxyPorts) > 0 {
		a.log.Info("inspecting forward proxy tunnels (CONNECT target and ClientHello)", "ports", cfg.Engine.ProxyPorts)
	}
	ins, err := hostnet.NewInspector(cfg)
	if err != nil {
		return fmt.Errorf("sni: %w", err)
	}
	a.insp.inspector = ins
	g.Go(func() error {
		a.followIPVerdicts(ctx, ins.SetIP, cfg.IP, changed)
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

// followIPVerdicts keeps the kernel's IP verdicts (the inspector's ipblock,
// ipwarn and ipdecide sets) in step with the decision: every change the
// decision point publishes — a policy, the mode, a bypass created, revoked
// or expired — recomputes them, and setIP gets them when they differ from
// last. changed is the decision point's channel taken before last was
// computed, so a change in between is not missed.
func (a *Agent) followIPVerdicts(ctx context.Context, setIP func(filter.IPVerdicts), last filter.IPVerdicts, changed <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		changed = a.dp.Changed()
		if v := a.dp.IPVerdicts(); !v.Equal(last) {
			last = v
			setIP(v)
		}
	}
}

// inspectConfig is the inspector's configuration from the agent's.
func (a *Agent) inspectConfig() hostnet.InspectorConfig {
	return hostnet.InspectorConfig{
		Engine: inspect.Config{
			Decider:           a.dp,
			QUIC:              inspect.QUICMode(a.cfg.SNI.QUIC),
			ProxyPorts:        a.proxyPorts(),
			FailClosed:        a.cfg.SNI.FailClosed,
			BlockEncryptedDNS: a.cfg.DNS.Capture,
			OnDecision:        a.emitInspect,
			Panics:            a.panics,
			Now:               a.now,
		},
		// IP indicators in the kernel: Block on every protocol, Warn on
		// every protocol but TCP (which is queued from its SYN on every
		// port, like Audit); only 443/853/80 are read further for a name.
		// Kept current by followIPVerdicts.
		IP: a.dp.IPVerdicts(),
		// The agent's own sockets (DNS upstreams, feed, uploads) carry
		// AgentMark and are never queued: the agent must not wait on itself.
		SkipMark: hostnet.AgentMark,
		SkipMask: 0xffffffff,
		Log:      a.log,
	}
}

// emitInspect turns an inspector decision into a telemetry record: every
// protection event, and a ConnectionSuccess for allowed flows whose name was
// read (unnamed allowed flows are recorded by conntrack accounting). A
// refused connection (Block, or Warn without a bypass: the connection is
// reset) also tells the user, because a reset TLS or QUIC handshake cannot
// show the warn page; for a Warn the notice says how to continue.
func (a *Agent) emitInspect(e inspect.Event) {
	if inspNotifies(e) {
		name := e.Name
		if name == "" {
			name = e.Remote.Addr().String()
		}
		a.notifyUser(e.Decision, name, "")
	}
	// The flow record of this connection (conntrack) is named by what
	// inspection read, whatever the decision.
	a.tel.conns.learn(inspProto(e.Protocol), e.Local, e.Remote, e.Name)
	action := actionTypeFor(e.Decision)
	if action == "" {
		switch {
		case e.Reason == inspect.ReasonUnreadable && e.Protocol == inspect.ProtoQUIC:
			action = telemetry.ConnectionFailed // dropped so the browser falls back to TCP
		case e.Name != "":
			// The flow source writes this connection's record when it
			// ends, with its bytes and the name learnt above. Without
			// one (no conntrack) this record is the transaction.
			if a.tel.flows.Load() != nil {
				return
			}
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
		Protocol:   e.Protocol.String(),
		Source:     e.Source.String(),
	}
	if e.Source == inspect.SourceHTTP && e.Name != "" && e.Reason != inspect.ReasonConnect {
		r.RemoteUrl = "http://" + e.Name + e.Path
	}
	if rule := e.Decision.Match.Rule; rule != nil {
		r.IndicatorId = rule.IndicatorID()
		r.Application = rule.Application()
	}
	a.emit(r)
}

// inspNotifies reports whether the user hears about decision e: refusals by
// an indicator. Refusals the user did not ask for by name — encrypted DNS the
// browser tries in the background (DoT, DoH), QUIC dropped so the browser
// falls back to TCP — stay silent; they are in telemetry.
func inspNotifies(e inspect.Event) bool {
	if !e.Decision.Verdict.Blocks() || e.Decision.Match.Rule == nil {
		return false
	}
	switch e.Reason {
	case inspect.ReasonDoT, inspect.ReasonDoH, inspect.ReasonQUICBlock, inspect.ReasonUnreadable:
		return false
	}
	return true
}

// inspProto is the IP protocol number of an inspected flow.
func inspProto(p inspect.Protocol) uint8 {
	if p == inspect.ProtoQUIC {
		return 17
	}
	return 6
}
