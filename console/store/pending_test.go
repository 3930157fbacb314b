package store

import (
	"context"
	"testing"
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
