package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/filter/dnsproxy"
	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/telemetry"
)

// answersAgent runs an agent whose DNS proxy answers from a local upstream,
// with a hand-moved clock, and returns it, the proxy's address and a stop
// function that waits for Run.
func answersAgent(t *testing.T, extra string) (*Agent, string, *e2e.Clock, func()) {
	t.Helper()
	up := dnsUpstream(t)
	cfg, err := config.Parse([]byte(`{"version":1,"dataDir":"`+t.TempDir()+`","device":{"id":"dev-a","name":"pc"},
		"dns":{"listen":["127.0.0.1:0"],"upstreams":["`+up+`"]},"warn":{"sinkAddress":"`+testSink+`"},
		"control":{"socket":"`+filepath.Join(t.TempDir(), "ctl.sock")+`"},
		"telemetry":{`+extra+`}}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := e2e.NewClock(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	a.now = clk.Now
	a.tel.noFlows = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	e2e.WaitFor(t, "the DNS proxy", 30*time.Second, func() bool { return a.dns.proxy.Load() != nil })
	return a, a.dns.proxy.Load().Addrs()[0].String(), clk, stop
}

func askA(t *testing.T, addr, name string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	if _, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(m, addr); err != nil {
		t.Fatal(err)
	}
}

// journal reads the records of the open chunk journal.
func journal(t *testing.T, dataDir string) []telemetry.Record {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dataDir, "telemetry", "journal", "*.ndjson"))
	var out []telemetry.Record
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var r telemetry.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, r)
		}
		fh.Close()
	}
	return out
}

// Allowed answers are recorded once per (name, process, user) per window
// with RepeatCount, attributed to the querying process (sock_diag), with no
// loopback LocalIP; a clean stop journals the open window.
func TestAllowedAnswersDeduplicated(t *testing.T) {
	a, addr, _, stop := answersAgent(t, `"ownTraffic":true`)
	for range 5 {
		askA(t, addr, "app.example.")
	}
	askA(t, addr, "other.example.")
	e2e.WaitFor(t, "6 answers taken from the queue", 10*time.Second, func() bool { return a.answersStatus().Received == 6 })
	stop()
	// The upstream answer is attributed before the reply leaves; a cached
	// repeat is attributed by the worker if the client's socket is still
	// open (else it is folded by client), and its process found if /proc
	// was scanned since the socket was opened (else by user and client):
	// at most three records per name and window.
	var app []telemetry.Record
	var appCount int64
	var other int
	for _, r := range journal(t, a.cfg.DataDir) {
		switch {
		case r.ActionType != telemetry.DnsQueryResponse:
		case r.RemoteUrl == "app.example":
			app = append(app, r)
			appCount += max(r.RepeatCount, 1)
		case r.RemoteUrl == "other.example":
			other++
		}
	}
	if appCount != 5 || len(app) > 3 || other != 1 {
		t.Fatalf("records %+v (other.example %d), want app.example ×5 in at most 3 records and other.example once", app, other)
	}
	first := app[0]
	if first.LocalIP != "" || first.DeviceId != "dev-a" || first.Protocol != telemetry.ProtoDNS || first.Source != telemetry.SourceDNS {
		t.Errorf("record %+v: want no loopback LocalIP, the device id, Dns/dns", first)
	}
	me, _ := user.LookupId(strconv.Itoa(os.Getuid()))
	if first.InitiatingProcessId != os.Getpid() || me != nil && first.InitiatingProcessAccountName != me.Username {
		t.Errorf("attribution pid %d account %q, want %d %v", first.InitiatingProcessId, first.InitiatingProcessAccountName, os.Getpid(), me)
	}
}

// The window is emitted when it ends; the agent's own queries are left out
// by default; "0s" records every answer.
func TestAnswersWindowAndOwnQueries(t *testing.T) {
	a, addr, clk, _ := answersAgent(t, `"ownTraffic":true,"dedupWindow":"60s"`)
	askA(t, addr, "app.example.")
	askA(t, addr, "app.example.")
	e2e.WaitFor(t, "2 answers", 10*time.Second, func() bool { return a.answersStatus().Received == 2 })
	clk.Add(61 * time.Second)
	var got []telemetry.Record
	e2e.WaitFor(t, "the window emitted after it ended", 10*time.Second, func() bool {
		got = got[:0]
		for _, r := range a.ctl.ring.Since(time.Time{}) {
			if r.ActionType == telemetry.DnsQueryResponse {
				got = append(got, r)
			}
		}
		return len(got) > 0
	})
	var n int64
	for _, r := range got {
		if r.RemoteUrl != "app.example" || r.DeviceId != "dev-a" {
			t.Errorf("window emitted %+v", r)
		}
		n += max(r.RepeatCount, 1)
	}
	if n != 2 {
		t.Errorf("window emitted %+v, want app.example ×2", got)
	}

	own, addr2, _, _ := answersAgent(t, ``)
	askA(t, addr2, "app.example.")
	e2e.WaitFor(t, "own query left out", 10*time.Second, func() bool { s := own.answersStatus(); return s.Received == 1 })
	if own.answersStatus().Own != 1 {
		t.Errorf("status %+v: the agent's own query was not left out", own.answersStatus())
	}

	each, addr3, _, stop3 := answersAgent(t, `"ownTraffic":true,"dedupWindow":"0s"`)
	askA(t, addr3, "app.example.")
	askA(t, addr3, "app.example.")
	e2e.WaitFor(t, "2 records", 10*time.Second, func() bool { return each.answersStatus().Recorded == 2 })
	stop3()
	n = 0
	for _, r := range journal(t, each.cfg.DataDir) {
		if r.ActionType == telemetry.DnsQueryResponse {
			n++
		}
	}
	if n != 2 {
		t.Errorf("dedupWindow 0s wrote %d records for 2 answers, want 2", n)
	}
}

// Recording off: the proxy gets no hook at all.
func TestAnswersOff(t *testing.T) {
	a, addr, _, _ := answersAgent(t, `"dnsAnswers":false`)
	askA(t, addr, "app.example.")
	if a.answerHook() != nil || a.answersStatus() != nil {
		t.Error("answers recorded with telemetry.dnsAnswers false")
	}
}

// The agent's side of the cached fast path: queueing a cached answer
// allocates nothing (the proxy's side is TestFastPathAllocationsWithOnAnswer).
func TestOnAnswerCachedAllocs(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ans := dnsproxy.Answer{Name: "app.example", QType: dns.TypeA, Client: netip.MustParseAddrPort("127.0.0.1:40000"), Proto: "udp", Cached: true}
	n := testing.AllocsPerRun(1000, func() {
		a.onAnswer(ans)
		<-a.ans.q
	})
	if n != 0 {
		t.Errorf("onAnswer allocates %v times per cached answer, want 0", n)
	}
	// A full queue refuses and counts, never blocks.
	for range answerQueue + 10 {
		a.onAnswer(ans)
	}
	if a.ans.dropped.Load() != 10 {
		t.Errorf("dropped = %d, want 10", a.ans.dropped.Load())
	}
}

// Answers the pipeline drains at a chunk close (telemetry.Config.Drain)
// reach the events ring and the decision counters too, like a window that
// ended by time; the pipeline is not handed them a second time.
func TestDrainedAnswersReachLocalSinks(t *testing.T) {
	a, addr, _, _ := answersAgent(t, `"ownTraffic":true,"dedupWindow":"60s"`)
	askA(t, addr, "drained.example.")
	e2e.WaitFor(t, "the answer taken from the queue", 10*time.Second, func() bool { return a.answersStatus().Received == 1 })
	inRing := func() int {
		n := 0
		for _, r := range a.ctl.ring.Since(time.Time{}) {
			if r.ActionType == telemetry.DnsQueryResponse && r.RemoteUrl == "drained.example" {
				n++
			}
		}
		return n
	}
	if n := inRing(); n != 0 {
		t.Fatalf("%d records in the ring before the window ended", n)
	}
	queued := a.tel.pipe.Load().Status().QueuedRecords
	recs := a.answerDrain()
	if len(recs) != 1 {
		t.Fatalf("drained %d records, want 1", len(recs))
	}
	if n := inRing(); n != 1 {
		t.Errorf("%d drained records in the events ring, want 1", n)
	}
	if q := a.tel.pipe.Load().Status().QueuedRecords; q > queued {
		t.Errorf("the drained record was queued to the pipeline too (%d → %d)", queued, q)
	}
}

// A clean stop loses no answer the proxy handed over: what is still queued
// is folded into the window before the pipeline's last drain journals it.
func TestAnswersQueuedAtStopJournaled(t *testing.T) {
	a, _, _, stop := answersAgent(t, `"ownTraffic":true,"dedupWindow":"60s"`)
	const n = 3000
	client := netip.MustParseAddrPort("192.0.2.7:5353")
	for i := range n {
		a.onAnswer(dnsproxy.Answer{Name: "q" + strconv.Itoa(i) + ".example", QType: dns.TypeA, Client: client, Proto: "udp", Cached: true})
	}
	stop()
	got := 0
	for _, r := range journal(t, a.cfg.DataDir) {
		if r.ActionType == telemetry.DnsQueryResponse {
			got++
		}
	}
	if d := a.ans.dropped.Load(); got != n-int(d) || d != 0 {
		t.Fatalf("%d answers journaled of %d handed over (%d dropped by a full queue)", got, n, d)
	}
}
