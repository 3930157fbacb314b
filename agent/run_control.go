package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/agent/bypass"
	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/agent/control"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/dnsproxy"
	"github.com/netward/netward/filter/hostnet"
	"github.com/netward/netward/internal/version"
)

// controlState is the control component: the local control API, the
// `netward events` ring, the metrics, and the status bookkeeping that
// status.go exposes.
type controlState struct {
	started atomic.Int64 // unix ns when the control API came up (read by status at any time)
	ring    *control.Ring
	// metricsAddr is the bound metrics address ("" when metrics are off).
	metricsAddr string
	metrics     *metrics

	errMu sync.Mutex
	errs  []control.ErrorEntry

	// Wired by the indicator sync before Run (see SetReload).
	reload func(context.Context) error

	sinksOnce sync.Once
}

// initControlSinks registers the events ring and the decision counter as
// record sinks. New calls it: sinks must be in place before any component
// starts emitting (addSink takes no lock).
func (a *Agent) initControlSinks() {
	a.ctl.sinksOnce.Do(func() {
		a.ctl.ring = control.NewRing(control.DefaultRingSize)
		a.addPackedSink(a.ctl.ring.AddPacked)
		if a.cfg.Metrics.Listen != "" {
			a.ctl.metrics = newMetrics(a)
			a.addSink(a.ctl.metrics.sink)
		}
	})
}

// metricsAddr is the address /metrics is served on ("" when metrics are
// off); with metrics.listen port 0 it tells the port chosen.
func (a *Agent) metricsAddr() string { return a.ctl.metricsAddr }

// startControl serves the control API on control.socket and, when
// metrics.listen is set, the Prometheus metrics. A control socket that cannot
// be opened is an error for a configured agent; an agent on the embedded
// default (a user trying netward out without root) falls back to
// $XDG_RUNTIME_DIR, and runs without the API if that fails too.
func (a *Agent) startControl(ctx context.Context, g *errgroup.Group) error {
	a.ctl.started.Store(a.now().UnixNano())
	if a.ctl.metrics != nil {
		if err := a.serveMetrics(ctx, g, a.ctl.metrics, a.cfg.Metrics.Listen); err != nil {
			return err
		}
	}
	path := a.cfg.Control.Socket
	ln, err := control.Listen(path)
	if err != nil && a.cfg.Path == "" {
		if alt := control.UserSocket(os.Getenv); alt != "" && alt != path {
			a.log.Info("control API: system socket not available, using a per-user socket", "socket", path, "err", err, "fallback", alt)
			path = alt
			if err = control.PrepareUserDir(filepath.Dir(path)); err == nil {
				ln, err = control.Listen(path)
			}
		}
		if err != nil {
			a.log.Warn("control API disabled: the CLI (status, check, bypass) cannot reach this agent", "err", err)
			a.noteError("control", err)
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("%w (set control.socket in %s to a path the agent can create)", err, a.cfg.Path)
	}
	srv, err := control.New(control.Config{Backend: controlBackend{a}, Events: a.ctl.ring, Log: a.log, Now: a.now, Panics: a.panics})
	if err != nil {
		ln.Close()
		return err
	}
	a.log.Info("control API listening", "socket", path)
	g.Go(func() error { return srv.Serve(ctx, ln) })
	return nil
}

// controlBackend adapts the agent to control.Backend.
type controlBackend struct{ a *Agent }

func (b controlBackend) CreateBypass(name, user string) (control.Bypass, error) {
	e, err := b.a.createBypass(name, user, bypass.HowCLI)
	return bypassWire(e), err
}
func (b controlBackend) ListBypasses() []control.BypassInfo    { return b.a.bypassList() }
func (b controlBackend) RevokeBypass(name string) (int, error) { return b.a.revokeBypass(name) }
func (b controlBackend) SetMode(mode string) error             { return b.a.setMode(mode) }
func (b controlBackend) Reload(ctx context.Context) error      { return b.a.reload(ctx) }
func (b controlBackend) RequeueTelemetry() (int, error)        { return b.a.requeueTelemetry() }
func (b controlBackend) Status() control.Status                { return b.a.controlStatus() }
func (b controlBackend) Check(q, user string) (control.CheckResult, error) {
	return b.a.check(q, user)
}

// bypassList is `netward bypass --list`: the active bypasses with the title
// of the indicator each continues past, looked up in the policy in force.
func (a *Agent) bypassList() []control.BypassInfo {
	entries := a.listBypasses()
	out := make([]control.BypassInfo, 0, len(entries))
	p := a.dp.State().Policy
	for _, e := range entries {
		out = append(out, control.BypassInfo{Bypass: bypassWire(e), Title: bypassTitle(p, e)})
	}
	return out
}

// bypassWire is a stored bypass as the control API shows it.
func bypassWire(e bypass.Entry) control.Bypass {
	return control.Bypass{User: e.User, Application: e.Application, Indicator: e.Indicator, IndicatorType: e.IndicatorType,
		IndicatorID: e.IndicatorID, Name: e.Name, Created: e.Created, Expires: e.Expires, Who: e.Who, How: e.How}
}

// bypassTitle finds the indicator a bypass continues past: the rule the
// name the user continued to matches now, when it is still the bypassed
// indicator (same application, or same value), else the bypassed indicator
// value itself.
func bypassTitle(p *filter.Policy, e bypass.Entry) string {
	same := func(m filter.Match) bool {
		r := m.Rule
		return r != nil && (e.Application != "" && r.Application() == e.Application ||
			e.Application == "" && r.Value == e.Indicator)
	}
	if n, err := filter.CanonicalName(e.Name); err == nil {
		if m := p.MatchName(n); same(m) {
			return m.Rule.Title()
		}
	}
	if e.Indicator != "" && e.IndicatorType == filter.TypeDomain.String() {
		if m := p.MatchName(e.Indicator); same(m) {
			return m.Rule.Title()
		}
	}
	if addr, err := netip.ParseAddr(e.Name); err == nil {
		if m := p.MatchAddr(addr.Unmap()); same(m) {
			return m.Rule.Title()
		}
	}
	return ""
}

// controlStatus is `netward status`.
func (a *Agent) controlStatus() control.Status {
	now := a.now()
	v := version.Get()
	ds := a.dp.State()
	s := &ds.Settings
	st := control.Status{
		Version: v.Version, Commit: v.Commit,
		Mode: s.Mode.String(), SourceMode: ds.SourceMode.String(), ConvertWarnToBlock: s.ConvertWarnToBlock,
		Config: configName(a.cfg),
		Errors: a.notedErrors(),
	}
	if ds.ModeOverridden {
		st.ModeOverride = s.Mode.String()
	}
	st.Warnings = config.TransportWarnings(a.cfg)
	if ns := a.ctl.started.Load(); ns != 0 {
		st.StartedAt = time.Unix(0, ns).UTC()
		st.UptimeSeconds = int64(now.Sub(st.StartedAt).Seconds())
	}
	counts, httpOnly := policyCounts(ds.Policy)
	pi := a.policyInfo()
	st.Indicators = control.IndicatorStatus{
		Source: a.cfg.Indicators.Source, Version: pi.Version,
		GeneratedAt: pi.GeneratedAt.UTC(), LoadedAt: pi.LoadedAt.UTC(),
		Total: ds.Policy.Len(), ByAction: counts, HTTPOnly: httpOnly, Swaps: a.dp.Swaps(),
	}
	if pi.GeneratedAt.IsZero() {
		st.Indicators.GeneratedAt = time.Time{}
	}
	if pi.LoadedAt.IsZero() {
		st.Indicators.LoadedAt = time.Time{}
	}
	if t := setTime(pi); !t.IsZero() {
		st.Indicators.AgeSeconds = int64(now.Sub(t).Seconds())
	}
	if is := a.indicatorStatus(); a.ind.sync.Load() != nil {
		st.Indicators.FromStore, st.Indicators.NextExpiry = is.FromStore, is.NextExpiry.UTC()
		st.Indicators.Rejected, st.Indicators.Failures = is.Counts.Errors, is.Failures
		if is.LastError != "" {
			st.Indicators.LastError, st.Indicators.LastErrorAt = is.LastError, is.LastErrorAt.UTC()
		}
		st.Indicators.Sequence, st.Indicators.Stale, st.Indicators.FreshnessError = is.Sequence, is.Stale, is.FreshnessError
		if !is.FreshAt.IsZero() {
			st.Indicators.FreshAt = is.FreshAt.UTC()
		}
		if a.feedSource() {
			st.Indicators.MaxAgeHours = a.cfg.Indicators.MaxAgeHours
		}
		if is.NextExpiry.IsZero() {
			st.Indicators.NextExpiry = time.Time{}
		}
	}
	dnsStats, dnsOn := a.dnsStats()
	st.Interception = control.InterceptionState{
		DNS: dnsOn, DNSListen: a.cfg.DNS.Listen, DNSCapture: a.dnsCaptured(),
		SNI: a.cfg.SNI.Enabled, QUIC: a.cfg.SNI.QUIC,
	}
	if dnsOn {
		st.Interception.DNSStats = dnsWire(dnsStats)
	}
	if is, ok := a.inspectStats(); ok {
		st.Interception.Inspect = inspectWire(is)
	}
	byTarget := a.bypassStats()
	st.Bypasses.ByTarget = byTarget
	for _, n := range byTarget {
		st.Bypasses.Active += n
	}
	ts := a.telemetryStatus()
	st.Telemetry = &ts
	return st
}

// dnsWire is the DNS proxy's counters as the control API shows them.
func dnsWire(s dnsproxy.Stats) *control.DNSStats {
	latencySum := int64(s.LatencySum)
	return &control.DNSStats{
		Queries: s.Queries, ByVerdict: s.ByVerdict, Special: &s.Special,
		CacheHits: s.CacheHits, CacheMisses: s.CacheMisses, CacheEntries: &s.CacheEntries,
		UpstreamQueries: &s.UpstreamQueries, UpstreamErrors: s.UpstreamErrors, ServFail: s.ServFail,
		BadReplies: &s.BadReplies, TCPRetries: &s.TCPRetries, InFlight: s.InFlight,
		Refused: &s.Refused, Rejected: &s.Rejected, Panics: &s.Panics,
		LatencyCounts: s.LatencyCounts[:], LatencySumNs: &latencySum, Upstreams: s.Upstreams,
	}
}

// inspectWire is the inline inspector's counters as the control API shows
// them.
func inspectWire(s hostnet.InspectorStats) *control.InspectStats {
	return &control.InspectStats{
		Packets: s.Packets, Allowed: s.Allowed, Blocked: s.Blocked, Named: s.Named, IPOnly: s.IPOnly,
		Unreadable: s.Unreadable, QUICDropped: s.QUICDropped, DeadlineMissed: s.DeadlineMissed,
		FlowsFull: s.FlowsFull, DecodeErrors: s.DecodeErrors, Verdicts: s.Verdicts, VerdictErrors: s.VerdictErrors,
		Panics: s.Panics, KernelRefused: s.KernelRefused,
	}
}

// check explains the decision for a name, URL or IP address as the user
// would meet it (bypasses by user or by the whole device count).
func (a *Agent) check(query, user string) (control.CheckResult, error) {
	// An IP literal — alone, as host:port or as a URL's host — is decided
	// by the IP rules, as the inspector decides a connection to it.
	tg, err := filter.ParseTarget(strings.TrimSpace(query))
	if err == nil {
		err = tg.HostSyntax()
	}
	if err != nil {
		return control.CheckResult{Query: query, Mode: a.dp.State().Settings.Mode.String()},
			control.BadQuery(fmt.Errorf("%q is not a host name, URL or IP address: %v", query, err))
	}
	e := a.dp.Explain(tg, user)
	d := e.Decision
	res := control.CheckResult{Query: query, Kind: tg.Kind.String(), Target: tg.String(), Mode: e.Mode.String(),
		Action: d.Verdict.String(), Would: d.Would.String()}
	if r := d.Match.Rule; r != nil {
		res.Indicator = &control.Indicator{Value: r.Value, Type: r.Type.String(), Action: r.Action.String(),
			ID: r.IndicatorID(), Title: r.Title(), Application: r.Application(), ApplicationID: r.ApplicationID()}
	}
	res.Bypass.Possible = e.Bypassable
	if d.Would == filter.VerdictBypassed {
		res.Bypass.Active, res.Bypass.Expires = true, d.BypassExpires.UTC()
	}
	res.Interceptors, res.Note = a.interceptorsFor(res.Kind, e.HTTPOnly)
	return res, nil
}

// interceptorsFor says which running components enforce a decision of this
// kind. The DNS proxy sees names; the inline inspector (sni.enabled) sees
// TLS/QUIC server names, plain-HTTP hosts and paths, and IP addresses.
func (a *Agent) interceptorsFor(kind string, urlPath bool) ([]string, string) {
	out := []string{}
	_, dnsOn := a.dnsStats()
	sni := a.cfg.SNI.Enabled
	switch {
	case kind == "ip":
		if sni {
			out = append(out, "ip")
			return out, ""
		}
		return out, "IP indicators are enforced by the inline inspector; set sni.enabled to apply them"
	case urlPath:
		if sni {
			out = append(out, "http")
		}
		return out, "a Url indicator with a path is enforced on plain HTTP only; over TLS only the host is seen (CONTRACT §1)"
	}
	if dnsOn {
		out = append(out, "dns")
	}
	if sni {
		out = append(out, "sni", "http")
		if a.cfg.SNI.QUIC == "inspect" {
			out = append(out, "quic")
		}
	}
	if len(out) == 0 {
		return out, "no interceptor is running for names: the DNS proxy is off and sni.enabled is false"
	}
	return out, ""
}

var _ control.Backend = controlBackend{}
