package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// deviceRollupRows is every row of roll_app_device and
// presence_app_device, one string each, in key order.
func deviceRollupRows(t *testing.T, s *Store) []string {
	t.Helper()
	return tableRows(t, s,
		"SELECT 'roll_app_device', span, bucket, app_id || '|' || domain || '|' || device_id, "+counterCols+", last_hour FROM roll_app_device ORDER BY 2, 3, 4",
		"SELECT 'presence_app_device', span, block, app_id || '|' || domain || '|' || device_id, bits, 0, 0, 0, 0, 0, 0, 0, 0 FROM presence_app_device ORDER BY 2, 3, 4")
}

// PostgreSQL sets a device's presence bits with the roll_app_device rows
// the chunk inserts (appDevicePresence), SQLite from every chunk's keys:
// the same chunks — the same keys again (updates only), new apps in an
// hour already seen, hours in two presence blocks, hours past
// HourlyRollupKeep, a 40-day-old one, two devices — give the same rows.
func TestAppDevicePresenceSameOnBothStores(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 30, 0, 0, time.UTC)
	hours := []time.Time{now, now, now.Add(-time.Hour), now.Add(-20 * time.Hour), now.Add(-40 * time.Hour), now.Add(-100 * time.Hour), now.Add(-40 * 24 * time.Hour), now.Add(-time.Hour)}
	got := map[string][]string{}
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		s.now = func() time.Time { return now }
		enrolled(t, s)
		if _, _, err := s.Enroll(ctx, "kh", Device{ID: "d2", Name: "pc2", TokenHash: "t2"}, ""); err != nil {
			t.Fatal(err)
		}
		for i, at := range hours {
			for _, dev := range []string{"d1", "d2"} {
				b := fullBatch(fmt.Sprint("c", i, dev), fmt.Sprint("s", i, dev), at)
				b.Meta.DeviceID = dev
				if i%3 == 1 { // an app more in some chunks
					b.Traffic[TrafficKey{HourOf(at), "slack", "slack.com"}] = &Counters{Transactions: int64(i), BytesSent: 7}
				}
				if err := s.IngestChunk(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
		}
		got[s.dialect] = deviceRollupRows(t, s)
	})
	lite, pgRows := got[SQLite], got[Postgres]
	if lite == nil || pgRows == nil {
		t.Skip("needs both stores")
	}
	if len(lite) == 0 {
		t.Fatal("no rows")
	}
	if !slices.Equal(lite, pgRows) {
		t.Errorf("per-device rollups differ:\nsqlite:\n%s\npostgres:\n%s", strings.Join(lite, "\n"), strings.Join(pgRows, "\n"))
	}
}

// Chunks of one device racing to insert the same new roll_app_device
// rows (a retry on another replica, or its chunks in parallel): whichever
// inserts sets the bit, and a chunk that updates finds it set. Every row
// has its bit, every bit its row.
func TestAppDevicePresenceUnderConcurrency(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		appDevicePresenceUnderConcurrency(t, s)
	})
}

func appDevicePresenceUnderConcurrency(t *testing.T, s *Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	s.now = func() time.Time { return now }
	enrolled(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := now.Add(-time.Duration(i%4) * time.Hour)
			b := fullBatch(fmt.Sprint("c", i), fmt.Sprint("s", i), at)
			b.Traffic[TrafficKey{HourOf(at), "", fmt.Sprint("n", i%3, ".example")}] = &Counters{Transactions: 1}
			errs <- s.IngestChunk(ctx, b)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var missing, orphan int64
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM roll_app_device r WHERE NOT EXISTS (SELECT 1 FROM presence_app_device p WHERE p.span = r.span AND p.block = r.bucket / r.span / 32 AND p.app_id = r.app_id AND p.domain = r.domain AND p.device_id = r.device_id AND (p.bits & (CAST(1 AS BIGINT) << CAST(r.bucket / r.span % 32 AS INTEGER))) <> 0)").Scan(&missing); err != nil {
		t.Fatal(err)
	}
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM presence_app_device p, generate_series(0, 31) AS n WHERE (p.bits & (CAST(1 AS BIGINT) << n)) <> 0 AND NOT EXISTS (SELECT 1 FROM roll_app_device r WHERE r.span = p.span AND r.bucket = (p.block * 32 + n) * p.span AND r.app_id = p.app_id AND r.domain = p.domain AND r.device_id = p.device_id) "+
		// An hour's rows of the hours not folded are in roll_app_device_hour (migration 0039).
		"AND NOT EXISTS (SELECT 1 FROM roll_app_device_hour r WHERE p.span = 3600 AND r.bucket = (p.block * 32 + n) * p.span AND r.app_id = p.app_id AND r.domain = p.domain AND r.device_id = p.device_id)").Scan(&orphan); err != nil {
		t.Fatal(err)
	}
	var hourMissing int64
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM roll_app_device_hour r WHERE NOT EXISTS (SELECT 1 FROM presence_app_device p WHERE p.span = 3600 AND p.block = r.bucket / 3600 / 32 AND p.app_id = r.app_id AND p.domain = r.domain AND p.device_id = r.device_id AND (p.bits & (CAST(1 AS BIGINT) << CAST(r.bucket / 3600 % 32 AS INTEGER))) <> 0)").Scan(&hourMissing); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, s, "roll_app_device") + countRows(t, s, "roll_app_device_hour"); n == 0 || missing != 0 || hourMissing != 0 || orphan != 0 {
		t.Errorf("%d rows of roll_app_device and roll_app_device_hour, %d and %d without their presence bit, %d bits without their row", n, missing, hourMissing, orphan)
	}
}
