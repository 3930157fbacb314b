package store

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestHuntFoldWaitsForChunksBegunDuringTheMove: a chunk whose transaction
// took its id after the fold's watermark update took its own, and read the
// old watermark before that update committed, must be waited for too. A
// snapshot's xmax is the newest ended transaction + 1, not the next id to
// be given: right after the move it can be at or below such a chunk's id,
// so "xmin >= xmax of a snapshot after the move" holds while the chunk is
// still open, and its rows (not direct, hours before the new f) end in
// neither table (PostgreSQL). The move is held here by a row lock so the
// order is the same on every run.
func TestHuntFoldWaitsForChunksBegunDuringTheMove(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC().Truncate(24 * time.Hour).Add(-11*time.Hour - 30*time.Minute)
		s.now = func() time.Time { return now }
		W := huntWatermarkAt(now)
		setWatermark(t, s, W-86400, W-86400)
		want := huntWant{}
		hold, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Rollback()
		if _, err := hold.ExecContext(ctx, "SELECT 1 FROM hunt_watermark FOR UPDATE"); err != nil {
			t.Fatal(err)
		}
		fold := s.twin(t)

		done := make(chan error, 1)
		go func() { _, err := fold.FoldHuntDays(ctx, now); done <- err }()
		// The fold's update has its transaction id and waits for the lock.
		var foldXID int64
		for deadline := time.Now().Add(10 * time.Second); ; {
			var waiting bool
			if err := s.w.QueryRowContext(ctx, "SELECT COALESCE(bool_or(wait_event_type = 'Lock'), false), COALESCE(MAX(backend_xid::text::bigint), 0) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'UPDATE hunt_watermark SET w%'").Scan(&waiting, &foldXID); err != nil {
				t.Fatal(err)
			}
			if waiting && foldXID != 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the fold's watermark update did not wait for the held row")
			}
			time.Sleep(5 * time.Millisecond)
		}
		// A chunk begins now: its id is after the fold's, and it reads the
		// old watermark (the move has not committed).
		tx := openChunk(t, s, want, "d1", "during", W-3*3600, 23, now)
		var chunkXID int64
		if err := tx.QueryRowContext(ctx, "SELECT txid_current() % 4294967296").Scan(&chunkXID); err != nil {
			t.Fatal(err)
		}
		if chunkXID <= foldXID {
			t.Fatalf("the chunk's transaction id %d is not after the fold's %d", chunkXID, foldXID)
		}
		if err := hold.Commit(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Errorf("the fold ended (%v) while a chunk that read the old watermark was still open", err)
			done <- err
		case <-time.After(700 * time.Millisecond):
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		foldEnds(t, done, "the chunk committed")
		if _, f := watermark(t, s); f != W {
			t.Errorf("f = %d after the fold, want %d", f, W)
		}
		foldedExactly(t, s, "after the fold")
		checkHunt(t, s, now, want, "after the fold")
	})
}

// TestHuntFoldPlans: the fold's hour range reads the BRIN index, and the
// BRIN index is not taken by the hunts of a domain over hours (hour
// periods, and the rows of a day-period hunt not folded yet), which read
// hunt_index_domain: a BRIN index on every row's hour made the planner
// read every domain's rows of the hours for an hour-period hunt
// (TestHuntIndexInsertOnlyMigration's plans). PostgreSQL.
func TestHuntFoldPlans(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Hour).Add(30 * time.Minute)
		h := HourOf(now)
		first := HourOf(now.Add(-400 * time.Hour))
		// 120 devices × 300 hours × 4 names in time order; the last 3
		// hours not folded yet.
		if _, err := s.w.ExecContext(ctx, "INSERT INTO hunt_index (rdomain, hour, device_id, chunk_id, records, direct) "+
			"SELECT CASE i % 4 WHEN 0 THEN 'com.example.www' WHEN 1 THEN 'com.example.mail' WHEN 2 THEN 'net.other' ELSE 'org.n' || (i % 97) END, "+
			"$1::bigint + (i / 480) * 3600, 'g' || (i / 4 % 120), 'h' || (i / 480), 1, i / 480 < 297 FROM generate_series(0, 143999) AS i", first); err != nil {
			t.Fatal(err)
		}
		setWatermark(t, s, first+297*3600, first+297*3600)
		if _, err := s.w.ExecContext(ctx, "ANALYZE hunt_index"); err != nil {
			t.Fatal(err)
		}
		rng := "(h.rdomain > ? AND h.rdomain < ?)"
		hours := "SELECT h.device_id, MIN(h.hour), MAX(h.hour), SUM(h.records) FROM hunt_index h WHERE %s AND h.hour >= ? AND h.hour < ? GROUP BY h.device_id"
		for _, c := range []struct {
			name, query, index string
			args               []any
		}{
			{"fold", huntFoldSQL, "hunt_index_fold", huntFoldArgs(first+297*3600, first+300*3600)},
			{"devices by range, a day", fmt.Sprintf(hours, rng), "hunt_index_domain", []any{"com.example.", "com.example/", h - 86400, h}},
			{"devices by range, an hour", fmt.Sprintf(hours, rng), "hunt_index_domain", []any{"com.example.", "com.example/", h - 3600, h}},
			{"unfolded rows by range, a month", fmt.Sprintf(huntUnfoldedSQL, rng), "hunt_index_domain", []any{"com.example.", "com.example/", h - 30*86400, h}},
		} {
			if plan := pgPlan(t, s, c.query, c.args...); !strings.Contains(plan, c.index) {
				t.Errorf("%s: plan\n%s\nwant it to read %s", c.name, plan, c.index)
			}
		}
	})
}

// TestHuntFoldOnlyToItsOwnWatermark: a fold folds up to the watermark it
// moved and waited for, not to one another replica moved further while it
// waited: a chunk that read the fold's watermark, still open, may have
// marked rows of the hours between the two as not direct (PostgreSQL).
func TestHuntFoldOnlyToItsOwnWatermark(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC().Truncate(24 * time.Hour).Add(-11*time.Hour - 30*time.Minute)
		s.now = func() time.Time { return now }
		W := huntWatermarkAt(now)
		setWatermark(t, s, W-2*86400, W-2*86400)
		want := huntWant{}
		huntPut(t, s, want, "d0", "early", "www.hunted.example", 3, W-2*86400+3600)
		// A transaction that keeps the fold waiting.
		old, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer old.Rollback()
		if _, err := old.ExecContext(ctx, "SELECT txid_current()"); err != nil {
			t.Fatal(err)
		}
		fold := s.twin(t)
		done := make(chan error, 1)
		foldNow := now.Add(-24 * time.Hour) // w to W - 1 day
		go func() { _, err := fold.FoldHuntDays(ctx, foldNow); done <- err }()
		for deadline := time.Now().Add(10 * time.Second); ; {
			var n int
			if err := s.w.QueryRowContext(ctx, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT txid_snapshot_xmin%'").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the fold did not wait")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if w, _ := watermark(t, s); w != W-86400 {
			t.Fatalf("w = %d while the fold waits, want %d", w, W-86400)
		}
		// A chunk reads w = W - 1 day: its row of that day is not direct.
		tx := openChunk(t, s, want, "d1", "mid", W-86400+3*3600, 29, now)
		// Another replica moves w past that hour (it would wait for the
		// chunk before folding it).
		if _, err := s.w.ExecContext(ctx, "UPDATE hunt_watermark SET w = $1", W); err != nil {
			t.Fatal(err)
		}
		if err := old.Commit(); err != nil {
			t.Fatal(err)
		}
		foldEnds(t, done, "the transaction that held it back committed")
		if _, f := watermark(t, s); f != W-86400 {
			t.Errorf("f = %d after the fold, want its own w %d", f, W-86400)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		foldedExactly(t, s, "after the first fold")
		checkHunt(t, s, now, want, "after the first fold")
		if _, err := s.FoldHuntDays(ctx, now); err != nil {
			t.Fatal(err)
		}
		foldedExactly(t, s, "after the second fold")
		checkHunt(t, s, now, want, "after the second fold")
	})
}

// TestHuntFoldClockBehind: a replica whose clock is behind the one that
// folded last moves nothing back and fails nothing (PostgreSQL).
func TestHuntFoldClockBehind(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC().Truncate(24 * time.Hour).Add(-11*time.Hour - 30*time.Minute)
		s.now = func() time.Time { return now }
		W := huntWatermarkAt(now)
		setWatermark(t, s, W-2*86400, W-2*86400)
		want := huntWant{}
		huntPut(t, s, want, "d0", "c0", "www.hunted.example", 5, W-2*86400+5*3600, W-86400+3*3600)
		if _, err := s.FoldHuntDays(ctx, now); err != nil {
			t.Fatal(err)
		}
		f, err := s.twin(t).FoldHuntDays(ctx, now.Add(-30*time.Hour))
		if err != nil {
			t.Fatalf("a fold with the clock 30 hours behind: %v", err)
		}
		if f.To != f.From {
			t.Errorf("a fold with the clock behind folded [%d, %d)", f.From, f.To)
		}
		if w, f := watermark(t, s); w != W || f != W {
			t.Errorf("w=%d f=%d after a fold with the clock behind, want both %d", w, f, W)
		}
		huntPut(t, s, want, "d0", "c1", "www.hunted.example", 7, W-86400+4*3600)
		foldedExactly(t, s, "after both folds")
		checkHunt(t, s, now, want, "after both folds")
	})
}

// TestHuntFoldNotHeldByOtherDatabases: a write transaction left open in
// another database of the cluster cannot have read this one's watermark;
// the fold does not wait for it (it waited for its whole minute, then
// failed, every hour). PostgreSQL.
func TestHuntFoldNotHeldByOtherDatabases(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		dsn, ok := dsns.Load(s)
		if !ok {
			t.Fatal("no DSN")
		}
		db, err := sql.Open("pgx", regexp.MustCompile(`dbname=[^ ]+`).ReplaceAllString(dsn.(string), "dbname=postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		other, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Rollback()
		var name string
		var xid int64
		if err := other.QueryRowContext(ctx, "SELECT current_database(), txid_current()").Scan(&name, &xid); err != nil {
			t.Fatal(err)
		}
		var mine string
		if err := s.w.QueryRowContext(ctx, "SELECT current_database()").Scan(&mine); err != nil || mine == name {
			t.Fatalf("the other transaction's database %q, the store's %q (%v)", name, mine, err)
		}
		now := time.Now().UTC().Truncate(24 * time.Hour).Add(-11*time.Hour - 30*time.Minute)
		s.now = func() time.Time { return now }
		W := huntWatermarkAt(now)
		setWatermark(t, s, W-86400, W-86400)
		want := huntWant{}
		huntPut(t, s, want, "d0", "c0", "www.hunted.example", 4, W-20*3600)
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := s.FoldHuntDays(tctx, now); err != nil {
			t.Fatalf("fold with a write transaction open in database %s: %v", name, err)
		}
		if _, f := watermark(t, s); f != W {
			t.Errorf("f = %d, want %d", f, W)
		}
		foldedExactly(t, s, "after the fold")
		checkHunt(t, s, now, want, "after the fold")
	})
}
