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
	"github.com/netward/netward/filter"
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
	pid    int // this process's, read once: os.Getpid is a system call
	q      answerQueue
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
	// answerQueueMax bounds the queued answers (≈ 170 bytes each); the
	// queue starts at answerQueueMin and grows as a burst needs it (a
	// channel of the full size was 1.4 MB held by every agent, idle or
	// not: issue 21).
	answerQueueMin = 1024
	answerQueueMax = 8192
	// answerWindowMax bounds the distinct keys (names, mostly) of a
	// window; past it the window is emitted early. 8,192 holds the hot set
	// of a busy machine: 4,096 let the 5,000 hot names of the cached
	// benchmark overflow it every 4,096 new names, so nearly every cached
	// answer became a record (and its share of the telemetry queue and
	// gzip): 9.1 µs of CPU per cached answer instead of 5.5 (docs/dns.md).
	// An entry is ~150 bytes (answerEntry), the full window ~2 MB with its
	// index.
	answerWindowMax  = 8192
	answerCacheMax   = 4096
	answerCacheTTL   = 2 * time.Second
	answerTickPeriod = time.Second
)

// answerQueue carries answers from the proxy (onAnswer, on its fast path)
// to the recorder's worker: a slice under a mutex that grows up to
// answerQueueMax, taken whole by the worker. Appending to a slice with room
// allocates nothing, and only the first answer of a batch wakes the worker.
type answerQueue struct {
	mu    sync.Mutex
	buf   []queuedAnswer
	spare []queuedAnswer // the worker's last batch, emptied, for reuse
	wake  chan struct{}  // capacity 1: see put
	// untried says buf holds an answer the worker must attribute.
	untried bool
}

// put queues qa; false when the queue is full.
func (q *answerQueue) put(qa queuedAnswer) bool {
	q.mu.Lock()
	if len(q.buf) >= answerQueueMax {
		q.mu.Unlock()
		return false
	}
	if q.buf == nil {
		q.buf = make([]queuedAnswer, 0, answerQueueMin)
	}
	q.buf = append(q.buf, qa)
	// Only an answer still to be attributed (cached: the worker looks its
	// client up, while the socket is likely still open) wakes the worker,
	// when it is the first queued. One attributed already (from an
	// upstream: onAnswer looked it up) waits for the worker's tick, or a
	// quarter-full queue: waking a goroutine — and a thread for it, in an
	// idle agent — took its share of every forwarded query's time before
	// its reply left (issue 21).
	wake := (!qa.tried && !q.untried) || len(q.buf) == answerQueueMax/4
	q.untried = q.untried || !qa.tried
	q.mu.Unlock()
	if wake {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// take returns every queued answer; the caller hands the slice back with
// recycle once done with it.
func (q *answerQueue) take() []queuedAnswer {
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.buf
	q.buf = q.spare
	q.spare = nil
	q.untried = false
	return b
}

// recycle gives a taken batch back for reuse, emptied. A batch that grew
// for a burst is let go once the burst is over (less than a quarter of it
// used), so the queue shrinks back to answerQueueMin.
func (q *answerQueue) recycle(b []queuedAnswer) {
	if b == nil {
		return
	}
	n := len(b)
	clear(b)
	if cap(b) > answerQueueMin && n < cap(b)/4 {
		return
	}
	q.mu.Lock()
	if q.spare == nil {
		q.spare = b[:0]
	}
	q.mu.Unlock()
}

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

// answerEntry is one key of the window: what its record needs, and no more.
// A telemetry.Record (~450 bytes, allocated per key with a pointer in the
// index) is built only when the window is emitted.
type answerEntry struct {
	key      answerKey
	at       int64 // the first answer's time, unix nanoseconds
	count    int64
	rule     *filter.Rule // the Allow indicator that matched, or nil
	local    netip.Addr   // the client's address, unless loopback
	file     string       // the process's executable
	resolver string
}

// record is the entry's DnsQueryResponse record; one that stands for one
// answer carries no RepeatCount.
func (e *answerEntry) record() telemetry.Record {
	r := telemetry.Record{Timestamp: time.Unix(0, e.at).UTC(), ActionType: telemetry.DnsQueryResponse, RemoteUrl: e.key.name,
		Protocol: telemetry.ProtoDNS, Source: telemetry.SourceDNS, InitiatingProcessId: e.key.pid,
		InitiatingProcessFileName: e.file, InitiatingProcessAccountName: e.key.account, Resolver: e.resolver}
	if e.rule != nil {
		r.IndicatorId, r.Application = e.rule.IndicatorID(), e.rule.Application()
	}
	if e.local.IsValid() {
		r.LocalIP = e.local.String()
	}
	if e.count > 1 {
		r.RepeatCount = e.count
	}
	return r
}

// answerWindow is the deduplication window: one entry per key, counting
// repeats, since start, in first-seen order (records keep their time order).
type answerWindow struct {
	mu    sync.Mutex
	start time.Time
	idx   map[answerKey]int32 // index into ents
	ents  []answerEntry
	// spare is the last window's entries, emptied (recycleEntries): the
	// next window starts in it instead of growing a slice from nothing.
	// Under a flood of new names a full window is emitted every 8,192 of
	// them, and growing its entries again was a fifth of every byte the
	// agent allocated on the forwarded workloads — collections the soft
	// limit's headroom had to pay for (docs/dns.md "Eleventh part: peak
	// memory margin").
	spare []answerEntry
}

// takeEntries empties the window and returns its entries; the caller hands
// them back with recycleEntries once emitted.
func (w *answerWindow) takeEntries() []answerEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	ents := w.ents
	w.ents = nil // starts in the spare, if any (add)
	clear(w.idx)
	return ents
}

// recycleEntries gives emitted entries back for the next window, emptied
// (no names kept alive). Entries of which less than a quarter was used are
// let go, as the answer queue's batches are: a window that grew for a
// burst is not held by an idle agent past the next quiet window.
func (w *answerWindow) recycleEntries(ents []answerEntry) {
	n := len(ents)
	if n == 0 || n < cap(ents)/4 {
		return
	}
	clear(ents)
	w.mu.Lock()
	if w.spare == nil || cap(w.spare) < cap(ents) {
		w.spare = ents[:0]
	}
	w.mu.Unlock()
}

// add folds e under e.key; it reports false when the window is full and
// the key is new (the caller emits the window and adds again).
func (w *answerWindow) add(e answerEntry) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i, ok := w.idx[e.key]; ok {
		w.ents[i].count++
		return true
	}
	if len(w.ents) >= answerWindowMax {
		return false
	}
	if len(w.ents) == 0 {
		w.start = time.Unix(0, e.at)
		if w.ents == nil && w.spare != nil {
			w.ents, w.spare = w.spare, nil
		}
	}
	e.count = 1
	w.idx[e.key] = int32(len(w.ents))
	w.ents = append(w.ents, e)
	return true
}

// due reports whether the window began at least d before now.
func (w *answerWindow) due(now time.Time, d time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ents) > 0 && now.Sub(w.start) >= d
}

// initAnswers sets the recorder up when telemetry.dnsAnswers is on (New).
func (a *Agent) initAnswers() {
	if a.cfg.Telemetry.DNSAnswers != nil && !*a.cfg.Telemetry.DNSAnswers {
		return
	}
	a.ans.on = true
	a.ans.pid = os.Getpid()
	a.ans.q.wake = make(chan struct{}, 1)
	a.ans.win.idx = make(map[answerKey]int32)
	a.ans.cache = make(map[netip.AddrPort]cachedProc)
	a.ans.folded = make(chan struct{})
}

// onAnswer is dnsproxy.Config.OnAnswer: it queues and returns. An answer
// that came from an upstream (not Cached) is attributed here, before the
// reply leaves, while the client's socket certainly exists; the query
// already waited for the upstream, so the lookup's microseconds do not
// matter. A cached answer is attributed here only if its client was
// looked up lately (lookupCached: no syscall, no allocation), else by the
// worker, if the client's socket is still open by then (and only such an
// answer wakes the worker: answerQueue.put).
func (a *Agent) onAnswer(ans dnsproxy.Answer) {
	qa := queuedAnswer{Answer: ans, at: a.now()}
	if a.ans.lookup != nil && ans.Client.IsValid() {
		if !ans.Cached {
			qa.tried = true
			qa.proc, qa.found = a.lookupClient(ans.Proto, ans.Client, qa.at)
		} else {
			qa.proc, qa.found, qa.tried = a.lookupCached(ans.Client, qa.at)
		}
	}
	if !a.ans.q.put(qa) {
		a.ans.dropped.Add(1)
	}
}

// answerDrain is telemetry.Config.Drain: the window's records, one at a
// time, for the chunk being closed (or the journal, at stop); a record is
// built from its entry as it is handed over (no slice of records for the
// whole window: 3–4 MB at every chunk close under load, issue 21).
// The pipeline journals them itself; the events ring and the decision
// counters see them like every emitted record, so neither depends on
// whether a window ended by time or at a chunk close.
func (a *Agent) answerDrain(add func(telemetry.Record)) {
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
	ents := a.ans.win.takeEntries()
	a.ans.recorded.Add(uint64(len(ents)))
	for i := range ents {
		r := ents[i].record()
		a.stamp(&r)
		pk := a.pack(&r)
		a.emitExcept(&r, &pk, a.tel.sink)
		add(r)
	}
	a.ans.win.recycleEntries(ents)
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
				a.foldQueued()
				close(a.ans.folded)
				return nil
			case <-a.ans.q.wake:
				a.foldQueued()
			case <-tick.C:
				a.foldQueued() // the attributed answers that woke nobody
				if a.ans.win.due(a.now(), a.dedupWindow()) {
					a.emitWindow()
				}
			}
		}
	})
}

// emitEntries emits a window's entries as records, one at a time (no
// slice of ~450-byte records for a full window), handing them to the
// telemetry writer emitPortion at a time: a full window queued whole was
// 8,192 records (~4 MB, and twice that in the queue's grown buffer) on top
// of the heap under a flood of new names (issue 21). It runs on the
// answers worker, never on a DNS reply's path: the answer queue holds
// what arrives meanwhile.
func (a *Agent) emitEntries(ents []answerEntry) {
	a.ans.recorded.Add(uint64(len(ents)))
	pipe := a.tel.pipe.Load()
	for i := range ents {
		if pipe != nil && i > 0 && i%emitPortion == 0 {
			pipe.WaitRoom(a.ans.stopping, emitPortion)
		}
		a.emit(ents[i].record())
	}
}

// emitWindow emits the window's entries and keeps their slice for the next
// window.
func (a *Agent) emitWindow() {
	ents := a.ans.win.takeEntries()
	a.emitEntries(ents)
	a.ans.win.recycleEntries(ents)
}

// emitPortion is how many of a window's records emitEntries hands the
// telemetry writer before waiting for it to take them.
const emitPortion = 1024

// foldQueued folds every queued answer into the window. When the worker
// fell behind (a batch of more than half the queue's bound) it stops
// looking processes up for it, so the queue drains and repeats are still
// counted, by client.
func (a *Agent) foldQueued() {
	b := a.ans.q.take()
	behind := len(b) > answerQueueMax/2
	for i := range b {
		a.foldAnswer(&b[i], behind)
	}
	a.ans.q.recycle(b)
}

// foldAnswer attributes one answer and folds it into the window.
func (a *Agent) foldAnswer(qa *queuedAnswer, behind bool) {
	defer a.ans.received.Add(1) // after folding: status then shows it in the window
	e := answerEntry{key: answerKey{name: qa.Name}, at: qa.at.UnixNano(), rule: qa.Rule}
	client := qa.Client
	// A loopback client's address says nothing about the machine (the IP
	// address history would show 127.0.0.1): left empty (CONTRACT §6).
	if client.IsValid() && !client.Addr().IsLoopback() {
		e.local = client.Addr()
	}
	if p, ok := a.attribute(qa, behind); ok {
		if p.PID == a.ans.pid && !a.cfg.Telemetry.OwnTraffic {
			a.ans.own.Add(1)
			return
		}
		e.file = p.FileName
		if stubResolvers[p.FileName] {
			e.resolver = p.FileName
		}
		e.key.pid, e.key.account = p.PID, p.Account
	}
	if e.resolver == "" {
		e.resolver = platformStub(client, a.dns.captured.Load())
	}
	if e.key.pid == 0 && e.key.account == "" {
		e.key.client = client.Addr()
	}
	if a.dedupWindow() <= 0 {
		e.count = 1
		a.emitEntries([]answerEntry{e})
		return
	}
	if !a.ans.win.add(e) {
		a.emitWindow()
		a.ans.win.add(e)
	}
}

// attribute finds the process behind a query's client socket (none when
// the worker is behind: see foldQueued).
func (a *Agent) attribute(qa *queuedAnswer, behind bool) (flow.Process, bool) {
	if qa.tried {
		return qa.proc, qa.found
	}
	if a.ans.lookup == nil || !qa.Client.IsValid() || behind {
		return flow.Process{}, false
	}
	return a.lookupClient(qa.Proto, qa.Client, a.now())
}

// lookupClient is the lookup through the cache.
func (a *Agent) lookupClient(proto string, client netip.AddrPort, now time.Time) (flow.Process, bool) {
	if p, ok, hit := a.lookupCached(client, now); hit {
		return p, ok
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

// lookupCached is lookupClient's answer from its cache alone; hit is false
// when it has none (or an expired one).
func (a *Agent) lookupCached(client netip.AddrPort, now time.Time) (p flow.Process, ok, hit bool) {
	a.ans.cacheMu.Lock()
	c, hit := a.ans.cache[client]
	a.ans.cacheMu.Unlock()
	if !hit || now.Sub(c.at) >= answerCacheTTL {
		return flow.Process{}, false, false
	}
	return c.p, c.ok, true
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
