package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/dnsproxy"
	"github.com/netward/netward/filter/hostnet"
	"github.com/netward/netward/telemetry"
)

// dnsState is the DNS component: the filtering proxy, host capture, and the
// IP→name map learned from answers (created in New, because telemetry,
// which starts first, names flows with it).
type dnsState struct {
	names    *dnsproxy.NameMap
	proxy    atomic.Pointer[dnsproxy.Proxy]
	captured atomic.Bool // the host's DNS is redirected to the proxy
}

// initDNS creates the IP→name map and hands it to telemetry. Called by New.
func (a *Agent) initDNS() {
	a.dns.names = dnsproxy.NewNameMap(0, func() time.Time { return a.now() })
	a.tel.names = a.dns.names
	a.tel.conns = newConnNames()
}

// dnsStats returns the proxy's counters, and false when it is not running.
func (a *Agent) dnsStats() (dnsproxy.Stats, bool) {
	p := a.dns.proxy.Load()
	if p == nil {
		return dnsproxy.Stats{}, false
	}
	return p.Stats(), true
}

// dnsCaptured reports whether host DNS capture is installed (for `netward
// status`: interception state).
func (a *Agent) dnsCaptured() bool { return a.dns.captured.Load() }

// startDNS starts the filtering proxy on dns.listen and waits until it is
// bound; with dns.capture it then redirects the host's DNS to it (nftables
// on Linux, NRPT on Windows). Every decision comes from the decision point,
// after the cache, so a new policy or bypass applies to the very next query.
func (a *Agent) startDNS(ctx context.Context, g *errgroup.Group) error {
	dc := a.cfg.DNS
	ba, err := dnsproxy.ParseBlockAnswer(dc.BlockAnswer)
	if err != nil {
		return err
	}
	sink, _ := netip.ParseAddr(a.cfg.Warn.SinkAddress)
	if !a.warn.served.Load() {
		// No page there (startPages said why): handing out the sink would
		// send the user to nothing, or to another program on the address.
		sink = netip.Addr{}
		if ba == dnsproxy.BlockSink {
			ba = dnsproxy.BlockNXDomain
			a.noteError("dns", errors.New(`dns.blockAnswer "sink" answers NXDOMAIN instead: the pages are not served at warn.sinkAddress (see the warn pages error)`))
		}
	}
	p, err := dnsproxy.New(dnsproxy.Config{
		Listen:          dc.Listen,
		Upstreams:       dc.Upstreams,
		UpstreamControl: upstreamControl(dc.Capture),
		Decider:         a.dp,
		BlockAnswer:     ba,
		Sink:            sink,
		SyntheticTTL:    time.Duration(dc.SyntheticTTLSeconds) * time.Second,
		StripECH:        dc.StripECH == nil || *dc.StripECH,
		Capture:         dc.Capture,
		UDPSockets:      dc.UDPSockets,
		Names:           a.dns.names,
		OnDecision:      a.emitDNS,
		OnAnswer:        a.answerHook(),
		Panics:          a.panics,
		Log:             a.log.With("component", "dns"),
		Now:             a.now,
	})
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	done := make(chan error, 1)
	g.Go(func() error {
		err := p.Run(ctx)
		done <- err
		return err
	})
	select {
	case <-p.Ready():
	case err := <-done:
		return err
	}
	a.dns.proxy.Store(p)
	if !dc.Capture {
		return nil
	}
	t4, t6 := captureTargets(p.Addrs())
	capt, err := hostnet.NewDNSCapture(hostnet.DNSCaptureConfig{Target4: t4, Target6: t6, Log: a.log.With("component", "dns")})
	if err != nil {
		return fmt.Errorf("dns capture: %w (dns.listen must hold a dedicated loopback address, e.g. 127.0.0.153:53)", err)
	}
	if err := capt.Install(); err != nil {
		return err
	}
	a.dns.captured.Store(true)
	g.Go(func() error {
		<-ctx.Done()
		a.dns.captured.Store(false)
		return capt.Remove()
	})
	return nil
}

// answerHook is the proxy's OnAnswer: nil when allowed answers are not
// recorded (telemetry.dnsAnswers false), so the proxy skips the call.
func (a *Agent) answerHook() func(dnsproxy.Answer) {
	if !a.ans.on {
		return nil
	}
	return a.onAnswer
}

// captureTargets picks the proxy's IPv4 and IPv6 loopback UDP listeners.
func captureTargets(addrs []net.Addr) (t4, t6 netip.AddrPort) {
	for _, a := range addrs {
		ua, ok := a.(*net.UDPAddr)
		if !ok {
			continue
		}
		ap := ua.AddrPort()
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		switch {
		case ap.Addr().Is4() && ap.Addr().IsLoopback() && !t4.IsValid():
			t4 = ap
		case ap.Addr().Is6() && ap.Addr().IsLoopback() && !t6.IsValid():
			t6 = ap
		}
	}
	return t4, t6
}

// upstreamControl marks the proxy's upstream sockets with AgentMark so the
// capture redirect (and inspection) exempt them. With capture on, a failure
// to mark is an error (the query would loop back into the proxy); without
// it, marking is best effort (needs CAP_NET_ADMIN, pointless otherwise).
func upstreamControl(capture bool) func(network, address string, c syscall.RawConn) error {
	if runtime.GOOS != "linux" {
		return nil
	}
	mark := hostnet.MarkControl(hostnet.AgentMark)
	if capture {
		return mark
	}
	if os.Geteuid() != 0 {
		return nil
	}
	return func(network, address string, c syscall.RawConn) error {
		_ = mark(network, address, c)
		return nil
	}
}

// emitDNS records a protection event for a DNS decision and tells the
// user about a blocked or warned name (rate-limited by the notifier).
func (a *Agent) emitDNS(e dnsproxy.Event) {
	action := actionTypeFor(e.Decision)
	if action == "" || e.Decision.Verdict == filter.VerdictBypassed {
		// A bypassed name resolves normally; the bypass event itself was
		// recorded once, when the user continued (CreateBypass).
		return
	}
	r := telemetry.Record{
		Timestamp:  e.At.UTC(), // zero stays zero: emit stamps it then
		ActionType: action,
		RemoteUrl:  e.Name,
		Protocol:   telemetry.ProtoDNS,
		Source:     telemetry.SourceDNS,
	}
	if e.Client.IsValid() {
		// A loopback client's address says nothing about the machine:
		// left empty (CONTRACT §6), as on the answers' records.
		if !e.Client.Addr().IsLoopback() {
			r.LocalIP = e.Client.Addr().String()
		}
		r.LocalPort = int(e.Client.Port())
	}
	if rule := e.Decision.Match.Rule; rule != nil {
		r.IndicatorId = rule.IndicatorID()
		r.Application = rule.Application()
	}
	a.emit(r)
	a.notifyUserAt(e.Decision, e.Name, "", e.At)
}
