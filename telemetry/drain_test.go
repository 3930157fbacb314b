package telemetry

import (
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
func (h *heldBack) drain() []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.recs
	h.recs = nil
	return r
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
