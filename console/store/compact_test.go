package store

import (
	"context"
	"testing"
	"time"
)

// Compaction folds hours older than the cut into days without changing
// any total a whole-day query reads (transactions, bytes, distinct users,
// ActionTypes); hours after the cut stay hourly; a second pass finds
// nothing; daily rows before dropBefore go.
func TestCompactTrafficKeepsTotals(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.exec(ctx, "INSERT INTO devices (id, name, token_hash, enrollment_key_id, enrolled_at) VALUES ('d1', 'd1', 'h', 0, 0)"); err != nil {
			t.Fatal(err)
		}
		day0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
		ingestHours := func(start time.Time, hours int, chunk string) {
			b := &ChunkBatch{Meta: ChunkMeta{DeviceID: "d1", ChunkID: chunk, SHA256: chunk, ReceivedAt: start, Path: "x"},
				Traffic: map[TrafficKey]*Counters{}, Users: map[UserKey]struct{}{}, Actions: map[ActionKey]int64{}}
			for h := range hours {
				hour := HourOf(start.Add(time.Duration(h) * time.Hour))
				k := TrafficKey{Hour: hour, AppID: "dropbox", Domain: "dropbox.com"}
				b.Traffic[k] = &Counters{Transactions: 2, BytesSent: 10, Blocks: 1}
				b.Users[UserKey{k, []string{"alice", "bob"}[h%2]}] = struct{}{}
				b.Actions[ActionKey{hour, "ConnectionSuccess"}] = 2
			}
			if err := s.IngestChunk(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		ingestHours(day0, 72, "c1")                   // three whole days
		ingestHours(day0.Add(24*time.Hour), 24, "c2") // the second day again
		all := func() (int64, int64, int64, map[string]int64) {
			tr, err := s.DeviceTraffic(ctx, "d1", day0, day0.Add(72*time.Hour))
			if err != nil || len(tr) != 1 {
				t.Fatalf("traffic %v %v", tr, err)
			}
			acts, err := s.DeviceActions(ctx, "d1", day0, day0.Add(72*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return tr[0].Transactions, tr[0].BytesSent, tr[0].Users, acts
		}
		tx0, by0, us0, ac0 := all()
		if tx0 != 192 || us0 != 2 {
			t.Fatalf("before: %d transactions, %d users", tx0, us0)
		}
		cut := day0.Add(48*time.Hour + 5*time.Hour) // days 0 and 1 are whole before it
		st, err := s.CompactTraffic(ctx, cut, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Days != 2 {
			t.Errorf("compacted %d days, want 2", st.Days)
		}
		tx1, by1, us1, ac1 := all()
		if tx1 != tx0 || by1 != by0 || us1 != us0 || ac1["ConnectionSuccess"] != ac0["ConnectionSuccess"] {
			t.Errorf("totals changed: %d/%d/%d/%v → %d/%d/%d/%v", tx0, by0, us0, ac0, tx1, by1, us1, ac1)
		}
		var hourly, daily int64
		s.queryRow(ctx, "SELECT COUNT(*) FROM traffic_hourly").Scan(&hourly)
		s.queryRow(ctx, "SELECT COUNT(*) FROM traffic_daily").Scan(&daily)
		if hourly != 24 || daily != 2 {
			t.Errorf("rows: %d hourly (want the third day's 24), %d daily (want 2)", hourly, daily)
		}
		if st, err := s.CompactTraffic(ctx, cut, time.Time{}); err != nil || st.Days != 0 {
			t.Errorf("second pass: %+v %v", st, err)
		}
		if st, err := s.CompactTraffic(ctx, cut, day0.Add(24*time.Hour)); err != nil || st.DailyRowsDeleted == 0 {
			t.Errorf("drop pass: %+v %v", st, err)
		}
		if tx, _, _, _ := all(); tx != 144 {
			t.Errorf("after dropping day 0: %d transactions, want 144", tx)
		}
		// The analytics rollups and hunting index of day 0 go with it
		// (issue 18 × issue 22); later days stay.
		day1 := day0.Add(24 * time.Hour).Unix()
		for _, q := range []string{"roll_app WHERE bucket", "roll_app_device WHERE bucket", "roll_app_user WHERE bucket",
			"roll_device WHERE bucket", "hunt_daily WHERE day", "hunt_index WHERE hour"} {
			var before, after int64
			if err := s.queryRow(ctx, "SELECT COUNT(*) FROM "+q+" < ?", day1).Scan(&before); err != nil {
				t.Fatal(err)
			}
			if err := s.queryRow(ctx, "SELECT COUNT(*) FROM "+q+" >= ?", day1).Scan(&after); err != nil {
				t.Fatal(err)
			}
			if before != 0 || after == 0 {
				t.Errorf("%s: %d rows before day 1 left (want 0), %d from day 1 (want some)", q, before, after)
			}
		}
	})
}
