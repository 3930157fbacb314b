package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/dnsproxy"
	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/telemetry"
	"github.com/netward/netward/telemetry/flow"
)

// answersAgent runs an agent whose DNS proxy answers from a local upstream,
// with a hand-moved clock, and returns it, the proxy's address and a stop
// function that waits for Run.
func answersAgent(t *testing.T, extra string) (*Agent, string, *e2e.Clock, func()) {
	t.Helper()
	up := dnsUpstream(t)
	cfg, err := parseConfig(t, []byte(`{"version":1,"dataDir":"`+t.TempDir()+`","device":{"id":"dev-a","name":"pc"},
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
	// The drained records reach the other sinks (the `netward events`
	// ring) stamped as the pipeline's are.
	var shown int
	for _, r := range a.ctl.ring.Since(time.Time{}) {
		if r.ActionType == telemetry.DnsQueryResponse {
			shown++
			if r.DeviceId != "dev-a" || r.Timestamp.IsZero() {
				t.Errorf("events ring record %+v: want stamped with the device id", r)
			}
		}
	}
	if shown == 0 {
		t.Error("no answer record in the events ring")
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
	// A window may hold the name in more than one record (an answer whose
	// process was not found is folded by user), and the records reach the
	// ring one at a time: wait for both answers to be counted.
	var got []telemetry.Record
	var n int64
	e2e.WaitFor(t, "the window emitted after it ended", 10*time.Second, func() bool {
		got, n = got[:0], 0
		for _, r := range a.ctl.ring.Since(time.Time{}) {
			if r.ActionType == telemetry.DnsQueryResponse {
				got = append(got, r)
				n += max(r.RepeatCount, 1)
			}
		}
		return n >= 2
	})
	for _, r := range got {
		if r.RemoteUrl != "app.example" || r.DeviceId != "dev-a" {
			t.Errorf("window emitted %+v", r)
		}
	}
	if n != 2 || len(got) > 2 {
		t.Errorf("window emitted %+v, want app.example ×2 in at most 2 records", got)
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
		a.ans.q.recycle(a.ans.q.take())
	})
	if n != 0 {
		t.Errorf("onAnswer allocates %v times per cached answer, want 0", n)
	}
	// A full queue refuses and counts, never blocks.
	for range answerQueueMax + 10 {
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
	var recs []telemetry.Record
	a.answerDrain(func(r telemetry.Record) { recs = append(recs, r) })
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

// The queue starts small, grows for a burst up to its bound, and lets the
// burst's buffer go once the burst is over.
func TestAnswerQueueGrowsAndShrinks(t *testing.T) {
	q := answerQueue{wake: make(chan struct{}, 1)}
	for range 10 {
		q.put(queuedAnswer{})
	}
	if c := cap(q.buf); c != answerQueueMin {
		t.Fatalf("capacity after 10 answers %d, want %d", c, answerQueueMin)
	}
	select {
	case <-q.wake:
	default:
		t.Fatal("the first answer did not wake the worker")
	}
	q.recycle(q.take())
	n := 0
	for q.put(queuedAnswer{}) {
		n++
	}
	if n != answerQueueMax {
		t.Fatalf("queue took %d answers, want its bound %d", n, answerQueueMax)
	}
	big := q.take()
	if cap(big) < answerQueueMax {
		t.Fatalf("burst capacity %d", cap(big))
	}
	q.recycle(big) // full: kept for the next burst
	if cap(q.spare) != cap(big) {
		t.Fatalf("a full batch was not kept for reuse")
	}
	// Quiet again: batches of one answer; within two of them the burst's
	// buffer is let go.
	for range 3 {
		q.put(queuedAnswer{})
		q.recycle(q.take())
	}
	if cap(q.buf) > answerQueueMin || cap(q.spare) > answerQueueMin {
		t.Errorf("capacities after the burst %d and %d, want at most %d", cap(q.buf), cap(q.spare), answerQueueMin)
	}
}

// Only an answer the worker must attribute wakes it (the first since it
// last took the queue); attributed ones wait for its tick, or for a
// quarter-full queue. A cached answer whose client was looked up lately is
// attributed by onAnswer from the lookup cache and wakes nobody.
func TestAnswerQueueWakesForUntriedOnly(t *testing.T) {
	woke := func(q *answerQueue) bool {
		select {
		case <-q.wake:
			return true
		default:
			return false
		}
	}
	q := answerQueue{wake: make(chan struct{}, 1)}
	for range 10 {
		q.put(queuedAnswer{tried: true})
	}
	if woke(&q) {
		t.Fatal("attributed answers woke the worker")
	}
	q.put(queuedAnswer{})
	if !woke(&q) {
		t.Fatal("an answer to attribute did not wake the worker")
	}
	q.put(queuedAnswer{})
	if woke(&q) {
		t.Fatal("a second one woke it again before it took the queue")
	}
	q.recycle(q.take())
	for range answerQueueMax/4 - 1 {
		q.put(queuedAnswer{tried: true})
	}
	if woke(&q) {
		t.Fatal("woken below a quarter of the bound")
	}
	q.put(queuedAnswer{tried: true})
	if !woke(&q) {
		t.Fatal("a quarter-full queue did not wake the worker")
	}

	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.ans.lookup = stubLookup{}
	client := netip.MustParseAddrPort("127.0.0.1:40001")
	ans := dnsproxy.Answer{Name: "app.example", QType: dns.TypeA, Client: client, Proto: "udp", Cached: true}
	a.onAnswer(ans)
	if !woke(&a.ans.q) {
		t.Fatal("a cached answer of a client never looked up did not wake the worker")
	}
	a.ans.q.recycle(a.ans.q.take())
	if p, ok := a.lookupClient("udp", client, a.now()); !ok || p.PID != 4242 {
		t.Fatalf("lookup = %v, %v", p, ok)
	}
	a.onAnswer(ans)
	if woke(&a.ans.q) {
		t.Error("a cached answer of a client looked up lately woke the worker")
	}
	if b := a.ans.q.take(); len(b) != 1 || !b[0].tried || !b[0].found || b[0].proc.PID != 4242 {
		t.Errorf("queued %+v; want it attributed to pid 4242 from the lookup cache", b)
	}
}

// stubLookup attributes every client to pid 4242.
type stubLookup struct{}

func (stubLookup) LookupLocal(uint8, netip.AddrPort) (flow.Process, bool) {
	return flow.Process{PID: 4242, FileName: "app"}, true
}
func (stubLookup) Close() error { return nil }

// The window holds answerWindowMax keys before it is emitted early, folds
// repeats into RepeatCount, and builds the same records from its compact
// entries as from the answers.
func TestAnswerWindowBoundAndRecords(t *testing.T) {
	w := answerWindow{idx: make(map[answerKey]int32)}
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	rule := &filter.Rule{ID: "ind-1", Meta: &filter.RuleMeta{Application: "App"}}
	for round := range 2 {
		for i := range 5000 {
			e := answerEntry{key: answerKey{name: "h" + strconv.Itoa(i) + ".example", pid: 42, account: "alice"}, at: at.Add(time.Duration(round) * time.Second).UnixNano(),
				file: "curl", local: netip.MustParseAddr("192.0.2.9"), resolver: "", rule: rule}
			if !w.add(e) {
				t.Fatalf("window full at %d keys, round %d: 5,000 hot names must fit", len(w.ents), round)
			}
		}
	}
	for i := 5000; i < answerWindowMax; i++ {
		if !w.add(answerEntry{key: answerKey{name: "n" + strconv.Itoa(i)}, at: at.UnixNano()}) {
			t.Fatalf("window full at %d keys", i)
		}
	}
	if w.add(answerEntry{key: answerKey{name: "one.more"}, at: at.UnixNano()}) {
		t.Fatalf("window took a key past %d", answerWindowMax)
	}
	if !w.due(at.Add(time.Minute), time.Minute) || w.due(at.Add(59*time.Second), time.Minute) {
		t.Error("due does not follow the first answer's time")
	}
	ents := w.takeEntries()
	recs := make([]telemetry.Record, len(ents))
	for i := range ents {
		recs[i] = ents[i].record()
	}
	if len(recs) != answerWindowMax || len(w.ents) != 0 || len(w.idx) != 0 {
		t.Fatalf("take: %d records, window left %d/%d", len(recs), len(w.ents), len(w.idx))
	}
	want := telemetry.Record{Timestamp: at, ActionType: telemetry.DnsQueryResponse, RemoteUrl: "h0.example", LocalIP: "192.0.2.9",
		Protocol: telemetry.ProtoDNS, InitiatingProcessId: 42, InitiatingProcessFileName: "curl", InitiatingProcessAccountName: "alice",
		IndicatorId: "ind-1", Application: "App", Source: telemetry.SourceDNS, RepeatCount: 2}
	if !reflect.DeepEqual(recs[0], want) {
		t.Errorf("record\n%+v\nwant\n%+v", recs[0], want)
	}
	if r := recs[answerWindowMax-1]; r.RepeatCount != 0 || r.LocalIP != "" || r.RemoteUrl != "n8191" {
		t.Errorf("a single answer's record %+v: no RepeatCount, no LocalIP", r)
	}
}

// A full window's entries are reused by the next window (a flood of new
// names emits one every answerWindowMax names; growing the slice again each
// time was a fifth of the agent's allocation under load, issue 21), emptied
// so no name stays alive; a window that used little of them lets them go.
func TestAnswerWindowReusesEntries(t *testing.T) {
	w := answerWindow{idx: make(map[answerKey]int32)}
	keys := make([]answerKey, answerWindowMax)
	for i := range keys {
		keys[i] = answerKey{name: "r" + strconv.Itoa(i) + ".example"}
	}
	fill := func(n int) {
		for i := range n {
			if !w.add(answerEntry{key: keys[i], at: 1}) {
				t.Fatalf("window full at %d keys", i)
			}
		}
	}
	fill(answerWindowMax)
	first := w.takeEntries()
	w.recycleEntries(first)
	if first[0].key.name != "" || first[answerWindowMax-1].key.name != "" {
		t.Error("recycled entries still hold their names")
	}
	fill(1)
	if &w.ents[0] != &first[0] {
		t.Error("the next window did not start in the last one's entries")
	}
	w.recycleEntries(w.takeEntries()) // 1 of 8,192 used: let go
	if w.spare != nil {
		t.Errorf("a window that used 1 of %d entries was kept for reuse", cap(first))
	}
	fill(answerWindowMax)
	w.recycleEntries(w.takeEntries())
	if n := testing.AllocsPerRun(5, func() {
		fill(answerWindowMax)
		w.recycleEntries(w.takeEntries())
	}); n != 0 {
		t.Errorf("a full window allocates %.0f times once its entries are reused, want 0", n)
	}
}

// A window's records reach the telemetry writer a portion at a time
// (emitEntries waits for room between portions, issue 21): every one of a
// window several portions long is journaled, in order, none refused.
func TestEmitEntriesInPortions(t *testing.T) {
	a, _, clk, stop := answersAgent(t, `"ownTraffic":true`)
	n := 3*emitPortion + 5
	ents := make([]answerEntry, n)
	for i := range ents {
		ents[i] = answerEntry{key: answerKey{name: "p" + strconv.Itoa(i) + ".example"}, at: clk.Now().UnixNano(), count: 1}
	}
	a.emitEntries(ents)
	stop()
	var got []string
	for _, r := range journal(t, a.cfg.DataDir) {
		if r.ActionType == telemetry.DnsQueryResponse {
			got = append(got, r.RemoteUrl)
		}
	}
	if len(got) != n {
		t.Fatalf("journaled %d of %d records", len(got), n)
	}
	for i, name := range got {
		if want := "p" + strconv.Itoa(i) + ".example"; name != want {
			t.Fatalf("record %d is %s, want %s (in the window's order)", i, name, want)
		}
	}
}
