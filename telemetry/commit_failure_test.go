package telemetry

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A commit that fails on the disk puts its batch back in front of what
// producers added meanwhile; the queue must stay within the bound (it once
// grew by a bound per failed retry), and what does not fit must be counted
// for the gap record, not dropped silently.
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
		if n != bound {
			t.Errorf("after failed commit %d the queue holds %d records; want the bound %d (the oldest kept)", try, n, bound)
		}
		p.mu.Lock()
		oldest := p.queue[0].Record()
		p.mu.Unlock()
		if oldest.ActionType != first.ActionType || !oldest.Timestamp.Equal(first.Timestamp) {
			t.Errorf("after failed commit %d the queue starts with %+v; want the oldest record, %+v", try, oldest, first)
		}
	}
	// Each failed commit took a full queue while producers added a bound
	// more: a bound lost per retry, each counted for the gap record.
	p.mu.Lock()
	lost := p.refused + p.pendingGap[GapQueueFull]
	p.mu.Unlock()
	if lost != 4*bound {
		t.Errorf("records counted for the gap record: %d, want %d", lost, 4*bound)
	}
	if got := p.Status().DroppedQueueFull; got != 4*bound {
		t.Errorf("Status.DroppedQueueFull = %d, want %d", got, 4*bound)
	}
	// The disk works again: the kept records and the gap record are written.
	added = true // no more producers
	p.jdir = filepath.Join(dir, "journal")
	if err := errors.Join(os.MkdirAll(p.jdir, 0o700), os.MkdirAll(p.spool.dir, 0o700)); err != nil {
		t.Fatal(err)
	}
	if err := p.commit(true); err != nil {
		t.Fatal(err)
	}
	if n := p.pendingGap[GapQueueFull]; n != 0 {
		t.Errorf("%d lost records still wait for a gap record after a good commit", n)
	}
}

// A failing disk is logged when it starts failing and when it works again,
// not at every retry (every commit interval and every wake).
func TestFailingDiskLogsOnce(t *testing.T) {
	var buf bytes.Buffer
	p, err := New(Config{Dir: t.TempDir(), Log: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		p.commitDone(errors.New("no space left on device"))
	}
	p.commitDone(nil)
	out := buf.String()
	if n := strings.Count(out, "level=ERROR"); n != 1 {
		t.Errorf("50 failed commits logged %d error lines, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "work again") || !strings.Contains(out, "failedCommits=50") {
		t.Errorf("the recovery is not logged with the count of failed commits:\n%s", out)
	}
	if st := p.Status(); st.LastError == "" {
		t.Error("Status.LastError is empty after failed commits")
	}
}
