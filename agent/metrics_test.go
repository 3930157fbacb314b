package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/dnsproxy"
	"github.com/netward/netward/internal/e2e"
)

// scrape fetches /metrics and returns every sample as "name{labels}" →
// value, parsing the Prometheus text exposition format.
// controlSink is a loopback address for the warn pages of these tests (the
// warn tests use another).
const controlSink = "127.77.1.154"

func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad exposition line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetricsScrape runs the DNS proxy against a real upstream and the
// metrics listener, sends real queries, and scrapes /metrics over HTTP.
func TestMetricsScrape(t *testing.T) {
	up := dnsUpstream(t)
	dir := t.TempDir()
	cfg, err := config.Parse(fmt.Appendf(nil, `{"version":1,"dataDir":%q,
		"dns":{"listen":["127.0.0.1:0"],"upstreams":[%q]},
		"warn":{"sinkAddress":%q},
		"control":{"socket":%q},
		"metrics":{"listen":"127.0.0.1:0"}}`, filepath.Join(dir, "data"), up, controlSink, filepath.Join(dir, "netward.sock")), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := filter.Compile([]filter.Rule{
		{Value: "blocked.test", Type: filter.TypeDomain, Action: filter.Block, ID: "5"},
		{Value: "warned.test", Type: filter.TypeDomain, Action: filter.Warn, ID: "1"},
		{Value: "example.test/dl/", Type: filter.TypeURL, Action: filter.Block, ID: "6"},
	})
	if err != nil {
		t.Fatal(err)
	}
	installSet(a, "7", time.Now().Add(-time.Minute), p)

	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	t.Cleanup(func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	for _, start := range []func(context.Context, *errgroup.Group) error{a.startDNS, a.startControl} {
		if err := start(gctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if a.metricsAddr() == "" {
		t.Fatal("metrics not served")
	}

	// Before any query: the DNS series exist and are zero.
	m := scrape(t, a.metricsAddr())
	if v, ok := m["netward_dns_queries_total"]; !ok || v != 0 {
		t.Errorf("netward_dns_queries_total before queries = %v, %v", v, ok)
	}
	if v, ok := m["netward_dns_cache_hit_ratio"]; !ok || v != 0 {
		t.Errorf("netward_dns_cache_hit_ratio before queries = %v, %v", v, ok)
	}

	addr := a.dns.proxy.Load().Addrs()[0].String()
	for _, name := range []string{"app.example.", "app.example.", "blocked.test."} {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		if _, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(q, addr); err != nil {
			t.Fatalf("query %s: %v", name, err)
		}
	}

	// The latency of a query is observed just after its answer is written,
	// so a scrape right after the third answer may not see it yet.
	e2e.WaitFor(t, "the third query's latency", 20*time.Second, func() bool {
		m = scrape(t, a.metricsAddr())
		return m[`netward_dns_latency_seconds_count`] >= 3
	})
	want := map[string]float64{
		`netward_dns_queries_total`:                                 3,
		`netward_dns_queries_by_action_total{action="allow"}`:       2,
		`netward_dns_queries_by_action_total{action="block"}`:       1,
		`netward_dns_queries_by_action_total{action="warn"}`:        0,
		`netward_dns_queries_by_action_total{action="refused"}`:     0,
		`netward_dns_upstream_queries_total`:                        1,
		`netward_dns_upstream_errors_total`:                         0,
		`netward_dns_in_flight_queries`:                             0,
		`netward_dns_cache_lookups_total{result="hit"}`:             1,
		`netward_dns_cache_hit_ratio`:                               0.5,
		`netward_dns_latency_seconds_count`:                         3,
		`netward_dns_latency_seconds_bucket{le="+Inf"}`:             3,
		`netward_decisions_total{action="block",interceptor="dns"}`: 1,
		`netward_policy_swaps_total`:                                1,
		`netward_indicators{action="Block"}`:                        2,
		`netward_indicators{action="Warn"}`:                         1,
		`netward_indicators_http_only`:                              1,
		`netward_indicator_set_info{version="7"}`:                   1,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("%s missing from /metrics", k)
		} else if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	for _, c := range []string{"dns", "inspect", "control", "warnpage"} {
		if v, ok := m[`netward_panics_recovered_total{component="`+c+`"}`]; !ok || v != 0 {
			t.Errorf("netward_panics_recovered_total{component=%q} = %v, %v; want 0", c, v, ok)
		}
	}
	// Every component reports its recovered panics to the agent's counter.
	if p := a.dns.proxy.Load(); p.Stats().Panics != 0 || a.panics.Count("dns") != 0 {
		t.Error("panics before any")
	}
	a.panics.Recovered("dns", "simulated")
	if v := scrape(t, a.metricsAddr())[`netward_panics_recovered_total{component="dns"}`]; v != 1 {
		t.Errorf("after one recovered panic the metric is %v, want 1", v)
	}
	// Buckets are cumulative and bounded by the total.
	prev := 0.0
	n := 0
	for _, b := range []string{"5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"} {
		v, ok := m[`netward_dns_latency_seconds_bucket{le="`+b+`"}`]
		if !ok {
			t.Errorf("no latency bucket le=%s", b)
			continue
		}
		n++
		if v < prev || v > 3 {
			t.Errorf("bucket le=%s = %v after %v: not cumulative", b, v, prev)
		}
		prev = v
	}
	if s := m["netward_dns_latency_seconds_sum"]; s <= 0 {
		t.Errorf("netward_dns_latency_seconds_sum = %v, want > 0", s)
	}
	if age := m["netward_indicator_set_age_seconds"]; age < 59 {
		t.Errorf("netward_indicator_set_age_seconds = %v, want about 60", age)
	}
	// The agent's own registry: Go runtime metrics are there, and nothing
	// leaks into (or comes from) the global default registry.
	if _, ok := m["go_goroutines"]; !ok {
		t.Error("go_goroutines missing: the Go collector is not registered")
	}
}

// dnsStatsCollector exports one snapshot of the DNS proxy's counters, as
// the agent's collector does.
type dnsStatsCollector struct{ s dnsproxy.Stats }

func (c dnsStatsCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }
func (c dnsStatsCollector) Collect(ch chan<- prometheus.Metric) { collectDNS(ch, c.s) }

// The upstream answers that came after their attempt ended are exported
// beside the bad ones, each as its own counter.
func TestMetricsDNSLateReplies(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(dnsStatsCollector{dnsproxy.Stats{LateReplies: 7, BadReplies: 3}}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if ms := mf.GetMetric(); len(ms) == 1 && ms[0].GetCounter() != nil {
			got[mf.GetName()] = ms[0].GetCounter().GetValue()
		}
	}
	for name, want := range map[string]float64{"netward_dns_upstream_late_replies_total": 7, "netward_dns_upstream_bad_replies_total": 3} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (exported: %v), want %v", name, v, ok, want)
		}
	}
}
