package dnsproxy

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestOnAnswer: a plainly allowed answer is handed to OnAnswer once per
// query, for the question name, on the general path and from the cache;
// refused and audited names are not (they are Events).
func TestOnAnswer(t *testing.T) {
	w := newWireProxy(t, testRecords...)
	var got []Answer
	w.p.cfg.OnAnswer = func(a Answer) { got = append(got, a) }
	q := func(name string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		return m
	}
	w.general(t, q("goodalias.example.")) // CNAME → allowed.example: one answer, for the question
	w.general(t, q("bad.example."))
	w.general(t, q("audited.example."))
	if w.fast(t, q("goodalias.example.")) == nil {
		t.Fatal("not served from the cache")
	}
	// Refusals answered on the wire fast path (issue 21) and an audited
	// cached answer are Events, not allowed answers.
	for _, n := range []string{"bad.example.", "warned.example.", "audited.example."} {
		if w.fast(t, q(n)) == nil {
			t.Fatalf("%s not answered on the fast path", n)
		}
	}
	if len(got) != 2 {
		t.Fatalf("answers = %+v, want goodalias.example twice", got)
	}
	for _, a := range got {
		if a.Name != "goodalias.example" || a.QType != dns.TypeA || a.Client != wireClient {
			t.Errorf("answer = %+v, want goodalias.example A from %v", a, wireClient)
		}
	}
	if got[0].Proto != "udp" || got[1].Proto != "udp" || got[0].Cached || !got[1].Cached {
		t.Errorf("answers %+v: want udp, the second one Cached", got)
	}
}

// TestFastPathAllocationsWithOnAnswer: recording allowed answers (into a
// bounded channel, as the agent does) keeps the cached path allocation-free.
func TestFastPathAllocationsWithOnAnswer(t *testing.T) {
	w := newWireProxy(t, testRecords...)
	ch := make(chan Answer, 1)
	w.p.cfg.OnAnswer = func(a Answer) {
		select {
		case ch <- a:
		default:
		}
	}
	m := new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	m.SetEdns0(1232, false)
	w.general(t, m)
	<-ch
	b, _ := m.Pack()
	var q wireQuery
	name := make([]byte, 0, 256)
	out := make([]byte, 0, upstreamUDPSize)
	now := w.p.cfg.Now()
	n := testing.AllocsPerRun(200, func() {
		var ok bool
		if name, ok = parseQuery(b, &q, name[:0]); !ok {
			t.Fatal("refused")
		}
		if _, ok = w.p.fastReply(&q, &name, now, wireClient, out[:0]); !ok {
			t.Fatal("declined")
		}
		<-ch
	})
	if n != 0 {
		t.Errorf("%.0f allocations per cached query with OnAnswer, want 0", n)
	}
}

// TestOnAnswerNotOnServfail: a query the upstreams could not answer got a
// SERVFAIL, not an answer: it is no discovery record.
func TestOnAnswerNotOnServfail(t *testing.T) {
	w := newWireProxy(t, testRecords...)
	var got []Answer
	w.p.cfg.OnAnswer = func(a Answer) { got = append(got, a) }
	dead, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.LocalAddr().String()
	dead.Close() // nothing listens: the query fails at once or times out
	w.p.ups.Store(newUpstreams([]string{addr}, 200*time.Millisecond, nil, &w.p.stats))
	m := new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	if r := w.general(t, m); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode = %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if len(got) != 0 {
		t.Fatalf("answers = %+v, want none for a SERVFAIL", got)
	}
}
