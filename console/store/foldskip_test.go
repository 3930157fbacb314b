package store

import (
	"context"
	"testing"
	"time"
)

// TestFoldSkipsWhenCovered: a fold that waited for the fold lock folds
// nothing itself when a fold of this process began after it was asked for
// and committed meanwhile, and folds when none did; a failed fold covers
// nobody. (PostgreSQL: SQLite has no pending rows.)
func TestFoldSkipsWhenCovered(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC()
		s.now = func() time.Time { return now }
		enrolled(t, s)
		pending := func() int {
			t.Helper()
			var n int
			if err := s.w.QueryRowContext(ctx, "SELECT COUNT(*) FROM roll_app_chunk_pending").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		// foldWhileLocked runs FoldRollups while another session holds the
		// fold lock, calls meanwhile once FoldRollups waits for it, then
		// lets it go.
		foldWhileLocked := func(chunk string, meanwhile func()) {
			t.Helper()
			if err := s.IngestChunk(ctx, fullBatch(chunk, chunk, now)); err != nil {
				t.Fatal(err)
			}
			if pending() == 0 {
				t.Fatal("the chunk left no pending rows")
			}
			holder, err := s.w.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Close()
			if _, err := holder.ExecContext(ctx, "SELECT pg_advisory_lock($1)", foldLock); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.FoldRollups(ctx) }()
			deadline := time.Now().Add(10 * time.Second)
			for {
				var waiting int
				if err := holder.QueryRowContext(ctx, "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").Scan(&waiting); err != nil {
					t.Fatal(err)
				}
				if waiting > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("FoldRollups never waited for the fold lock")
				}
				time.Sleep(5 * time.Millisecond)
			}
			meanwhile()
			if _, err := holder.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", foldLock); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}

		// No fold began meanwhile: it folds.
		foldWhileLocked("c1", func() {})
		if n := pending(); n != 0 {
			t.Fatalf("%d rows still pending after a fold nobody covered", n)
		}
		// A fold that began and failed meanwhile covers nothing.
		foldWhileLocked("c2", func() { s.folds.begin() })
		if n := pending(); n != 0 {
			t.Fatalf("%d rows still pending after a fold whose cover failed", n)
		}
		// A fold of this process began and committed meanwhile: the
		// waiter takes its word (here the rows stay, since the test's
		// stand-in folded nothing; a real fold took them).
		foldWhileLocked("c3", func() { s.folds.committed(s.folds.begin()) })
		if n := pending(); n == 0 {
			t.Fatal("the waiter folded although a fold that began after it asked had committed")
		}
		// The next caller asks after that fold: it folds.
		if err := s.FoldRollups(ctx); err != nil {
			t.Fatal(err)
		}
		if n := pending(); n != 0 {
			t.Fatalf("%d rows still pending after the next fold", n)
		}
	})
}

func TestFoldCounter(t *testing.T) {
	var c foldCounter
	asked := c.asked()
	a := c.begin()
	b := c.begin()
	c.committed(b)
	c.committed(a) // an earlier fold's commit recorded later: no step back
	if !c.coveredSince(asked) || c.coveredSince(c.asked()) {
		t.Errorf("counter %d/%d: covered since %d = %v, since now = %v", c.began.Load(), c.done.Load(), asked, c.coveredSince(asked), c.coveredSince(c.asked()))
	}
}
