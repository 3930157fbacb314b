package agent

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

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
	ins, err := hostnet.NewInspector(hostnet.InspectConfig{
		Decider: a,
		// IP rules apply on every TCP port: the SYN of every flow is queued
		// once; only 443/853/80 are read further for a name.
		AllTCPPorts:       true,
		QUIC:              a.cfg.SNI.QUIC,
		FailClosed:        a.cfg.SNI.FailClosed,
		BlockEncryptedDNS: a.cfg.DNS.Capture,
		OnDecision:        a.emitInspect,
		Log:               a.log,
		Now:               a.now,
	})
	if err != nil {
		return fmt.Errorf("sni: %w", err)
	}
	a.insp.inspector = ins
	g.Go(func() error {
		if err := ins.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("sni: %w", err)
		}
		return nil
	})
	return nil
}

// emitInspect turns an inspector decision into a telemetry record: every
// protection event, and a ConnectionSuccess for allowed flows whose name was
// read (unnamed allowed flows are recorded by conntrack accounting).
func (a *Agent) emitInspect(e hostnet.InspectEvent) {
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

var _ hostnet.InspectDecider = (*Agent)(nil)
