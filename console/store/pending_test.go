package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A large fold leaves the pending table's pages behind (every view scans
// them); VacuumPending gives them back, and the folded sum is intact.
func TestVacuumPendingReclaimsFoldedPages(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if s.dialect != Postgres {
			if err := s.VacuumPending(ctx); err != nil {
				t.Fatalf("VacuumPending on SQLite: %v", err)
			}
			if n, err := s.pendingPages(ctx); n != 0 || err != nil {
				t.Fatalf("pendingPages on SQLite = %d, %v; want 0", n, err)
			}
			return
		}
		const rows = 100_000
		if _, err := s.exec(ctx, "INSERT INTO roll_app_hour_pending (span, bucket, app_id, domain, "+counterCols+", last_hour) "+
			"SELECT 3600, 0, 'app' || (g % 50), 'd.example', 1, 2, 3, 0, 0, 0, 0, 0, 0 FROM generate_series(1, ?) g", rows); err != nil {
			t.Fatal(err)
		}
		if err := s.FoldRollups(ctx); err != nil {
			t.Fatal(err)
		}
		before, err := s.pendingPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if before < 500 {
			t.Fatalf("pending pages after folding %d rows = %d; the test needs a table that grew", rows, before)
		}
		if err := s.VacuumPending(ctx); err != nil {
			t.Fatal(err)
		}
		after, err := s.pendingPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after > before/50 {
			t.Fatalf("pending pages %d → %d after VacuumPending; want them reclaimed", before, after)
		}
		for _, span := range []int{SpanHour, SpanDay} {
			var tx int64
			if err := s.queryRow(ctx, "SELECT SUM(transactions) FROM roll_app WHERE span = ? AND bucket = 0", span).Scan(&tx); err != nil || tx != rows {
				t.Fatalf("folded transactions of span %d = %d, %v; want %d", span, tx, err, rows)
			}
		}
	})
}

// A large chunk's pending rows are one row of arrays (migration 0036),
// stored out of line: pendingPages counts those TOAST pages, and
// VacuumPending gives them back once folded.
func TestPendingPagesCountLargeChunks(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC()
		s.now = func() time.Time { return now }
		// Autovacuum off on the pending tables: only VacuumPending
		// reclaims them (VACUUM (SKIP_LOCKED) passes over a table an
		// autovacuum worker holds, which a loaded host makes likelier).
		for _, tbl := range pendingTables {
			if _, err := s.w.ExecContext(ctx, "ALTER TABLE "+tbl+" SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)"); err != nil {
				t.Fatal(err)
			}
		}
		const keys = 30_000
		tr := map[TrafficKey]*Counters{}
		users := map[UserKey]struct{}{}
		for i := range keys {
			k := TrafficKey{HourOf(now) - int64(i%3)*3600, fmt.Sprintf("app%d", i%7), fmt.Sprintf("host%d.example.com", i)}
			tr[k] = &Counters{Transactions: 1, BytesSent: int64(i)}
			users[UserKey{k, fmt.Sprintf("user%d", i%50)}] = struct{}{}
		}
		if err := s.IngestChunk(ctx, &ChunkBatch{Meta: ChunkMeta{DeviceID: "d1", ChunkID: "big", SHA256: "big", ReceivedAt: now, Path: "x/big"}, Traffic: tr, Users: users}); err != nil {
			t.Fatal(err)
		}
		// What the chunk's arrays take as stored (compressed, out of line).
		var stored int64
		if err := s.queryRow(ctx, "SELECT ((SELECT SUM(pg_column_size(span) + pg_column_size(bucket) + pg_column_size(app_id) + pg_column_size(domain) + "+
			"pg_column_size(transactions) + pg_column_size(bytes_sent) + pg_column_size(bytes_received) + pg_column_size(blocks) + pg_column_size(warns) + "+
			"pg_column_size(bypasses) + pg_column_size(audits) + pg_column_size(failures) + pg_column_size(last_hour)) FROM roll_app_chunk_pending) + "+
			"(SELECT SUM(pg_column_size(span) + pg_column_size(bucket) + pg_column_size(app_id) + pg_column_size(domain) + pg_column_size(user_name) + "+
			"pg_column_size(bypassed)) FROM roll_app_user_chunk_pending)) / current_setting('block_size')::bigint").Scan(&stored); err != nil {
			t.Fatal(err)
		}
		pending, err := s.pendingPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stored < 30 || pending < stored {
			t.Fatalf("a chunk of %d keys stores %d pages of arrays; pendingPages says %d", keys, stored, pending)
		}
		if err := s.FoldRollups(ctx); err != nil {
			t.Fatal(err)
		}
		// VacuumPending as the ingest runs it (every 10 s), until the
		// pages are reclaimed or for 30 s: a snapshot another backend of
		// the database holds meanwhile (an autovacuum worker's ANALYZE of
		// the rollups the fold filled) keeps the dead rows one more round.
		var after int64
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if err := s.VacuumPending(ctx); err != nil {
				t.Fatal(err)
			}
			if after, err = s.pendingPages(ctx); err != nil {
				t.Fatal(err)
			}
			if after <= pending/50 || time.Now().After(deadline) {
				break
			}
		}
		if after > pending/50 {
			t.Fatalf("pending pages %d → %d after the fold and VacuumPending; want them reclaimed", pending, after)
		}
		var tx int64
		if err := s.queryRow(ctx, "SELECT SUM(transactions) FROM roll_app WHERE span = ?", SpanDay).Scan(&tx); err != nil || tx != keys {
			t.Fatalf("folded transactions = %d, %v; want %d", tx, err, keys)
		}
	})
}
