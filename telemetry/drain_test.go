package telemetry

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// heldBack is a producer's deduplication window as Config.Drain sees it.
type heldBack struct {
	mu   sync.Mutex
	recs []Record
}

func (h *heldBack) hold(r Record) { h.mu.Lock(); h.recs = append(h.recs, r); h.mu.Unlock() }
func (h *heldBack) drain(add func(Record)) {
	h.mu.Lock()
	r := h.recs
	h.recs = nil
	h.mu.Unlock()
	for _, rec := range r {
		add(rec)
	}
}

func answer(name string) Record {
	return Record{Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), ActionType: DnsQueryResponse, RemoteUrl: name, RepeatCount: 3}
}

// Every chunk close flushes the producer's window into the closing chunk
// (CONTRACT §6) while it has room, the rest goes first into the next, and a clean
// stop journals the window: no held-back record is lost or counted twice.
func TestDrainAtChunkCloseAndStop(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	h := &heldBack{}
	p, stop := startPipeline(t, Config{Dir: dir, Now: clk.Now, ChunkRecords: 4, ChunkInterval: time.Hour, Drain: h.drain})
	// A close by age: the window goes into the closing chunk.
	p.Add(rec(0))
	h.hold(answer("a.example"))
	flush(t, p)
	clk.Add(time.Hour)
	flush(t, p)
	// A close by records: the chunk is full, so the window opens the next.
	h.hold(answer("b.example"))
	h.hold(answer("c.example"))
	h.hold(answer("d.example"))
	for i := 1; i <= 2; i++ {
		p.Add(rec(i))
	}
	flush(t, p)
	for i := 3; i <= 4; i++ {
		p.Add(rec(i))
	}
	flush(t, p)
	// A clean stop journals the window; the next start closes the journal.
	h.hold(answer("e.example"))
	stop()
	_, stop2 := startPipeline(t, Config{Dir: dir, Now: clk.Now})
	stop2()
	var got [][]string
	for _, c := range readSpool(t, dir) {
		var names []string
		for _, r := range c.records {
			if r.ActionType == DnsQueryResponse {
				if r.RepeatCount != 3 {
					t.Errorf("%s lost its RepeatCount: %d", r.RemoteUrl, r.RepeatCount)
				}
				names = append(names, r.RemoteUrl)
			} else {
				names = append(names, "r"+r.IndicatorId)
			}
		}
		got = append(got, names)
	}
	want := [][]string{{"r0", "a.example"}, {"r1", "r2", "r3", "r4"}, {"b.example", "c.example", "d.example", "e.example"}}
	if len(got) != len(want) {
		t.Fatalf("chunks = %v, want %v", got, want)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("chunks = %v, want %v", got, want)
		}
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("chunks = %v, want %v", got, want)
			}
		}
	}
}

// scripted returns one batch of held-back records per Drain call.
type scripted struct {
	mu    sync.Mutex
	calls [][]Record
}

func (s *scripted) drain(add func(Record)) {
	s.mu.Lock()
	if len(s.calls) == 0 {
		s.mu.Unlock()
		return
	}
	r := s.calls[0]
	s.calls = s.calls[1:]
	s.mu.Unlock()
	for _, rec := range r {
		add(rec)
	}
}

// The last commit of a clean stop can close a chunk by age, and that close
// drains the window again: what does not fit the closing chunk must still
// reach the journal, not stay in memory (issue 16 × issue 20 merge).
func TestDrainAtStopCloseByAgeLosesNone(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	s := &scripted{calls: [][]Record{{answer("a.example")}, {answer("b.example"), answer("c.example"), answer("d.example")}}}
	p, stop := startPipeline(t, Config{Dir: dir, Now: clk.Now, ChunkRecords: 3, ChunkInterval: time.Hour, Drain: s.drain})
	p.Add(rec(0))
	flush(t, p)
	clk.Add(time.Hour)
	stop()
	_, stop2 := startPipeline(t, Config{Dir: dir, Now: clk.Now})
	stop2()
	var got []string
	for _, c := range readSpool(t, dir) {
		for _, r := range c.records {
			got = append(got, r.RemoteUrl)
		}
		got = append(got, "|")
	}
	want := "example.com a.example b.example | c.example d.example |"
	if g := strings.Join(got, " "); g != want {
		t.Fatalf("chunks = %q, want %q", g, want)
	}
}

// A drained record that does not fit the closing chunk is encoded later from
// the original: pseudonymized once, like every other record.
func TestDrainCarryPseudonymizedOnce(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	h := &heldBack{}
	p, stop := startPipeline(t, Config{Dir: dir, Now: clk.Now, ChunkBytes: 600, ChunkInterval: time.Hour,
		Privacy: PrivacyPseudonymous, Salt: []byte("tenant"), Drain: h.drain})
	r0 := rec(0)
	r0.RemoteUrl = strings.Repeat("x", 400) + ".example"
	p.Add(r0)
	flush(t, p)
	a := answer("a.example")
	a.InitiatingProcessAccountName = "alice"
	h.hold(a)
	clk.Add(time.Hour)
	flush(t, p) // closes by age; a does not fit the 600 bytes: carried
	stop()
	_, stop2 := startPipeline(t, Config{Dir: dir, Now: clk.Now})
	stop2()
	var accounts []string
	for _, c := range readSpool(t, dir) {
		for _, r := range c.records {
			accounts = append(accounts, r.InitiatingProcessAccountName)
		}
	}
	if len(accounts) != 2 || accounts[0] != accounts[1] || !strings.HasPrefix(accounts[0], "h:") {
		t.Fatalf("accounts = %q, want the same pseudonym twice", accounts)
	}
}
