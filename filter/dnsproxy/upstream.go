package dnsproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
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
// outstanding queries). Deadlines are runtime timers, which take a
// goroutine only when they fire. A socket is retired after socketUses
// queries or socketLife, so the port a spoofer must hit keeps changing; it
// is closed once its last query is answered or timed out.
const (
	upSocks    = 2
	socketUses = 4096
	socketLife = 30 * time.Second
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

	mu       sync.Mutex
	socks    [][]*upSock // per upstream, upSocks each (nil until first used)
	all      map[*upSock]struct{}
	draining bool // every socket is retired (replaced upstream set, or closing)
	closed   atomic.Bool
}

func newUpstreams(addrs []string, timeout time.Duration, control func(string, string, syscall.RawConn) error, st *counters) *upstreams {
	u := &upstreams{addrs: addrs, timeout: timeout, stats: st, all: map[*upSock]struct{}{}}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	u.dialer.Control = control
	u.bufs.New = func() any { b := make([]byte, upBatch*upstreamReadSize); return &b }
	for range addrs {
		u.socks = append(u.socks, make([]*upSock, upSocks))
	}
	return u
}

// drain retires every socket: queries waiting on them are still answered
// (or time out), then each closes; nothing new is sent on them. It is what
// a replaced upstream set gets (watchResolvers).
func (u *upstreams) drain() {
	u.mu.Lock()
	u.draining = true
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
// upstream that gave it, or an error.
type exchanged interface {
	exchanged(m *dns.Msg, addr string, err error)
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
	n := len(u.addrs)
	if n == 0 {
		done.exchanged(nil, "", errAllFailed)
		return
	}
	attempts := max(n, 2)
	f := &upFetch{u: u, req: upQuery{q: q, do: do, cd: cd}, done: done,
		deadline: time.Now().Add(u.timeout), attempts: attempts,
		per: u.timeout / time.Duration(attempts), start: int(u.preferred.Load()) % n}
	f.next()
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

func (w *waitExchange) exchanged(m *dns.Msg, addr string, err error) {
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
}

// next begins the next attempt, or hands the outcome over when none is
// left. An attempt that fails before its query is sent moves on at once.
func (f *upFetch) next() {
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
		err := u.send(f, i, now, dl)
		if err == nil {
			return // the attempt's outcome calls result
		}
		u.stats.upQueries.Add(1)
		u.stats.upErrors.Add(1)
		f.errs = append(f.errs, fmt.Errorf("%s: %w", u.addrs[i], err))
	}
	if f.last != nil {
		f.done.exchanged(f.last, f.lastAddr, nil)
		return
	}
	f.done.exchanged(nil, "", fmt.Errorf("%w: %w", errAllFailed, errors.Join(f.errs...)))
}

// result is the outcome of the attempt on upstream i.
func (f *upFetch) result(i int, m *dns.Msg, err error) {
	u := f.u
	addr := u.addrs[i]
	u.stats.upQueries.Add(1)
	if err != nil {
		u.stats.upErrors.Add(1)
		f.errs = append(f.errs, fmt.Errorf("%s: %w", addr, err))
		f.next()
		return
	}
	if (m.Rcode == dns.RcodeServerFailure || m.Rcode == dns.RcodeRefused) && f.k < f.attempts && len(u.addrs) > 1 {
		u.stats.upErrors.Add(1)
		f.last, f.lastAddr = m, addr
		f.errs = append(f.errs, fmt.Errorf("%s: answered %s", addr, dns.RcodeToString[m.Rcode]))
		f.next()
		return
	}
	u.preferred.Store(uint32(i))
	f.done.exchanged(m, addr, nil)
}

// upAttempt is one query waiting on a shared socket.
type upAttempt struct {
	f     *upFetch
	s     *upSock
	id    uint16
	dl    time.Time
	state atomic.Bool // taken: by its answer, its timer or its socket's end
	timer atomic.Pointer[time.Timer]
}

// take claims the attempt's outcome; only the first caller gets true. The
// taker removes it from its socket and stops its timer.
func (a *upAttempt) take() bool {
	if !a.state.CompareAndSwap(false, true) {
		return false
	}
	if t := a.timer.Load(); t != nil {
		t.Stop()
	}
	a.s.remove(a)
	return true
}

// expire is the attempt's deadline.
func (a *upAttempt) expire() {
	if a.take() {
		a.f.result(a.s.i, nil, errTimeout)
	}
}

// upSock is one shared socket, connected to upstream i.
type upSock struct {
	u     *upstreams
	i     int
	conn  *net.UDPConn
	batch batchConn
	peer  netip.AddrPort
	born  time.Time

	mu      sync.Mutex
	pending map[uint16]*upAttempt
	sent    int
	retired bool
	closed  bool
}

// sock returns a socket of upstream i to send on, opening one where none
// is or the one there is retired.
func (u *upstreams) sock(i int, now time.Time) (*upSock, error) {
	j := int(u.next.Add(1)) % upSocks
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.socks[i][j]
	if s != nil {
		s.mu.Lock()
		fresh := !s.retired && s.sent < socketUses && now.Sub(s.born) < socketLife
		s.mu.Unlock()
		if fresh {
			return s, nil
		}
		s.retire() // closes once its last attempt is done
	}
	if u.closed.Load() {
		return nil, net.ErrClosed
	}
	nc, err := u.dialer.DialContext(u.ctx, "udp", u.addrs[i]) // UDP connect does not block
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
	s = &upSock{u: u, i: i, conn: uc, born: now, pending: map[uint16]*upAttempt{},
		peer: addrPort(uc.RemoteAddr()), retired: u.draining}
	if a, ok := uc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		s.batch = ipv6.NewPacketConn(uc)
	} else {
		s.batch = ipv4.NewPacketConn(uc)
	}
	u.socks[i][j] = s
	u.all[s] = struct{}{}
	u.readers.Add(1)
	go s.read()
	return s, nil
}

// send sends f's query to upstream i on a shared socket, with the deadline
// dl; an error means it was not sent (and there is no outcome to wait for).
func (u *upstreams) send(f *upFetch, i int, now, dl time.Time) error {
	var a *upAttempt
	for try := 0; ; try++ {
		s, err := u.sock(i, now)
		if err != nil {
			return err
		}
		a = &upAttempt{f: f, s: s, dl: dl}
		err = s.add(a)
		if err == nil {
			break
		}
		if !errors.Is(err, net.ErrClosed) || try == 2 {
			return err
		}
		// Retired and closed between sock and add: take the new one.
	}
	s := a.s
	// The timer is set after the attempt is visible, so an answer may come
	// first: take stops whatever timer is set by then, and a timer that
	// fires after its attempt was taken does nothing.
	a.timer.Store(time.AfterFunc(dl.Sub(now), a.expire))
	if a.state.Load() {
		a.timer.Load().Stop()
	}
	req := f.req
	req.id = a.id
	var b [512]byte
	wire, err := appendUpstreamQuery(b[:0], &req)
	if err == nil {
		_, err = s.conn.Write(wire)
	}
	if err != nil && a.take() {
		return err
	}
	return nil // sent, or its outcome was already taken (and handed on)
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
	}()
	for {
		n, err := s.batch.ReadBatch(ms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
				// ICMP unreachable from the upstream (the socket is
				// connected): every query waiting on it moves on at once.
				s.fail(err)
				continue
			}
			time.Sleep(time.Millisecond) // never spin
			continue
		}
		for k := range n {
			s.deliver(ms[k].Buffers[0][:ms[k].N], ms[k].Flags, addrPort(ms[k].Addr))
		}
	}
}

// fail hands err to every attempt waiting on s.
func (s *upSock) fail(err error) {
	s.mu.Lock()
	as := make([]*upAttempt, 0, len(s.pending))
	for _, a := range s.pending {
		as = append(as, a)
	}
	s.mu.Unlock()
	for _, a := range as {
		if a.take() {
			a.f.result(s.i, nil, err)
		}
	}
}

// deliver takes one datagram read from s: dropped and counted unless it
// comes from the upstream's address with the ID of a waiting attempt and
// that attempt's question; else it is the attempt's answer. A datagram that
// fills the buffer may have been cut and is treated as truncated (retried
// over TCP), as is one with TC set.
func (s *upSock) deliver(pkt []byte, flags int, from netip.AddrPort) {
	u := s.u
	if len(pkt) < 12 || from.Addr().Unmap() != s.peer.Addr().Unmap() || from.Port() != s.peer.Port() {
		u.stats.badReplies.Add(1)
		return
	}
	id := binary.BigEndian.Uint16(pkt)
	s.mu.Lock()
	a := s.pending[id]
	s.mu.Unlock()
	if a == nil {
		u.stats.badReplies.Add(1)
		return
	}
	var m *dns.Msg
	if len(pkt) == upstreamReadSize || (msgTrunc != 0 && flags&msgTrunc != 0) {
		m = &dns.Msg{MsgHdr: dns.MsgHdr{Truncated: true}}
	} else {
		m = new(dns.Msg)
		req := upQuery{id: id, q: a.f.req.q}
		if err := m.Unpack(pkt); err != nil || !replyMatches(&req, m) {
			u.stats.badReplies.Add(1)
			return
		}
	}
	if !a.take() {
		return // timed out meanwhile
	}
	if !m.Truncated {
		a.f.result(s.i, m, nil)
		return
	}
	// TCP (RFC 7766), within the attempt's deadline, on a goroutine of its
	// own: rare, and it must not hold up the socket's other answers.
	u.stats.tcpRetries.Add(1)
	go func() {
		ctx, cancel := context.WithDeadline(u.ctx, a.dl)
		defer cancel()
		req := a.f.req
		req.id = id
		m, err := u.tcp(ctx, u.addrs[s.i], &req)
		a.f.result(s.i, m, err)
	}()
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
	if err := m.Unpack(buf); err != nil {
		u.stats.badReplies.Add(1)
		return nil, fmt.Errorf("malformed TCP answer: %w", err)
	}
	if !replyMatches(req, m) {
		u.stats.badReplies.Add(1)
		return nil, errors.New("TCP answer does not match the question")
	}
	return m, nil
}
