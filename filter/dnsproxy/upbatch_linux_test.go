package dnsproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// rawUpstream is a plain UDP socket on loopback standing for an upstream:
// it records every query it reads (name, ID, source) in order, and answers
// each with an A record unless told not to.
type rawUpstream struct {
	c      *net.UDPConn
	got    chan seenQuery
	answer bool
}

type seenQuery struct {
	name string
	id   uint16
	from netip.AddrPort
}

func newRawUpstream(t *testing.T, answer bool) *rawUpstream {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	u := &rawUpstream{c: c, got: make(chan seenQuery, 256), answer: answer}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) != nil || len(m.Question) != 1 {
				continue
			}
			u.got <- seenQuery{name: m.Question[0].Name, id: m.Id, from: from}
			if !u.answer {
				continue
			}
			r := new(dns.Msg)
			r.SetReply(m)
			rr, _ := dns.NewRR(m.Question[0].Name + " 60 IN A 192.0.2.7")
			r.Answer = []dns.RR{rr}
			b, _ := r.Pack()
			_, _ = c.WriteToUDPAddrPort(b, from)
		}
	}()
	return u
}

func (u *rawUpstream) addr() string { return u.c.LocalAddr().String() }

// next is the next query the upstream read, or a failure after d.
func (u *rawUpstream) next(t *testing.T, d time.Duration) seenQuery {
	t.Helper()
	select {
	case q := <-u.got:
		return q
	case <-time.After(d):
		t.Fatal("no query reached the upstream")
		return seenQuery{}
	}
}

// none checks that no query reaches the upstream within d.
func (u *rawUpstream) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case q := <-u.got:
		t.Fatalf("query %s reached the upstream before the batch was flushed", q.name)
	case <-time.After(d):
	}
}

// The queries a batch collects leave at its flush, not before: every one
// reaches its real upstream on loopback, each upstream's in the order
// added, those of one upstream on one socket (one source port); each is
// answered through the usual path. A second round reuses the batch.
func TestQueryBatchOrderAndSharedSocket(t *testing.T) {
	up1, up2 := newRawUpstream(t, true), newRawUpstream(t, true)
	var st counters
	u1 := newUpstreams([]string{up1.addr()}, 3*time.Second, nil, &st)
	u2 := newUpstreams([]string{up2.addr()}, 3*time.Second, nil, &st)
	defer u1.close()
	defer u2.close()
	qb := newQueryBatch()
	for round := range 2 {
		var recs []*recorder
		var names1, names2 []string
		for k := range 6 {
			rec := newRecorder()
			recs = append(recs, rec)
			name := fmt.Sprintf("r%d-q%d.example.", round, k)
			if k%3 == 1 { // interleaved: 1 and 4 to the second upstream
				names2 = append(names2, name)
				u2.exchangeFrom(aQuestion(name), false, false, rec, nil, qb)
			} else {
				names1 = append(names1, name)
				u1.exchangeFrom(aQuestion(name), false, false, rec, nil, qb)
			}
		}
		up1.none(t, 50*time.Millisecond)
		up2.none(t, 0)
		if qb.n != 6 || len(qb.socks) != 2 {
			t.Fatalf("round %d: batch holds %d queries on %d sockets, want 6 on 2", round, qb.n, len(qb.socks))
		}
		qb.flush(nil)
		check := func(up *rawUpstream, names []string) {
			t.Helper()
			var port netip.AddrPort
			for j, want := range names {
				q := up.next(t, 2*time.Second)
				if q.name != want {
					t.Fatalf("round %d: upstream got %s, want %s (order)", round, q.name, want)
				}
				if j == 0 {
					port = q.from
				} else if q.from != port {
					t.Errorf("round %d: %s came from %v, the batch's first from %v: not one socket", round, want, q.from, port)
				}
			}
		}
		check(up1, names1)
		check(up2, names2)
		for k, rec := range recs {
			m, err := rec.wait(t, 2*time.Second)
			if err != nil || len(m.Answer) != 1 {
				t.Fatalf("round %d: query %d: %v, %v", round, k, m, err)
			}
		}
		if qb.n != 0 || len(qb.socks) != 0 {
			t.Fatalf("round %d: batch still holds %d queries, %d sockets", round, qb.n, len(qb.socks))
		}
		for k := range qb.slots {
			if qb.slots[k].a != nil || qb.slots[k].wire != nil {
				t.Fatalf("round %d: slot %d still holds its attempt", round, k)
			}
		}
	}
}

// A query the kernel refuses in the middle of a socket's batch (too large
// for a datagram: sendmmsg stops before it and fails it on the next call)
// does not keep back the others of the batch, before and after it; its
// failure goes to its attempt, whose fetch moves on at once to the next
// upstream and is answered there.
func TestQueryBatchPartialSendFailsOver(t *testing.T) {
	up1, up2 := newRawUpstream(t, true), newRawUpstream(t, true)
	var st counters
	u := newUpstreams([]string{up1.addr(), up2.addr()}, 10*time.Second, nil, &st)
	defer u.close()
	qb := newQueryBatch()
	names := []string{"a.example.", "b.example.", "c.example.", "d.example.", "e.example."}
	var recs []*recorder
	for _, name := range names {
		rec := newRecorder()
		recs = append(recs, rec)
		u.exchangeFrom(aQuestion(name), false, false, rec, nil, qb)
	}
	// Each attempt waits 5 s (10 s over two upstreams), longer than the
	// checks below: a refused query reaches upstream 2 in time only if
	// its failure is handed over at the flush, not at its deadline.
	// Every query went to upstream 1 (preferred); the third is spoiled
	// so that the kernel refuses it (EMSGSIZE), and so is the last.
	huge := make([]byte, 70000)
	qb.slots[2].wire = huge
	qb.slots[4].wire = huge
	qb.flush(nil)
	for _, want := range []string{"a.example.", "b.example.", "d.example."} {
		if q := up1.next(t, 2*time.Second); q.name != want {
			t.Fatalf("upstream 1 got %s, want %s", q.name, want)
		}
	}
	// The refused ones are asked of upstream 2, in the order they failed.
	for _, want := range []string{"c.example.", "e.example."} {
		if q := up2.next(t, 2*time.Second); q.name != want {
			t.Fatalf("upstream 2 got %s, want %s", q.name, want)
		}
	}
	for k, rec := range recs {
		m, err := rec.wait(t, 2*time.Second)
		if err != nil || len(m.Answer) != 1 {
			t.Fatalf("%s: %v, %v", names[k], m, err)
		}
	}
	if got := st.upErrors.Load(); got != 2 {
		t.Errorf("upstream errors = %d, want 2 (one per refused query)", got)
	}
}

// A socket that fails every send (closed under the batch) loses only its
// own queries, each failed to its attempt as a send error is today (here
// taken first by the socket's end, and asked again on a fresh socket);
// the other socket's queries in the same batch all leave. A single
// upstream whose queries all fail is reported per query.
func TestQueryBatchFailedSocketIsolated(t *testing.T) {
	up1, up2 := newRawUpstream(t, true), newRawUpstream(t, true)
	var st counters
	u1 := newUpstreams([]string{up1.addr()}, 10*time.Second, nil, &st)
	u2 := newUpstreams([]string{up2.addr()}, 10*time.Second, nil, &st)
	defer u1.close()
	defer u2.close()
	qb := newQueryBatch()
	var recs1, recs2 []*recorder
	for k := range 4 {
		r1, r2 := newRecorder(), newRecorder()
		recs1, recs2 = append(recs1, r1), append(recs2, r2)
		u1.exchangeFrom(aQuestion(fmt.Sprintf("x%d.example.", k)), false, false, r1, nil, qb)
		u2.exchangeFrom(aQuestion(fmt.Sprintf("y%d.example.", k)), false, false, r2, nil, qb)
	}
	_ = qb.socks[0].conn.Close() // u1's socket
	qb.flush(nil)
	for k := range 4 {
		if q := up2.next(t, 2*time.Second); q.name != fmt.Sprintf("y%d.example.", k) {
			t.Fatalf("upstream 2 got %s, want y%d", q.name, k)
		}
	}
	for k := range 4 {
		if m, err := recs2[k].wait(t, 2*time.Second); err != nil || len(m.Answer) != 1 {
			t.Fatalf("y%d: %v, %v", k, m, err)
		}
		// u1's queries: their second attempt, on a fresh socket, is answered.
		if m, err := recs1[k].wait(t, 3*time.Second); err != nil || len(m.Answer) != 1 {
			t.Fatalf("x%d: %v, %v", k, m, err)
		}
	}

	// The failure path of flush itself, with no socket's end taking the
	// attempts first: a socket whose sends all fail (its descriptor shut
	// for writing) hands each query's error to its attempt.
	up3 := newRawUpstream(t, false)
	u3 := newUpstreams([]string{up3.addr()}, 3*time.Second, nil, &st)
	defer u3.close()
	var recs3 []*recorder
	for k := range 3 {
		r := newRecorder()
		recs3 = append(recs3, r)
		u3.exchangeFrom(aQuestion(fmt.Sprintf("z%d.example.", k)), false, false, r, nil, qb)
	}
	rc := qb.socks[0].rc
	_ = rc.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_WR) })
	qb.flush(nil)
	for k, r := range recs3 {
		// Attempt 1 failed at the flush (EPIPE); attempt 2, sent at once
		// on another socket, is not answered: every attempt failed, and
		// the error says how each did.
		_, err := r.wait(t, 4*time.Second)
		if !errors.Is(err, errAllFailed) || !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("z%d: err = %v, want every upstream failed with EPIPE", k, err)
		}
	}
}

// Cache misses a client sends back to back (read by the proxy's socket
// readers in batches of several, whose upstream queries leave together)
// are all forwarded and all answered, each with its own answer, by the
// first attempt: the per-attempt timeout (4 s) is longer than the test
// waits, so a query left in a batch that is never flushed fails it (its
// second attempt, sent at once, would otherwise answer it in time).
func TestForwardedClientBurstAllAnswered(t *testing.T) {
	const n = 48
	up := newRawUpstream(t, true)
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr()}, Decider: newDecider(t), Timeout: 8 * time.Second})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("burst%d.example.", i), dns.TypeA)
		m.Id = uint16(1000 + i)
		b, _ := m.Pack()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint16]bool{}
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for len(seen) < n {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%d of %d answered: %v", len(seen), n, err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:k]); err != nil {
			t.Fatal(err)
		}
		i := int(r.Id) - 1000
		if i < 0 || i >= n || seen[r.Id] || len(r.Answer) != 1 || r.Question[0].Name != fmt.Sprintf("burst%d.example.", i) {
			t.Fatalf("unexpected answer %v", r)
		}
		seen[r.Id] = true
	}
	if st := p.Stats(); st.UpstreamErrors != 0 || st.UpstreamQueries != n {
		t.Errorf("upstream queries %d, errors %d; want %d, 0 (each answered at its first attempt)", st.UpstreamQueries, st.UpstreamErrors, n)
	}
}
