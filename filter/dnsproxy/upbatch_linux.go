package dnsproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/net/ipv4"
)

// queryBatch collects the upstream queries that the cache misses of one
// read batch of a fast-path socket reader produce (udpWorker.step), and
// sends them at the end of the batch with one sendmmsg per upstream socket
// instead of one sendto each (issue 21: the upstream query's send was 23 %
// of the forwarded path's CPU; the replies to clients leave in batches
// already, replyBatch). It is its reader's own: one goroutine uses it.
//
// The misses of one batch that go to the same upstream share a socket
// (sock): the first takes one as any query does (round robin over the
// upstream's upSocks), the others the same while it is fresh. Queries in
// flight still spread over the upstream's sockets batch by batch, each
// with a random ID.
//
// What a batch keeps of its sockets and attempts is let go at each flush:
// an upstream socket is retired after socketUses queries, and a retired
// socket closes with its last attempt.
type queryBatch struct {
	slots []querySlot // [:n] wait, in the order added
	n     int
	socks []*upSock      // the sockets of slots[:n], in the order first used
	ms    []ipv4.Message // one socket's at a time; each slot's Buffers reused
	at    []int          // the slot of each of ms
	raw   *rawBatch
}

// querySlot is one queued query: its attempt, and its wire form packed in
// buf (kept from batch to batch).
type querySlot struct {
	a    *upAttempt
	buf  []byte
	wire []byte
}

func newQueryBatch() *queryBatch { return &queryBatch{raw: newRawBatch(nil, false)} }

// sock is the socket of u's upstream i that the batch already sends on, if
// it is still fresh; nil if none (or the batch is nil).
func (q *queryBatch) sock(u *upstreams, i int, now time.Time) *upSock {
	if q == nil {
		return nil
	}
	for _, s := range q.socks {
		if s.u == u && s.i == i && s.rc != nil && s.fresh(now) {
			return s
		}
	}
	return nil
}

// add queues the query req of the attempt a (registered on its socket
// a.s) for the next flush. An error (a name that does not pack) means it
// is not queued.
func (q *queryBatch) add(a *upAttempt, req *upQuery) error {
	if a.s.rc == nil {
		// No raw access to the socket (never for a real UDP socket): sent
		// at once, as without a batch.
		var b [512]byte
		wire, err := appendUpstreamQuery(b[:0], req)
		if err != nil {
			return err
		}
		return writeWaking(a.s.conn, wire, nil)
	}
	if q.n == len(q.slots) {
		q.slots = append(q.slots, querySlot{buf: make([]byte, 0, 512)})
	}
	sl := &q.slots[q.n]
	wire, err := appendUpstreamQuery(sl.buf[:0], req)
	if err != nil {
		return err
	}
	sl.a, sl.wire = a, wire // in buf: a name is 255 octets at most
	q.n++
	for _, s := range q.socks {
		if s == a.s {
			return nil
		}
	}
	q.socks = append(q.socks, a.s)
	return nil
}

// flush sends what waits, socket by socket in the order first used, each
// socket's queries in the order added, as many per sendmmsg as the kernel
// takes. A query that cannot be sent is handed to its attempt
// (upAttempt.unsent: counted, and its fetch tries its next upstream at
// once), and the next goes on: one failing socket or query does not keep
// the others. g, the reader's group, is woken before a send waits for room
// (readerGroup). A nil batch has none.
func (q *queryBatch) flush(g *readerGroup) {
	if q == nil || q.n == 0 {
		return
	}
	// Taken off the batch first: a failed query's next attempt is sent at
	// once (unsent), never into this batch, but nothing here relies on it.
	n := q.n
	q.n = 0
	var failed []int // slots not sent (rare: allocated only then)
	var errs []error
	for _, s := range q.socks {
		q.at = q.at[:0]
		for k := range n {
			if q.slots[k].a.s != s {
				continue
			}
			j := len(q.at)
			if j == len(q.ms) {
				q.ms = append(q.ms, ipv4.Message{Buffers: make([][]byte, 1)})
			}
			q.ms[j].Buffers[0] = q.slots[k].wire
			q.at = append(q.at, k)
		}
		q.raw.rc = s.rc
		ms := q.ms[:len(q.at)]
		for sent := 0; sent < len(ms); {
			q.raw.wake = g
			k, err := q.raw.WriteBatch(ms[sent:], 0)
			q.raw.wake = nil
			if err == nil && k <= 0 {
				err = io.ErrShortWrite // never: sendmmsg sends one or fails
			}
			if err != nil {
				// The first of ms[sent:] failed; the rest go on.
				failed = append(failed, q.at[sent])
				errs = append(errs, writeError(s, err))
				sent++
				continue
			}
			sent += k
		}
	}
	q.raw.rc = nil
	for k := range q.ms {
		q.ms[k].Buffers[0] = nil
	}
	clear(q.socks)
	q.socks = q.socks[:0]
	var as []*upAttempt
	for _, k := range failed {
		as = append(as, q.slots[k].a)
	}
	for k := range n {
		q.slots[k].a, q.slots[k].wire = nil, nil
	}
	for j, a := range as {
		a.unsent(errs[j], g)
	}
}

// writeError is a failed send on s as writeWaking reports one.
func writeError(s *upSock, err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return &net.OpError{Op: "write", Net: "udp", Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: se}
	}
	return err
}
