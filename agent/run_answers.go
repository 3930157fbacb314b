package agent

import (
	"context"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/agent/control"
	"github.com/netward/netward/filter/dnsproxy"
	"github.com/netward/netward/telemetry"
	"github.com/netward/netward/telemetry/flow"
)

// Allowed DNS answers as discovery records (issue 16, CONTRACT §6). The DNS
// proxy hands every plainly allowed answer to onAnswer, on its fast path:
// onAnswer only puts it into a bounded queue (a channel of values: no
// allocation, never blocks; a full queue is counted). One goroutine takes
// the queue, attributes the query to the process and user that sent it
// (sock_diag on Linux, while the client's socket still exists) and folds
// repeats of (name, process or client, user) into one record per
// deduplication window with RepeatCount. The window is emitted when it
// ends, when it is full, and at every chunk close and clean stop
// (telemetry.Config.Drain).

// answersState is the DNS answer recorder's state.
type answersState struct {
	on     bool
	q      chan queuedAnswer
	win    answerWindow
	lookup clientLookup
	// cache keeps recent attributions by client address and port (a
	// resolver that reuses its socket, a benchmark) so a busy client costs
	// one lookup, not one per query; onAnswer (upstream answers) and the
	// worker share it.
	cacheMu sync.Mutex
	cache   map[netip.AddrPort]cachedProc

	received, dropped, recorded, own atomic.Uint64

	// stopping is the run's ctx.Done (set before the pipeline starts) and
	// folded closed by the worker once it folded what was queued at the
	// stop: the pipeline's last drain waits for it (answerDrain).
	stopping <-chan struct{}
	folded   chan struct{}
}

type queuedAnswer struct {
	dnsproxy.Answer
	at time.Time
	// tried is set when onAnswer attributed the query already (an
	// upstream answer: the client's socket certainly still exists).
	tried, found bool
	proc         flow.Process
}

type cachedProc struct {
	p  flow.Process
	ok bool
	at time.Time
}

// clientLookup attributes a DNS client's socket by its local end (Linux:
// flow.SockDiag.LookupLocal); Close releases it.
type clientLookup interface {
	LookupLocal(proto uint8, local netip.AddrPort) (flow.Process, bool)
	Close() error
}

// Bounds of the recorder.
const (
	answerQueue      = 8192 // queued answers (≈ 100 bytes each)
	answerWindowMax  = 4096 // distinct keys per window; past it the window is emitted early
	answerCacheMax   = 4096
	answerCacheTTL   = 2 * time.Second
	answerTickPeriod = time.Second
)

// stubResolvers are the system resolvers that query on an application's
// behalf: a query from one of them names the stub, not the application
// (the flow records name the application).
var stubResolvers = map[string]bool{
	"systemd-resolved": true, "dnsmasq": true, "unbound": true, "nscd": true, "named": true,
	"stubby": true, "dnscrypt-proxy": true, "knot-resolver": true, "kresd": true, "pdns_recursor": true,
	"svchost.exe": true,
}

// answerKey is what a window folds on. Name may share memory with the DNS
// cache (never modified).
type answerKey struct {
	name    string
	pid     int
	account string
	client  netip.Addr // when the process is unknown
}

// answerWindow is the deduplication window: one record per key, counting
// repeats, since start.
type answerWindow struct {
	mu    sync.Mutex
	start time.Time
	m     map[answerKey]*telemetry.Record
	order []answerKey // first-seen order, so records keep their time order
}

// take empties the window and returns its records; a record that stands
// for one answer carries no RepeatCount.
func (w *answerWindow) take() []telemetry.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.order) == 0 {
		return nil
	}
	out := make([]telemetry.Record, 0, len(w.order))
	for _, k := range w.order {
		r := w.m[k]
		if r.RepeatCount == 1 {
			r.RepeatCount = 0
		}
		out = append(out, *r)
	}
	clear(w.m)
	w.order = w.order[:0]
	return out
}

// add folds r under k; it reports false when the window is full and k is
// new (the caller emits the window and adds again).
func (w *answerWindow) add(k answerKey, r telemetry.Record) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.m[k]; ok {
		old.RepeatCount++
		return true
	}
	if len(w.order) >= answerWindowMax {
		return false
	}
	if len(w.order) == 0 {
		w.start = r.Timestamp
	}
	r.RepeatCount = 1
	w.m[k] = &r
	w.order = append(w.order, k)
	return true
}

// due reports whether the window began at least d before now.
func (w *answerWindow) due(now time.Time, d time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.order) > 0 && now.Sub(w.start) >= d
}

// initAnswers sets the recorder up when telemetry.dnsAnswers is on (New).
func (a *Agent) initAnswers() {
	if a.cfg.Telemetry.DNSAnswers != nil && !*a.cfg.Telemetry.DNSAnswers {
		return
	}
	a.ans.on = true
	a.ans.q = make(chan queuedAnswer, answerQueue)
	a.ans.win.m = make(map[answerKey]*telemetry.Record)
	a.ans.cache = make(map[netip.AddrPort]cachedProc)
	a.ans.folded = make(chan struct{})
}

// onAnswer is dnsproxy.Config.OnAnswer: it queues and returns. An answer
// that came from an upstream (not Cached) is attributed here, before the
// reply leaves, while the client's socket certainly exists; the query
// already waited for the upstream, so the lookup's microseconds do not
// matter. A cached answer is attributed by the worker, if the client's
// socket is still open by then.
func (a *Agent) onAnswer(ans dnsproxy.Answer) {
	qa := queuedAnswer{Answer: ans, at: a.now()}
	if !ans.Cached && a.ans.lookup != nil && ans.Client.IsValid() {
		qa.tried = true
		qa.proc, qa.found = a.lookupClient(ans.Proto, ans.Client, qa.at)
	}
	select {
	case a.ans.q <- qa:
	default:
		a.ans.dropped.Add(1)
	}
}

// answerDrain is telemetry.Config.Drain: the window's records, for the
// chunk being closed (or the journal, at stop).
// The pipeline journals them itself; the events ring and the decision
// counters see them like every emitted record, so neither depends on
// whether a window ended by time or at a chunk close.
func (a *Agent) answerDrain() []telemetry.Record {
	if a.ans.stopping != nil {
		select {
		case <-a.ans.stopping:
			// The clean stop's drain: the answers still queued first
			// (bounded: a stuck worker must not hold the stop).
			select {
			case <-a.ans.folded:
			case <-time.After(5 * time.Second):
			}
		default:
		}
	}
	recs := a.ans.win.take()
	a.ans.recorded.Add(uint64(len(recs)))
	for i := range recs {
		a.emitExcept(&recs[i], a.tel.sink)
	}
	return recs
}

// dedupWindow is telemetry.dedupWindow (0: no deduplication).
func (a *Agent) dedupWindow() time.Duration {
	if w := a.cfg.Telemetry.DedupWindow; w != nil {
		return time.Duration(*w)
	}
	return time.Minute
}

// startAnswers runs the recorder's worker until ctx ends.
func (a *Agent) startAnswers(ctx context.Context, g *errgroup.Group) {
	if !a.ans.on {
		return
	}
	if l, err := newClientLookup(); err != nil {
		a.log.Warn("DNS answers are recorded without process attribution", "err", err)
	} else {
		a.ans.lookup = l
	}
	g.Go(func() error {
		if a.ans.lookup != nil {
			defer a.ans.lookup.Close()
		}
		// The window is checked every second, or four times per window
		// when it is shorter (a short window must not last a second).
		period := answerTickPeriod
		if w := a.dedupWindow(); w > 0 && w/4 < period {
			period = max(w/4, 10*time.Millisecond)
		}
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				// The pipeline drains the window at its clean stop, once
				// the answers still queued are in it.
				for len(a.ans.q) > 0 { // the only receiver: never blocks
					a.foldAnswer(<-a.ans.q)
				}
				close(a.ans.folded)
				return nil
			case qa := <-a.ans.q:
				a.foldAnswer(qa)
			case <-tick.C:
				if a.ans.win.due(a.now(), a.dedupWindow()) {
					a.emitAnswers(a.ans.win.take())
				}
			}
		}
	})
}

func (a *Agent) emitAnswers(recs []telemetry.Record) {
	a.ans.recorded.Add(uint64(len(recs)))
	for _, r := range recs {
		a.emit(r)
	}
}

// foldAnswer attributes one answer and folds it into the window.
func (a *Agent) foldAnswer(qa queuedAnswer) {
	defer a.ans.received.Add(1) // after folding: status then shows it in the window
	r := telemetry.Record{Timestamp: qa.at.UTC(), ActionType: telemetry.DnsQueryResponse, RemoteUrl: qa.Name,
		Protocol: telemetry.ProtoDNS, Source: telemetry.SourceDNS}
	if qa.Rule != nil {
		r.IndicatorId, r.Application = qa.Rule.ID, qa.Rule.Application
	}
	client := qa.Client
	// A loopback client's address says nothing about the machine (the IP
	// address history would show 127.0.0.1): left empty (CONTRACT §6).
	if client.IsValid() && !client.Addr().IsLoopback() {
		r.LocalIP = client.Addr().String()
	}
	k := answerKey{name: qa.Name}
	if p, ok := a.attribute(qa); ok {
		if p.PID == os.Getpid() && !a.cfg.Telemetry.OwnTraffic {
			a.ans.own.Add(1)
			return
		}
		r.InitiatingProcessId, r.InitiatingProcessFileName, r.InitiatingProcessAccountName = p.PID, p.FileName, p.Account
		if stubResolvers[p.FileName] {
			r.Resolver = p.FileName
		}
		k.pid, k.account = p.PID, p.Account
	}
	if r.Resolver == "" {
		r.Resolver = platformStub(client, a.dns.captured.Load())
	}
	if k.pid == 0 && k.account == "" {
		k.client = client.Addr()
	}
	if a.dedupWindow() <= 0 {
		a.emitAnswers([]telemetry.Record{r})
		return
	}
	if !a.ans.win.add(k, r) {
		a.emitAnswers(a.ans.win.take())
		a.ans.win.add(k, r)
	}
}

// attribute finds the process behind a query's client socket. When the
// worker falls behind (queue half full) it stops looking, so the queue
// drains and repeats are still counted, by client.
func (a *Agent) attribute(qa queuedAnswer) (flow.Process, bool) {
	if qa.tried {
		return qa.proc, qa.found
	}
	if a.ans.lookup == nil || !qa.Client.IsValid() || len(a.ans.q) > answerQueue/2 {
		return flow.Process{}, false
	}
	return a.lookupClient(qa.Proto, qa.Client, a.now())
}

// lookupClient is the lookup through the cache.
func (a *Agent) lookupClient(proto string, client netip.AddrPort, now time.Time) (flow.Process, bool) {
	a.ans.cacheMu.Lock()
	c, hit := a.ans.cache[client]
	a.ans.cacheMu.Unlock()
	if hit && now.Sub(c.at) < answerCacheTTL {
		return c.p, c.ok
	}
	p, ok := a.ans.lookup.LookupLocal(protoNumber(proto), client)
	a.ans.cacheMu.Lock()
	if len(a.ans.cache) >= answerCacheMax {
		clear(a.ans.cache)
	}
	a.ans.cache[client] = cachedProc{p: p, ok: ok, at: now}
	a.ans.cacheMu.Unlock()
	return p, ok
}

func protoNumber(proto string) uint8 {
	if proto == "tcp" {
		return 6
	}
	return 17
}

// answersStatus is the recorder's part of `netward status`.
func (a *Agent) answersStatus() *control.AnswerStats {
	if !a.ans.on {
		return nil
	}
	return &control.AnswerStats{Received: a.ans.received.Load(), Recorded: a.ans.recorded.Load(),
		Dropped: a.ans.dropped.Load(), Own: a.ans.own.Load(), Window: a.dedupWindow().String()}
}
