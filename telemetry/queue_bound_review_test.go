package telemetry

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Review (rev2): the queue's buffer is said never to grow past the bound
// (a895c79), but a commit that fails on the disk puts its batch back in
// front of what producers added meanwhile (commit: append(batch[written:],
// p.queue...)): the queue then holds up to twice the bound, in a buffer
// grown by append past it — on a disk error, when the queue is fullest.
func TestQueueBoundHoldsWhenACommitFails(t *testing.T) {
	const bound = 8192
	var p *Pipeline
	added := false
	now := func() time.Time {
		if !added && p != nil {
			// The writer is encoding the batch it took: producers fill
			// the queue again meanwhile, as Add never waits for it.
			added = true
			for i := range bound {
				p.Add(rec(i))
			}
		}
		return time.Now()
	}
	dir := t.TempDir()
	var err error
	p, err = New(Config{Dir: dir, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// The journal cannot be written (ENOTDIR even for root): a disk error.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p.jdir = filepath.Join(file, "journal")
	// Each retry's first record has an absurd timestamp again (the
	// encoder stamps a copy, not the batch).
	first := Record{ActionType: ConnectionSuccess, Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} // an absurd timestamp: encode asks Now
	p.Add(first)
	for i := 1; i < bound; i++ {
		p.Add(rec(i))
	}
	// The disk stays broken for a few commit intervals; the writer retries.
	for try := 1; try <= 4; try++ {
		added = false
		if err := p.commit(false); err == nil {
			t.Fatal("commit wrote a journal under a regular file")
		}
		p.mu.Lock()
		n, c := len(p.queue), cap(p.queue)
		p.mu.Unlock()
		if n > bound || c > bound {
			t.Errorf("after failed commit %d the queue holds %d records in a buffer of %d; the bound is %d", try, n, c, bound)
		}
	}
}
