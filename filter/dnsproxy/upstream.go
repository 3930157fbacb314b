package dnsproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"

	"github.com/netward/netward/internal/guard"
)

// upstreamUDPSize is the EDNS0 buffer size the proxy advertises, upstream
// and to clients: 1232 octets avoids IP fragmentation on every common path
// (DNS Flag Day 2020).
const upstreamUDPSize = 1232

// upstreamReadSize is the buffer an upstream UDP answer is read into: above
// the size advertised (an upstream must not exceed it, RFC 6891 §6.2.5) with
// room to spare. Each upstream socket's reader holds upBatch of them (one
// per query in flight, before the event-driven path: 64 KiB buffers were
// most of the agent's heap under load, issue 21): 2 KiB is 816 octets above
// what any compliant answer takes. A datagram that fills it may have been
// cut and is treated as truncated (retried over TCP).
const upstreamReadSize = 2048

// errAllFailed is returned when no upstream produced an answer in time.
var errAllFailed = errors.New("every upstream failed")

// errTimeout is an attempt that got no answer before its deadline.
var errTimeout = errors.New("no answer in time")

// errNoAttempt is a query whose time ran out (or whose proxy stopped)
// before any upstream could be asked.
var errNoAttempt = errors.New("no upstream could be asked before the query's timeout (raise dns.timeout if this repeats)")

// errStopping is a query the proxy could not forward because it is
// stopping.
var errStopping = errors.New("the DNS proxy is stopping")

// errUnconfirmed marks an attempt's ICMP unreachable error that is not
// trusted yet (upSock.unreachable): no socket of the upstream opened after
// its first such error since it last answered has had one. One forged ICMP
// message must not switch the filtering off; a real closed port refuses
// again on the fresh socket the next attempt opens, which confirms it.
var errUnconfirmed = errors.New("ICMP error not yet confirmed on a fresh socket")

// errNotCounted marks a failed exchange whose every attempt failed with an
// unconfirmed ICMP error: it does not count toward marking the upstreams
// down (Proxy.resolved).
var errNotCounted = errors.New("not counted against the upstreams")

// The forwarded path is event-driven (issue 21): a query waiting for its
// upstream holds no goroutine. Each upstream has a few shared UDP sockets
// (upSocks), connected to it, so the kernel picked a random source port for
// each and delivers only the upstream's datagrams (RFC 5452 §9.2); every
// query sent on one gets a random ID not in use on it (§4.3). One goroutine
// per socket reads its answers (recvmmsg), finds the waiting attempt by
// (socket, ID), checks the source address, ID and question, and carries the
// answer on (upFetch.result) — on that goroutine: the reply to the client
// is built and sent by the sockets' readers, a bounded set, not by a parked
// goroutine per query (~540 of them, 5 MB of stacks, under dnsperf's 500
// outstanding queries). Deadlines are kept by one runtime timer per socket
// (upSock.sweep), armed for the earliest and taking a goroutine only when
// it fires. A socket is retired after socketUses
// queries or socketLife, so the port a spoofer must hit keeps changing; it
// is closed once its last query is answered or timed out. upSocks sockets
// per upstream spread the queries in flight over as many random ports (RFC
// 5452 §9.2: a spoofer must hit the port as well as the ID; 8 is 8× the
// search space of one) and bound what one forged ICMP error (which retires
// the socket it hits) can fail to the attempts on one of them.
const (
	upSocks    = 8
	socketUses = 1024
	socketLife = 10 * time.Second
	// upBatch datagrams are read at once by a socket's reader.
	upBatch = 8
	// upReadBuffer is each upstream socket's receive buffer (kernel
	// memory, charged to the socket, not the process's RSS).
	upReadBuffer = 2 << 20
)

// upstreams sends queries to the resolvers with failover.
type upstreams struct {
	addrs     []string
	timeout   time.Duration
	dialer    net.Dialer
	preferred atomic.Uint32 // index of the upstream that answered last
	stats     *counters
	bufs      sync.Pool // upBatch × upstreamReadSize read buffers of the readers
	ctx       context.Context
	cancel    context.CancelFunc
	readers   sync.WaitGroup
	next      atomic.Uint32 // round robin over an upstream's sockets

	// refusedAt is, per upstream, when (unix nanoseconds) a socket of it
	// first got an ICMP unreachable error since it last answered; 0: none
	// (see upSock.unreachable).
	refusedAt []atomic.Int64
	// panics records a panic recovered on the upstream path (nil: only
	// counted).
	panics *guard.Panics
	// unpackHook, when set (tests), replaces the unpacking of answers.
	unpackHook func(*dns.Msg, []byte) error

	mu        sync.Mutex
	socks     [][]*upSock // per upstream, upSocks each (nil until first used)
	all       map[*upSock]struct{}
	draining  bool      // every socket is retired (replaced upstream set, or closing)
	drainedAt time.Time // when drain was called
	closed    atomic.Bool
}

func newUpstreams(addrs []string, timeout time.Duration, control func(string, string, syscall.RawConn) error, st *counters) *upstreams {
	u := &upstreams{addrs: addrs, timeout: timeout, stats: st, all: map[*upSock]struct{}{}}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	u.dialer.Control = control
	u.bufs.New = func() any { b := make([]byte, upBatch*upstreamReadSize); return &b }
	for range addrs {
		u.socks = append(u.socks, make([]*upSock, upSocks))
	}
	u.refusedAt = make([]atomic.Int64, len(addrs))
	return u
}

// panicked counts and logs (at most once per interval, guard.Panics) a
// panic recovered on the upstream path: the query it concerned is answered
// SERVFAIL, the agent goes on.
func (u *upstreams) panicked(v any) {
	u.stats.panics.Add(1)
	u.panics.Recovered("dns", v)
}

// unpack is m.Unpack(b), or the test's hook.
func (u *upstreams) unpack(m *dns.Msg, b []byte) error {
	if u.unpackHook != nil {
		return u.unpackHook(m, b)
	}
	return m.Unpack(b)
}

// done reports whether a drained set is over: drained longer ago than the
// timeout (every query begun on it has reached its deadline, so it sends
// nothing more) and with no socket left.
func (u *upstreams) done(now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.draining && now.Sub(u.drainedAt) > u.timeout && len(u.all) == 0
}

// drain retires every socket: queries waiting on them are still answered
// (or time out), then each closes; nothing new is sent on them. It is what
// a replaced upstream set gets (watchResolvers).
func (u *upstreams) drain() {
	u.mu.Lock()
	u.draining = true
	u.drainedAt = time.Now()
	socks := make([]*upSock, 0, len(u.all))
	for s := range u.all {
		socks = append(socks, s)
	}
	u.mu.Unlock()
	for _, s := range socks {
		s.retire()
	}
}

// close closes every socket at once (the proxy stops): queries still
// waiting fail, and close returns when the readers have ended.
func (u *upstreams) close() {
	u.closed.Store(true)
	u.cancel()
	u.mu.Lock()
	u.draining = true
	socks := make([]*upSock, 0, len(u.all))
	for s := range u.all {
		socks = append(socks, s)
	}
	u.mu.Unlock()
	for _, s := range socks {
		_ = s.conn.Close()
	}
	u.readers.Wait()
}

// exchanged receives the outcome of an exchange: the answer and the
// upstream that gave it, or an error. out, when set, collects the replies
// to clients this outcome produces, sent together at the end of the
// upstream socket's read batch it came in (replyBatch); nil: sent at once.
type exchanged interface {
	exchanged(m *dns.Msg, addr string, err error, out *replyBatch)
}

// exchange resolves q (the client's question, with its DO/CD wishes)
// within the configured timeout and hands the outcome to done, on the
// goroutine that received it (a socket's reader, a timer's, or this one
// when every upstream failed at once). Attempts rotate through the
// upstreams starting at the one that answered last; each attempt gets
// timeout/max(n,2), so a single upstream is tried twice (one lost datagram
// is not a failure). An immediate error (ICMP port unreachable, network
// unreachable) moves on at once. SERVFAIL and REFUSED from one upstream
// move on to the next; if every upstream says so, the last such answer is
// handed over.
func (u *upstreams) exchange(q dns.Question, do, cd bool, done exchanged) {
	u.exchangeFrom(q, do, cd, done, nil, nil)
}

// exchangeFrom is exchange called by a fast-path socket's reader of group
// g: g is woken before the first attempt waits for a dial or a write
// (readerGroup), so the socket is read meanwhile. qb, when set, takes the
// first attempt's query to leave with the rest of the reader's batch
// (queryBatch); nil: it is sent at once.
func (u *upstreams) exchangeFrom(q dns.Question, do, cd bool, done exchanged, g *readerGroup, qb *queryBatch) {
	n := len(u.addrs)
	if n == 0 {
		done.exchanged(nil, "", fmt.Errorf("%w: none is configured or found in the host's resolver files", errAllFailed), nil)
		return
	}
	attempts := max(n, 2)
	f := &upFetch{u: u, req: upQuery{q: q, do: do, cd: cd}, done: done,
		deadline: time.Now().Add(u.timeout), attempts: attempts,
		per: u.timeout / time.Duration(attempts), start: int(u.preferred.Load()) % n}
	f.next(g, qb)
}

// exchangeWait is exchange for a caller that waits (tests).
func (u *upstreams) exchangeWait(q dns.Question, do, cd bool) (*dns.Msg, string, error) {
	w := &waitExchange{ch: make(chan struct{})}
	u.exchange(q, do, cd, w)
	<-w.ch
	return w.m, w.addr, w.err
}

type waitExchange struct {
	ch   chan struct{}
	m    *dns.Msg
	addr string
	err  error
}

func (w *waitExchange) exchanged(m *dns.Msg, addr string, err error, _ *replyBatch) {
	w.m, w.addr, w.err = m, addr, err
	close(w.ch)
}

// upFetch is one exchange: its attempts, one at a time. Its fields change
// only on the goroutine carrying its current attempt (one at a time: an
// attempt's outcome is taken once, see upAttempt.state).
type upFetch struct {
	u        *upstreams
	req      upQuery
	done     exchanged
	deadline time.Time
	per      time.Duration
	attempts int
	start    int
	k        int // attempts begun
	last     *dns.Msg
	lastAddr string
	errs     []error
	// finished is set by the one call of done (finish): after a recovered
	// panic the fetch is answered SERVFAIL, and whatever of it was still
	// under way must not answer it again.
	finished atomic.Bool
}

// finish hands the fetch's outcome over, once (out: see exchanged).
func (f *upFetch) finish(m *dns.Msg, addr string, err error, out *replyBatch) {
	if f.finished.CompareAndSwap(false, true) {
		f.done.exchanged(m, addr, err, out)
	}
}

// recoverPanic, deferred by the goroutines that carry an attempt's outcome
// (a timer's, the TCP retry's, a socket's end), turns a panic into SERVFAIL
// for the fetch instead of the end of the process.
func (f *upFetch) recoverPanic() {
	if v := recover(); v != nil {
		f.u.panicked(v)
		f.finish(nil, "", errPanic, nil)
	}
}

// next begins the next attempt, or hands the outcome over when none is
// left. An attempt that fails before its query is sent moves on at once.
// g, when set, is the group of the socket reader making the first
// attempt, qb its batch (exchangeFrom).
func (f *upFetch) next(g *readerGroup, qb *queryBatch) {
	u := f.u
	n := len(u.addrs)
	for f.k < f.attempts {
		now := time.Now()
		if u.closed.Load() || !now.Before(f.deadline) {
			break
		}
		i := (f.start + f.k) % n
		f.k++
		dl := f.deadline
		if next := now.Add(f.per); next.Before(dl) {
			dl = next
		}
		err := u.send(f, i, now, dl, g, qb)
		if err == nil {
			return // the attempt's outcome calls result
		}
		u.stats.upQueries.Add(1)
		u.stats.upErrors.Add(1)
		f.errs = append(f.errs, fmt.Errorf("%s: %w", u.addrs[i], err))
	}
	if f.last != nil {
		f.finish(f.last, f.lastAddr, nil, nil)
		return
	}
	err := errors.Join(f.errs...)
	if err == nil {
		err = errNoAttempt
		if u.closed.Load() {
			err = errStopping
		}
	}
	soft := len(f.errs) > 0
	for _, e := range f.errs {
		soft = soft && errors.Is(e, errUnconfirmed)
	}
	if soft {
		f.finish(nil, "", fmt.Errorf("%w (%w): %w", errAllFailed, errNotCounted, err), nil)
		return
	}
	f.finish(nil, "", fmt.Errorf("%w: %w", errAllFailed, err), nil)
}

// result is the outcome of the attempt on upstream i (out: see exchanged).
func (f *upFetch) result(i int, m *dns.Msg, err error, out *replyBatch) {
	u := f.u
	addr := u.addrs[i]
	u.stats.upQueries.Add(1)
	if err != nil {
		u.stats.upErrors.Add(1)
		f.errs = append(f.errs, fmt.Errorf("%s: %w", addr, err))
		f.next(nil, nil)
		return
	}
	if (m.Rcode == dns.RcodeServerFailure || m.Rcode == dns.RcodeRefused) && f.k < f.attempts && len(u.addrs) > 1 {
		u.stats.upErrors.Add(1)
		f.last, f.lastAddr = m, addr
		f.errs = append(f.errs, fmt.Errorf("%s: answered %s", addr, dns.RcodeToString[m.Rcode]))
		f.next(nil, nil)
		return
	}
	u.preferred.Store(uint32(i))
	f.finish(m, addr, nil, out)
}

// upAttempt is one query waiting on a shared socket.
type upAttempt struct {
	f     *upFetch
	s     *upSock
	id    uint16
	seq   int // s.sent when it was added
	dl    time.Time
	state atomic.Bool // taken: by its answer, its deadline or its socket's end
}

// take claims the attempt's outcome; only the first caller gets true. The
// taker removes it from its socket.
func (a *upAttempt) take() bool {
	if !a.state.CompareAndSwap(false, true) {
		return false
	}
	a.s.remove(a)
	return true
}

// expire is the attempt's deadline. An answer arriving later is counted
// as late, not as a forgery.
func (a *upAttempt) expire() {
	defer a.f.recoverPanic()
	if a.take() {
		a.s.late(a.id)
		a.f.result(a.s.i, nil, errTimeout, nil)
	}
}

// upSock is one shared socket, connected to upstream i.
type upSock struct {
	u     *upstreams
	i     int
	conn  *net.UDPConn
	rc    syscall.RawConn // conn's, for the batched queries (queryBatch); nil: none
	batch batchConn
	peer  netip.AddrPort
	born  time.Time

	mu      sync.Mutex
	pending map[uint16]*upAttempt
	// lateIDs are the IDs of attempts that timed out or failed: an answer
	// with one is late, not forged (stats.lateReplies). At most socketUses.
	lateIDs map[uint16]struct{}
	sent    int
	retired bool
	closed  bool
	refused bool // got an ICMP unreachable error
	// timer runs sweep at timerAt (zero: not armed), the earliest deadline
	// of the attempts waiting when it was armed. One timer per socket, not
	// one per attempt: setting a runtime timer earlier than its P's others
	// wakes a thread of an idle process (the runtime's netpoller, or one
	// for an idle P) — on every forwarded query, before its query left
	// (issue 21: sequential forwarded queries) — and allocated. An attempt whose deadline is later than the
	// armed one (every attempt but the first, deadlines growing with time)
	// leaves the timer alone; sweep expires what is due and arms it again
	// for what waits.
	timer   *time.Timer
	timerAt time.Time
}

// armLocked makes sure sweep runs by dl (s.mu held).
func (s *upSock) armLocked(dl time.Time) {
	if !s.timerAt.IsZero() && !dl.Before(s.timerAt) {
		return
	}
	s.timerAt = dl
	d := time.Until(dl)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.sweep)
		return
	}
	s.timer.Reset(d)
}

// sweep expires the attempts whose deadline has come and arms the timer
// for the earliest of the others.
func (s *upSock) sweep() {
	now := time.Now()
	var due []*upAttempt
	s.mu.Lock()
	s.timerAt = time.Time{}
	var next time.Time
	for _, a := range s.pending {
		if !a.dl.After(now) {
			due = append(due, a)
		} else if next.IsZero() || a.dl.Before(next) {
			next = a.dl
		}
	}
	if !next.IsZero() && !s.closed {
		s.armLocked(next)
	}
	s.mu.Unlock()
	for _, a := range due {
		a.expire()
	}
}

// sock returns a socket of upstream i to send on, opening one where none
// is or the one there is retired. A new socket's dial wakes g first
// (readerGroup).
func (u *upstreams) sock(i int, now time.Time, g *readerGroup) (*upSock, error) {
	j := int(u.next.Add(1)) % upSocks
	if !u.mu.TryLock() {
		// Held, perhaps across another query's dial: a socket reader
		// hands its socket over before it waits.
		g.wake()
		u.mu.Lock()
	}
	defer u.mu.Unlock()
	if u.draining {
		// A drained set sends only the failover attempts of queries begun
		// on it: on a socket of upstream i still open (retired, it closes
		// with its last attempt), else on a new one the next attempts share
		// (not one socket and reader per attempt).
		for _, s := range u.socks[i] {
			if s != nil && s.usable() {
				return s, nil
			}
		}
	}
	s := u.socks[i][j]
	if s != nil {
		if s.fresh(now) {
			return s, nil
		}
		s.retire() // closes once its last attempt is done
	}
	if u.closed.Load() {
		return nil, net.ErrClosed
	}
	// UDP connect does not wait for the network, but the dial is a few
	// system calls (and Config.UpstreamControl's): rare, and a socket
	// reader hands its socket over first.
	g.wake()
	nc, err := u.dialer.DialContext(u.ctx, "udp", u.addrs[i])
	if err != nil {
		return nil, err
	}
	uc, ok := nc.(*net.UDPConn)
	if !ok {
		_ = nc.Close()
		return nil, fmt.Errorf("dnsproxy: upstream socket is a %T, not UDP", nc)
	}
	// Hundreds of answers may arrive at once for the queries in flight
	// on a socket (dnsperf keeps 500 outstanding); a dropped answer waits
	// out its attempt's timeout. Room for them, as the listening sockets
	// get. (Losses seen under the flood were the benchmark's upstream's
	// drops, docs/dns.md; this buffer is the margin, not their fix.)
	setReadBuffer(uc, upReadBuffer)
	s = &upSock{u: u, i: i, conn: uc, born: now, pending: map[uint16]*upAttempt{}, lateIDs: map[uint16]struct{}{},
		peer: addrPort(uc.RemoteAddr()), retired: u.draining}
	la, ok := uc.LocalAddr().(*net.UDPAddr)
	s.batch = newBatchConn(uc, ok && la.IP.To4() == nil)
	if rc, err := uc.SyscallConn(); err == nil {
		s.rc = rc
	}
	u.socks[i][j] = s
	u.all[s] = struct{}{}
	u.readers.Add(1)
	go s.read()
	return s, nil
}

// fresh reports whether new queries may go on s: not retired, and neither
// its uses nor its life are over.
func (s *upSock) fresh(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.retired && s.sent < socketUses && now.Sub(s.born) < socketLife
}

// send sends f's query to upstream i on a shared socket, with the deadline
// dl; an error means it was not sent (and there is no outcome to wait for).
// g is woken before it waits for a dial or for room to write (readerGroup).
// With qb set the query is queued there instead, on the socket of upstream
// i the batch already sends on if it is still fresh: it leaves with the
// batch's others (one sendmmsg per socket, queryBatch.flush), and a
// failure to send it is handed to the attempt then (upAttempt.unsent).
func (u *upstreams) send(f *upFetch, i int, now, dl time.Time, g *readerGroup, qb *queryBatch) error {
	var a *upAttempt
	for try := 0; ; try++ {
		var s *upSock
		if try == 0 {
			s = qb.sock(u, i, now)
		}
		if s == nil {
			var err error
			if s, err = u.sock(i, now, g); err != nil {
				return err
			}
		}
		a = &upAttempt{f: f, s: s, dl: dl}
		err := s.add(a)
		if err == nil {
			break
		}
		if !errors.Is(err, net.ErrClosed) || try == 2 {
			return err
		}
		// Retired and closed between sock and add: take the new one.
	}
	s := a.s
	req := f.req
	req.id = a.id
	var err error
	if qb != nil {
		err = qb.add(a, &req)
	} else {
		var b [512]byte
		var wire []byte
		wire, err = appendUpstreamQuery(b[:0], &req)
		if err == nil {
			err = writeWaking(s.conn, wire, g)
		}
	}
	if err != nil && a.take() {
		return err
	}
	return nil // sent (or queued), or its outcome was already taken (and handed on)
}

// unsent is the outcome of an attempt whose query, queued in a batch
// (queryBatch), could not be sent: as send's error is for a query sent at
// once, it is counted and the fetch moves on to its next attempt, sent at
// once (g: see send). The others of the batch are not held up by it.
func (a *upAttempt) unsent(err error, g *readerGroup) {
	f := a.f
	defer f.recoverPanic()
	if !a.take() {
		return // its socket's end or its deadline took it meanwhile
	}
	u := f.u
	u.stats.upQueries.Add(1)
	u.stats.upErrors.Add(1)
	f.errs = append(f.errs, fmt.Errorf("%s: %w", u.addrs[a.s.i], err))
	f.next(g, nil)
}

// add registers a on s with a random ID not in use there (RFC 5452 §4.3).
func (s *upSock) add(a *upAttempt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	for range 64 {
		id := newID()
		if _, used := s.pending[id]; !used {
			a.id = id
			s.pending[id] = a
			s.sent++
			a.seq = s.sent
			delete(s.lateIDs, id)
			s.armLocked(a.dl)
			return nil
		}
	}
	return errors.New("no free query ID on the upstream socket")
}

// remove forgets a; a retired socket closes with its last attempt.
func (s *upSock) remove(a *upAttempt) {
	s.mu.Lock()
	if s.pending[a.id] == a {
		delete(s.pending, a.id)
	}
	last := s.retired && len(s.pending) == 0 && !s.closed
	if last {
		s.closed = true
	}
	s.mu.Unlock()
	if last {
		_ = s.conn.Close()
	}
}

// usable reports whether a drained set may still send on s: open, and not
// refused by ICMP.
func (s *upSock) usable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && !s.refused
}

// late remembers the ID of an attempt that ended without its answer.
func (s *upSock) late(id uint16) {
	s.mu.Lock()
	s.lateIDs[id] = struct{}{}
	s.mu.Unlock()
}

// retire stops new queries on s; it closes once none waits on it.
func (s *upSock) retire() {
	s.mu.Lock()
	s.retired = true
	last := len(s.pending) == 0 && !s.closed
	if last {
		s.closed = true
	}
	s.mu.Unlock()
	if last {
		_ = s.conn.Close()
	}
}

// read is the socket's reader: it reads answers in batches until the
// socket closes, then fails the attempts still waiting on it.
func (s *upSock) read() {
	u := s.u
	defer u.readers.Done()
	bp := u.bufs.Get().(*[]byte)
	ms := make([]ipv4.Message, upBatch)
	out := newReplyBatch()
	for k := range ms {
		ms[k].Buffers = [][]byte{(*bp)[k*upstreamReadSize : (k+1)*upstreamReadSize]}
	}
	defer func() {
		for k := range ms {
			ms[k].Buffers = nil
		}
		u.bufs.Put(bp)
		u.mu.Lock()
		delete(u.all, s)
		for j, o := range u.socks[s.i] {
			if o == s {
				u.socks[s.i][j] = nil
			}
		}
		u.mu.Unlock()
		s.fail(net.ErrClosed)
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Stop()
		}
		s.timerAt = time.Time{}
		s.mu.Unlock()
	}()
	for {
		n, err := s.batch.ReadBatch(ms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
				s.unreachable(err)
				continue
			}
			time.Sleep(time.Millisecond) // never spin
			continue
		}
		// The replies to clients a batch of several answers produces leave
		// together at its end, one sendmmsg per listening socket, not one
		// sendto each (issue 21: the sends were 36 % of the forwarded
		// path's CPU). A batch of one is sent as it is delivered: nothing
		// waits for a batch that is not there.
		var o *replyBatch
		if n > 1 {
			o = out
		}
		for k := range n {
			s.deliver(ms[k].Buffers[0][:ms[k].N], ms[k].Flags, addrPort(ms[k].Addr), o)
		}
		o.flush()
	}
}

// unreachable takes an ICMP unreachable error reported on s (the socket
// is connected, so the kernel reports what came back for the upstream's
// address; Linux does, Windows not: Go turns SIO_UDP_CONNRESET off there).
// Anyone on the path can forge one, so it is not trusted far: s is retired
// (no new query goes to a port that may be closed, or that a spoofer has
// found), the attempts sent on it before the error move on at once (to the
// next attempt, on a fresh socket, where a real answer still wins), and
// the error counts against the upstream (Proxy.resolved) only when the
// socket was opened after the upstream's first such error since it last
// answered: a spoofer must then have found a fresh random port as well.
func (s *upSock) unreachable(err error) {
	u := s.u
	s.mu.Lock()
	s.refused = true
	upTo := s.sent
	s.mu.Unlock()
	s.retire()
	at := u.refusedAt[s.i].Load()
	if at == 0 {
		u.refusedAt[s.i].CompareAndSwap(0, time.Now().UnixNano())
	}
	if at == 0 || s.born.UnixNano() <= at {
		err = fmt.Errorf("%w (%w)", err, errUnconfirmed)
	}
	s.failSent(upTo, err)
}

// fail hands err to every attempt waiting on s (it closed).
func (s *upSock) fail(err error) { s.failSent(-1, err) }

// failSent hands err to the attempts waiting on s that were added before
// the upTo-th query on it (every one if upTo < 0).
func (s *upSock) failSent(upTo int, err error) {
	s.mu.Lock()
	as := make([]*upAttempt, 0, len(s.pending))
	for _, a := range s.pending {
		if upTo < 0 || a.seq <= upTo {
			as = append(as, a)
		}
	}
	s.mu.Unlock()
	for _, a := range as {
		s.failOne(a, err)
	}
}

// failOne hands err to a if nothing else took it; a panic in what follows
// costs a's fetch a SERVFAIL, not the socket's reader.
func (s *upSock) failOne(a *upAttempt, err error) {
	defer a.f.recoverPanic()
	if a.take() {
		s.late(a.id)
		a.f.result(s.i, nil, err, nil)
	}
}

// deliver takes one datagram read from s: dropped and counted unless it
// comes from the upstream's address with the ID of a waiting attempt and
// that attempt's question; else it is the attempt's answer. An answer for
// an attempt that already ended (timed out) is counted as late. A datagram
// that fills the buffer may have been cut and is treated as truncated
// (retried over TCP), as is one with TC set — once its header and question
// match. A panic (unpacking a hostile datagram, or carrying the answer on)
// answers that attempt's query SERVFAIL, counted and logged at most once
// per interval; the reader goes on with the next datagram.
// out, when set, collects the replies to clients the answer produces
// (replyBatch), flushed by the reader at the end of the batch.
func (s *upSock) deliver(pkt []byte, flags int, from netip.AddrPort, out *replyBatch) {
	u := s.u
	if len(pkt) < 12 || from.Addr().Unmap() != s.peer.Addr().Unmap() || from.Port() != s.peer.Port() {
		u.stats.badReplies.Add(1)
		return
	}
	id := binary.BigEndian.Uint16(pkt)
	s.mu.Lock()
	a := s.pending[id]
	late := false
	if a == nil {
		_, late = s.lateIDs[id]
	}
	s.mu.Unlock()
	if a == nil {
		if late {
			u.stats.lateReplies.Add(1)
		} else {
			u.stats.badReplies.Add(1)
		}
		return
	}
	taken := false
	defer func() {
		if v := recover(); v != nil {
			u.panicked(v)
			if taken || a.take() {
				a.f.finish(nil, "", errPanic, nil)
			}
		}
	}()
	var m *dns.Msg
	if len(pkt) == upstreamReadSize || (msgTrunc != 0 && flags&msgTrunc != 0) {
		if !questionMatches(pkt, id, a.f.req.q) {
			u.stats.badReplies.Add(1)
			return
		}
		m = &dns.Msg{MsgHdr: dns.MsgHdr{Truncated: true}}
	} else {
		m = new(dns.Msg)
		req := upQuery{id: id, q: a.f.req.q}
		if err := u.unpack(m, pkt); err != nil || !replyMatches(&req, m) {
			u.stats.badReplies.Add(1)
			return
		}
	}
	if !a.take() {
		u.stats.lateReplies.Add(1) // timed out meanwhile
		return
	}
	taken = true
	if u.refusedAt[s.i].Load() != 0 {
		u.refusedAt[s.i].Store(0) // it answers: ICMP errors start over
	}
	if !m.Truncated {
		a.f.result(s.i, m, nil, out)
		return
	}
	// TCP (RFC 7766), within the attempt's deadline, on a goroutine of its
	// own: rare, and it must not hold up the socket's other answers.
	u.stats.tcpRetries.Add(1)
	go func() {
		defer a.f.recoverPanic()
		ctx, cancel := context.WithDeadline(u.ctx, a.dl)
		defer cancel()
		req := a.f.req
		req.id = id
		m, err := u.tcp(ctx, u.addrs[s.i], &req)
		a.f.result(s.i, m, err, nil)
	}()
}

// questionMatches checks the header and question of a datagram that may
// have been cut (it filled the buffer), before it sends its attempt to TCP:
// a response to a standard query with ID id and the question q.
func questionMatches(pkt []byte, id uint16, q dns.Question) bool {
	if len(pkt) < 12 || binary.BigEndian.Uint16(pkt) != id || pkt[2]&0x80 == 0 || (pkt[2]>>3)&0xF != dns.OpcodeQuery ||
		binary.BigEndian.Uint16(pkt[4:]) != 1 {
		return false
	}
	name, off, err := dns.UnpackDomainName(pkt, 12)
	if err != nil || off+4 > len(pkt) {
		return false
	}
	return binary.BigEndian.Uint16(pkt[off:]) == q.Qtype && binary.BigEndian.Uint16(pkt[off+2:]) == q.Qclass &&
		strings.EqualFold(name, q.Name)
}

// tcp sends req over a new TCP connection (RFC 1035 §4.2.2 framing).
func (u *upstreams) tcp(ctx context.Context, addr string, req *upQuery) (*dns.Msg, error) {
	out, err := appendUpstreamQuery(make([]byte, 2, 2+512), req)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(out, uint16(len(out)-2))
	c, err := u.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(out); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	if err := u.unpack(m, buf); err != nil {
		u.stats.badReplies.Add(1)
		return nil, fmt.Errorf("malformed TCP answer: %w", err)
	}
	if !replyMatches(req, m) {
		u.stats.badReplies.Add(1)
		return nil, errors.New("TCP answer does not match the question")
	}
	return m, nil
}
