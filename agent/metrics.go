package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/dnsproxy"
	"github.com/netward/netward/internal/version"
	"github.com/netward/netward/telemetry"
)

// metrics is the agent's Prometheus registry (never the global default: two
// agents in one test binary must not share counters).
type metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netward_decisions_total",
		Help: "Protection decisions and allowed transactions, by action and by the interceptor that took them.",
	}, []string{"action", "interceptor"})
	m.reg.MustRegister(m.decisions,
		&agentCollector{a: a},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// decisionAction maps a record's ActionType to the metric's action label;
// "" for records that are not decisions (flow accounting, gaps).
func decisionAction(r telemetry.Record) string {
	switch r.ActionType {
	case telemetry.NetworkProtectionBlocked:
		return "block"
	case telemetry.NetworkProtectionWarned:
		return "warn"
	case telemetry.NetworkProtectionAudited:
		return "audit"
	case telemetry.NetworkProtectionUserBypassEvent:
		return "bypass"
	case telemetry.ConnectionSuccess, telemetry.DnsQueryResponse:
		if r.Source == telemetry.SourceConntrack {
			return ""
		}
		return "allow"
	case telemetry.ConnectionFailed:
		if r.Source == telemetry.SourceConntrack {
			return ""
		}
		return "failed"
	}
	return ""
}

// sink counts decisions; it is a recordSink (cheap: one map lookup under the
// CounterVec's read lock).
func (m *metrics) sink(r telemetry.Record) {
	act := decisionAction(r)
	if act == "" {
		return
	}
	src := r.Source
	if src == "" {
		src = "none"
	}
	// A deduplicated DNS answer stands for RepeatCount answers.
	m.decisions.WithLabelValues(act, src).Add(float64(max(r.RepeatCount, 1)))
}

var (
	descInfo  = prometheus.NewDesc("netward_info", "Agent version and enforcement mode (value 1).", []string{"version", "mode"}, nil)
	descInd   = prometheus.NewDesc("netward_indicators", "Indicators in force by action.", []string{"action"}, nil)
	descHTTP  = prometheus.NewDesc("netward_indicators_http_only", "Url indicators with a path, enforceable on plain HTTP only.", nil, nil)
	descSet   = prometheus.NewDesc("netward_indicator_set_info", "The indicator set version in force (value 1).", []string{"version"}, nil)
	descAge   = prometheus.NewDesc("netward_indicator_set_age_seconds", "Seconds since the indicator set was generated (or loaded, when it carries no time).", nil, nil)
	descStale = prometheus.NewDesc("netward_indicator_set_stale", "1 when the feed has not proved the indicator set current for longer than indicators.maxAgeHours (the set stays in force), else 0. https feeds only.", nil, nil)
	descSeq   = prometheus.NewDesc("netward_indicator_set_sequence", "The feed sequence held (CONTRACT §5 rollback floor).", nil, nil)
	descFresh = prometheus.NewDesc("netward_indicator_set_freshness_age_seconds", "Seconds since the feed last proved the indicator set current (Netward-Freshness).", nil, nil)
	descSwap  = prometheus.NewDesc("netward_policy_swaps_total", "Indicator sets installed since start.", nil, nil)
	descByp   = prometheus.NewDesc("netward_bypasses_active", "Active Warn bypasses.", nil, nil)
	descUp    = prometheus.NewDesc("netward_uptime_seconds", "Seconds since the agent started its control component.", nil, nil)

	descTelSpoolChunks = prometheus.NewDesc("netward_telemetry_spool_chunks", "Telemetry chunks waiting for upload.", nil, nil)
	descTelSpoolBytes  = prometheus.NewDesc("netward_telemetry_spool_bytes", "Bytes of telemetry chunks waiting for upload.", nil, nil)
	descTelUploaded    = prometheus.NewDesc("netward_telemetry_uploaded_chunks_total", "Telemetry chunks uploaded.", nil, nil)
	descTelLastUpload  = prometheus.NewDesc("netward_telemetry_last_upload_timestamp_seconds", "Unix time of the last successful upload (0: none yet).", nil, nil)
	descTelDropped     = prometheus.NewDesc("netward_telemetry_dropped_records_total", "Telemetry records lost, by reason.", []string{"reason"}, nil)
	descFlowRecords    = prometheus.NewDesc("netward_flow_records_total", "Flow records written by the flow source, by whether they name their remote (SNI/Host or a DNS answer on this host).", []string{"named"}, nil)
	descFlowUnnamed    = prometheus.NewDesc("netward_flow_records_unnamed_ratio", "Share of flow records without a remote name since start (0 before the first record).", nil, nil)
	descDNSAnswers     = prometheus.NewDesc("netward_dns_answers_total", "Allowed DNS answers for discovery telemetry: received by the recorder, recorded (records after deduplication), dropped (queue full), own (the agent's own queries, left out).", []string{"result"}, nil)
	descTelQuarantine  = prometheus.NewDesc("netward_telemetry_quarantined_chunks", "Chunks the console refused, kept aside.", nil, nil)

	descPanics = prometheus.NewDesc("netward_panics_recovered_total", "Requests (DNS queries, packets, API and page requests) whose handling panicked: each got an error answer and the agent went on. Any value above 0 is a bug to report; the log has the stack.", []string{"component"}, nil)

	descInsp   = prometheus.NewDesc("netward_inspect_packets_total", "Packets the inline inspector handled, by outcome.", []string{"outcome"}, nil)
	descKernel = prometheus.NewDesc("netward_ip_refused_connections_total", "Connections refused in the kernel by an IpAddress Block or Warn (every protocol but a Warn's TCP) that were recorded (at most 50 a second per rule).", nil, nil)

	descDNSQueries   = prometheus.NewDesc("netward_dns_queries_total", "DNS queries received by the proxy.", nil, nil)
	descDNSByAction  = prometheus.NewDesc("netward_dns_queries_by_action_total", "DNS queries by how they were answered: the decision (allow, audit, block, warn, bypassed), special (DoH canary, Private Relay), rejected (malformed, wrong class, zone transfer) or refused (in-flight bound reached).", []string{"action"}, nil)
	descDNSUpQueries = prometheus.NewDesc("netward_dns_upstream_queries_total", "Queries sent to upstream resolvers.", nil, nil)
	descDNSUpErr     = prometheus.NewDesc("netward_dns_upstream_errors_total", "Failed upstream attempts (timeouts, refused, bad replies).", nil, nil)
	descDNSServFail  = prometheus.NewDesc("netward_dns_servfail_total", "Queries answered SERVFAIL because every upstream failed.", nil, nil)
	descDNSBadReply  = prometheus.NewDesc("netward_dns_upstream_bad_replies_total", "Upstream datagrams ignored because they did not match the question and ID.", nil, nil)
	descDNSTCPRetry  = prometheus.NewDesc("netward_dns_upstream_tcp_retries_total", "Truncated upstream answers retried over TCP.", nil, nil)
	descDNSLate      = prometheus.NewDesc("netward_dns_upstream_late_replies_total", "Upstream answers that came after their attempt had ended (timed out, or failed by an ICMP error).", nil, nil)
	descDNSInFlight  = prometheus.NewDesc("netward_dns_in_flight_queries", "DNS queries being answered now.", nil, nil)
	descDNSCache     = prometheus.NewDesc("netward_dns_cache_lookups_total", "DNS cache lookups by result.", []string{"result"}, nil)
	descDNSRatio     = prometheus.NewDesc("netward_dns_cache_hit_ratio", "DNS cache hits / lookups since start (0 before the first lookup).", nil, nil)
	descDNSEntries   = prometheus.NewDesc("netward_dns_cache_entries", "Answers held in the DNS cache.", nil, nil)
	descDNSLatency   = prometheus.NewDesc("netward_dns_latency_seconds", "Time from receiving a DNS query to answering it.", nil, nil)
)

// agentCollector reads the agent's state at scrape time, so the hot paths
// keep their own lock-free counters and pay nothing for metrics.
type agentCollector struct{ a *Agent }

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descInd, descHTTP, descSet, descAge, descStale, descSeq, descFresh, descSwap, descByp, descUp,
		descTelSpoolChunks, descTelSpoolBytes, descTelUploaded, descTelLastUpload, descTelDropped, descTelQuarantine, descFlowRecords, descFlowUnnamed, descDNSAnswers,
		descPanics, descInsp, descKernel, descDNSQueries, descDNSByAction, descDNSUpQueries, descDNSUpErr, descDNSServFail, descDNSBadReply,
		descDNSTCPRetry, descDNSLate, descDNSInFlight, descDNSCache, descDNSRatio, descDNSEntries, descDNSLatency} {
		ch <- d
	}
}

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	now := a.now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	ds := a.dp.State()
	gauge(descInfo, 1, version.Get().Version, ds.Settings.Mode.String())
	if ns := a.ctl.started.Load(); ns != 0 {
		gauge(descUp, now.Sub(time.Unix(0, ns)).Seconds())
	}

	counts, httpOnly := policyCounts(ds.Policy)
	for _, act := range []filter.Action{filter.Allowed, filter.Warn, filter.Block, filter.Audit} {
		gauge(descInd, float64(counts[act.String()]), act.String())
	}
	gauge(descHTTP, float64(httpOnly))
	pi := a.policyInfo()
	gauge(descSet, 1, pi.Version)
	if t := setTime(pi); !t.IsZero() {
		gauge(descAge, now.Sub(t).Seconds())
	}
	if s := a.ind.sync.Load(); s != nil && a.feedSource() {
		ss := s.Status()
		stale := 0.0
		if ss.Stale {
			stale = 1
		}
		gauge(descStale, stale)
		gauge(descSeq, float64(ss.Sequence))
		if !ss.FreshAt.IsZero() {
			gauge(descFresh, now.Sub(ss.FreshAt).Seconds())
		}
	}
	counter(descSwap, float64(a.dp.Swaps()))
	n := 0
	for _, v := range a.bypassStats() {
		n += v
	}
	gauge(descByp, float64(n))

	ts := a.telemetryStatus()
	gauge(descTelSpoolChunks, float64(ts.SpoolChunks))
	gauge(descTelSpoolBytes, float64(ts.SpoolBytes))
	counter(descTelUploaded, float64(ts.UploadedChunks))
	last := 0.0
	if !ts.LastUpload.IsZero() {
		last = float64(ts.LastUpload.UnixNano()) / 1e9
	}
	gauge(descTelLastUpload, last)
	counter(descTelDropped, float64(ts.DroppedQueueFull), "queue_full")
	counter(descTelDropped, float64(ts.DroppedSpoolRecords), "spool_full")
	gauge(descTelQuarantine, float64(ts.Quarantined))
	if f := ts.Flows; f != nil {
		counter(descFlowRecords, float64(f.Records-f.Unnamed), "true")
		counter(descFlowRecords, float64(f.Unnamed), "false")
		gauge(descFlowUnnamed, f.UnnamedShare)
	}
	if d := ts.DNSAnswers; d != nil {
		counter(descDNSAnswers, float64(d.Received), "received")
		counter(descDNSAnswers, float64(d.Recorded), "recorded")
		counter(descDNSAnswers, float64(d.Dropped), "dropped")
		counter(descDNSAnswers, float64(d.Own), "own")
	}

	for _, c := range []string{"dns", "inspect", "control", "warnpage"} {
		counter(descPanics, float64(a.panics.Count(c)), c)
	}

	if is, ok := a.inspectStats(); ok {
		for _, o := range []struct {
			name string
			v    uint64
		}{{"allowed", is.Allowed}, {"blocked", is.Blocked}, {"quic_dropped", is.QUICDropped},
			{"deadline_missed", is.DeadlineMissed}, {"flows_full", is.FlowsFull}, {"decode_error", is.DecodeErrors}} {
			counter(descInsp, float64(o.v), o.name)
		}
		counter(descKernel, float64(is.KernelRefused))
	}

	if d, ok := a.dnsStats(); ok {
		collectDNS(ch, d)
	}
}

// collectDNS exports a snapshot of the DNS proxy's counters.
func collectDNS(ch chan<- prometheus.Metric, d dnsproxy.Stats) {
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v)
	}
	counter(descDNSQueries, d.Queries)
	for _, v := range []filter.Verdict{filter.VerdictAllow, filter.VerdictAudit, filter.VerdictBlock, filter.VerdictWarn, filter.VerdictBypassed} {
		counter(descDNSByAction, d.ByVerdict[v.String()], v.String())
	}
	counter(descDNSByAction, d.Special, "special")
	counter(descDNSByAction, d.Rejected, "rejected")
	counter(descDNSByAction, d.Refused, "refused")
	counter(descDNSUpQueries, d.UpstreamQueries)
	counter(descDNSUpErr, d.UpstreamErrors)
	counter(descDNSServFail, d.ServFail)
	counter(descDNSBadReply, d.BadReplies)
	counter(descDNSTCPRetry, d.TCPRetries)
	counter(descDNSLate, d.LateReplies)
	gauge(descDNSInFlight, float64(d.InFlight))
	counter(descDNSCache, d.CacheHits, "hit")
	counter(descDNSCache, d.CacheMisses, "miss")
	ratio := 0.0
	if total := d.CacheHits + d.CacheMisses; total > 0 {
		ratio = float64(d.CacheHits) / float64(total)
	}
	gauge(descDNSRatio, ratio)
	gauge(descDNSEntries, float64(d.CacheEntries))
	ch <- prometheus.MustNewConstHistogram(descDNSLatency, dnsLatencyCount(d), d.LatencySum.Seconds(), dnsLatencyBuckets(d))
}

// dnsLatencyBuckets turns the proxy's per-bucket counts into Prometheus'
// cumulative buckets keyed by upper bound in seconds; the last count (beyond
// the last bound) is only in the total.
func dnsLatencyBuckets(d dnsproxy.Stats) map[float64]uint64 {
	buckets := make(map[float64]uint64, len(dnsproxy.LatencyBounds))
	var cum uint64
	for i, b := range dnsproxy.LatencyBounds {
		cum += d.LatencyCounts[i]
		buckets[b.Seconds()] = cum
	}
	return buckets
}

func dnsLatencyCount(d dnsproxy.Stats) uint64 {
	var n uint64
	for _, c := range d.LatencyCounts {
		n += c
	}
	return n
}

// setTime is when the indicator set was made: generatedAt, else load time.
func setTime(pi setInfo) time.Time {
	if !pi.GeneratedAt.IsZero() {
		return pi.GeneratedAt
	}
	return pi.LoadedAt
}

// policyCounts counts rules by action, and Url rules with a path.
func policyCounts(p *filter.Policy) (map[string]int, int) {
	counts := map[string]int{}
	httpOnly := 0
	for _, r := range p.Rules() {
		counts[r.Action.String()]++
		if r.Type == filter.TypeURL {
			if u, err := filter.ParseURL(r.Value); err == nil && u.HTTPOnly() {
				httpOnly++
			}
		}
	}
	return counts, httpOnly
}

// serveMetrics serves /metrics on addr until ctx ends. The listener is bound
// here so a bad metrics.listen fails the start with a clear error.
func (a *Agent) serveMetrics(ctx context.Context, g *errgroup.Group, m *metrics, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics.listen %q: %w (pick a free host:port, or set it to \"\" to turn metrics off)", addr, err)
	}
	if h, _, _ := net.SplitHostPort(addr); h == "" || h == "0.0.0.0" || h == "::" {
		a.log.Warn("metrics are served on every interface; bind them to 127.0.0.1 unless a scraper needs them remotely", "addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10, IdleTimeout: time.Minute}
	a.ctl.metricsAddr = ln.Addr().String()
	a.log.Info("metrics served", "addr", "http://"+ln.Addr().String()+"/metrics")
	g.Go(func() error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics: %w", err)
			}
			return nil
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	})
	return nil
}
