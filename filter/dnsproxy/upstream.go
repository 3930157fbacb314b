package dnsproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// upstreamUDPSize is the EDNS0 buffer size the proxy advertises, upstream
// and to clients: 1232 octets avoids IP fragmentation on every common path
// (DNS Flag Day 2020).
const upstreamUDPSize = 1232

// upstreamReadSize is the buffer an upstream UDP answer is read into: above
// the size advertised (an upstream must not exceed it, RFC 6891 §6.2.5) with
// room to spare. One is held per query in flight; 64 KiB buffers were most of
// the agent's heap under load (issue 21), and 4 KiB ones still 5 MB of the
// live heap under the forwarded flood (~360 queries waiting on the upstream,
// and the pool's spares): 2 KiB is 816 octets above what any compliant
// answer takes. A datagram that fills it may have been cut and is treated as
// truncated (retried over TCP).
const upstreamReadSize = 2048

// errAllFailed is returned when no upstream produced an answer in time.
var errAllFailed = errors.New("every upstream failed")

// Upstream UDP sockets are pooled: opening and closing a socket per query
// costs more than the rest of the query. A socket serves one query at a
// time and at most socketUses queries, then it is closed and a new one (a
// new random source port) takes its place, so the port an off-path spoofer
// would have to hit keeps changing (RFC 5452 §9.2). A socket whose query
// failed is never reused.
const (
	socketPool = 256
	socketUses = 100
)

type pooledConn struct {
	net.Conn
	uses int
}

// upstreams sends queries to the resolvers with failover.
type upstreams struct {
	addrs     []string
	timeout   time.Duration
	dialer    net.Dialer
	preferred atomic.Uint32 // index of the upstream that answered last
	stats     *counters
	bufs      sync.Pool
	pools     []chan *pooledConn // per upstream
	closed    atomic.Bool
}

func newUpstreams(addrs []string, timeout time.Duration, control func(string, string, syscall.RawConn) error, st *counters) *upstreams {
	u := &upstreams{addrs: addrs, timeout: timeout, stats: st}
	u.dialer.Control = control
	u.bufs.New = func() any { b := make([]byte, upstreamReadSize); return &b }
	for range addrs {
		u.pools = append(u.pools, make(chan *pooledConn, socketPool))
	}
	return u
}

// close closes the pooled sockets.
func (u *upstreams) close() {
	u.closed.Store(true)
	for _, p := range u.pools {
		for {
			select {
			case c := <-p:
				_ = c.Close()
				continue
			default:
			}
			break
		}
	}
}

// exchange resolves q (the client's question, with its DO/CD wishes) within
// the configured timeout. Attempts rotate through the upstreams starting at
// the one that answered last; each attempt gets timeout/max(n,2), so a single
// upstream is tried twice (one lost datagram is not a failure). An immediate
// error (ICMP port unreachable, network unreachable) moves on at once.
// SERVFAIL and REFUSED from one upstream move on to the next; if every
// upstream says so, the last such answer is returned.
func (u *upstreams) exchange(ctx context.Context, q dns.Question, do, cd bool) (*dns.Msg, string, error) {
	n := len(u.addrs)
	if n == 0 {
		return nil, "", errAllFailed
	}
	// A deadline, not a derived context: deriving from the proxy's context
	// on every query contends on its lock. ctx is checked between attempts
	// (shutdown) and bounds dials.
	deadline := time.Now().Add(u.timeout)
	attempts := max(n, 2)
	per := u.timeout / time.Duration(attempts)
	start := int(u.preferred.Load()) % n

	req := upQuery{q: q, do: do, cd: cd} // its ID is set per attempt, below

	var last *dns.Msg
	var lastAddr string
	var errs []error
	for k := range attempts {
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			break
		}
		i := (start + k) % n
		addr := u.addrs[i]
		req.id = newID() // a fresh ID per attempt: a late reply to the last one is ignored
		dl := deadline
		if next := time.Now().Add(per); next.Before(dl) {
			dl = next
		}
		m, err := u.attempt(ctx, i, dl, &req)
		u.stats.upQueries.Add(1)
		if err != nil {
			u.stats.upErrors.Add(1)
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		if (m.Rcode == dns.RcodeServerFailure || m.Rcode == dns.RcodeRefused) && k < attempts-1 && n > 1 {
			u.stats.upErrors.Add(1)
			last, lastAddr = m, addr
			errs = append(errs, fmt.Errorf("%s: answered %s", addr, dns.RcodeToString[m.Rcode]))
			continue
		}
		u.preferred.Store(uint32(i))
		return m, addr, nil
	}
	if last != nil {
		return last, lastAddr, nil
	}
	return nil, "", fmt.Errorf("%w: %w", errAllFailed, errors.Join(errs...))
}

// attempt asks one upstream over UDP, retrying over TCP when the answer is
// truncated (RFC 7766).
func (u *upstreams) attempt(ctx context.Context, i int, deadline time.Time, req *upQuery) (*dns.Msg, error) {
	m, err := u.udp(ctx, i, deadline, req)
	if err != nil {
		return nil, err
	}
	if !m.Truncated {
		return m, nil
	}
	u.stats.tcpRetries.Add(1)
	tctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return u.tcp(tctx, u.addrs[i], req)
}

// udp sends req from a connected socket (pooled, see socketPool): the kernel
// picked a random source port (RFC 5452 §9.2) and only datagrams from the
// upstream reach it. Datagrams that do not match the ID and question are
// ignored and counted, and the wait goes on until the deadline.
func (u *upstreams) udp(ctx context.Context, i int, deadline time.Time, req *upQuery) (*dns.Msg, error) {
	// One pooled buffer carries the query out and the answer in (the
	// query is written before the answer is read into it).
	bp := u.bufs.Get().(*[]byte)
	defer u.bufs.Put(bp)
	buf := *bp
	wire, err := appendUpstreamQuery(buf[:0], req)
	if err != nil {
		return nil, err
	}
	var c *pooledConn
	select {
	case c = <-u.pools[i]:
	default:
		nc, err := u.dialer.DialContext(ctx, "udp", u.addrs[i]) // UDP connect does not block
		if err != nil {
			return nil, err
		}
		c = &pooledConn{Conn: nc}
	}
	ok := false
	defer func() {
		c.uses++
		if ok && c.uses < socketUses && !u.closed.Load() {
			select {
			case u.pools[i] <- c:
				return
			default:
			}
		}
		_ = c.Close()
	}()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(wire); err != nil {
		return nil, err
	}
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if n == len(buf) {
			// Possibly cut: ask again over TCP (attempt), as for TC.
			ok = true
			return &dns.Msg{MsgHdr: dns.MsgHdr{Truncated: true}}, nil
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil || !replyMatches(req, m) {
			u.stats.badReplies.Add(1)
			continue
		}
		ok = true
		return m, nil
	}
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
