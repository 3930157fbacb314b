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

// Chunks of many devices committed at once, a retried chunk among them,
// while two replicas fold the pending fleet-wide rows: every view counts
// each acknowledged chunk exactly once, and nothing stays pending.
func TestFleetRollupsExactlyOnceUnderConcurrency(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		s.now = func() time.Time { return now }
		if _, err := s.CreateEnrollKey(ctx, EnrollKey{Name: "k", Hash: "kh", CreatedBy: "a", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		const devices, chunks = 8, 6
		for d := range devices {
			id := fmt.Sprintf("d%d", d)
			if _, _, err := s.Enroll(ctx, "kh", Device{ID: id, Name: id, TokenHash: "t" + id}, ""); err != nil {
				t.Fatal(err)
			}
		}
		h := HourOf(now)
		slack := TrafficKey{h, "slack", "slack.com"}
		other := TrafficKey{h, "", "unknown.example"}
		other2 := s.twin(t)
		stop := make(chan struct{})
		var folds sync.WaitGroup
		for _, st := range []*Store{s, other2} {
			folds.Add(1)
			go func() {
				defer folds.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := st.FoldRollups(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		var wg sync.WaitGroup
		for d := range devices {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dev := fmt.Sprintf("d%d", d)
				for c := range chunks {
					b := &ChunkBatch{Meta: ChunkMeta{DeviceID: dev, ChunkID: fmt.Sprint(c), SHA256: fmt.Sprint(c), ReceivedAt: now, Path: "p"},
						Traffic: map[TrafficKey]*Counters{slack: {Transactions: 2, BytesSent: 10}, other: {Transactions: 1}},
						Users:   map[UserKey]struct{}{{slack, "user-" + dev}: {}}, Bypassers: map[UserKey]struct{}{{slack, "user-" + dev}: {}}}
					if err := s.IngestChunk(ctx, b); err != nil {
						t.Error(err)
						return
					}
					if c == 0 { // the agent retries: counted once
						if err := s.IngestChunk(ctx, b); err != ErrDuplicateChunk {
							t.Errorf("retried chunk: %v, want ErrDuplicateChunk", err)
						}
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		folds.Wait()
		p := PeriodFor(now.Add(-time.Hour), now, now)
		apps, err := s.DiscoveredApps(ctx, p, false)
		if err != nil || len(apps) != 1 {
			t.Fatalf("apps %+v, %v", apps, err)
		}
		a := apps[0]
		if a.Transactions != 2*devices*chunks || a.BytesSent != 10*devices*chunks || a.Machines != devices || a.Users != devices || a.BypassUsers != devices {
			t.Errorf("slack = %+v; want %d transactions, %d bytes sent, %d machines, users and bypassing users", a, 2*devices*chunks, 10*devices*chunks, devices)
		}
		cands, err := s.DiscoveredApps(ctx, p, true)
		if err != nil || len(cands) != 1 || cands[0].Transactions != devices*chunks {
			t.Errorf("candidates %+v, %v; want unknown.example with %d transactions", cands, err, devices*chunks)
		}
		for _, tbl := range pendingTables {
			if s.dialect != Postgres { // SQLite upserts at once
				break
			}
			var n int64
			if err := s.queryRow(ctx, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s: %d rows pending after a view read (%v)", tbl, n, err)
			}
		}
	})
}

// upsertRows goes through unnest on PostgreSQL only when the prefix and
// every value fit; anything else keeps the VALUES form.
func TestPgColumns(t *testing.T) {
	rows := [][]any{{"a", int64(1)}, {"b", int64(2)}}
	table, cols, ok := pgColumns("INSERT INTO hunt_index (rdomain, hour) VALUES ", rows)
	if !ok || table != "hunt_index" || len(cols) != 2 || cols[0] != (column{"rdomain", "text[]"}) || cols[1] != (column{"hour", "bigint[]"}) {
		t.Errorf("pgColumns = %q %v %v", table, cols, ok)
	}
	for _, c := range []struct {
		prefix string
		rows   [][]any
	}{
		{"INSERT INTO t (a, b) VALUES ", [][]any{{"a", 1}}},                              // int, not int64
		{"INSERT INTO t (a, b) VALUES ", [][]any{{"a", int64(1)}, {int64(2), int64(1)}}}, // mixed column
		{"INSERT INTO t (a) VALUES ", rows},                                              // column count
		{"UPDATE t SET (a, b) VALUES ", rows},
		{"INSERT INTO t (a, b) SELECT ", rows},
	} {
		if _, _, ok := pgColumns(c.prefix, c.rows); ok {
			t.Errorf("pgColumns(%q, %v) accepted", c.prefix, c.rows)
		}
	}
}

// rollupRows is every row of the fleet-wide rollups, one string each, in
// key order.
func rollupRows(t *testing.T, s *Store) []string {
	t.Helper()
	return tableRows(t, s,
		"SELECT 'roll_app', span, bucket, app_id || '|' || domain, "+counterCols+", last_hour FROM roll_app ORDER BY 2, 3, 4",
		"SELECT 'roll_app_user', span, bucket, app_id || '|' || domain || '|' || user_name, bypassed, 0, 0, 0, 0, 0, 0, 0, 0 FROM roll_app_user ORDER BY 2, 3, 4",
		"SELECT 'presence_app_user', span, block, app_id || '|' || domain || '|' || user_name, bits, bypass_bits, 0, 0, 0, 0, 0, 0, 0 FROM presence_app_user ORDER BY 2, 3, 4")
}

// tableRows reads queries of the shape (table, span, bucket, key, nine
// numbers) as comparable lines.
func tableRows(t *testing.T, s *Store, queries ...string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, q := range queries {
		rows, err := s.r.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var table, key string
			var span, bucket int64
			var v [9]int64
			if err := rows.Scan(&table, &span, &bucket, &key, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(table, span, bucket, key, v))
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// PostgreSQL appends a chunk's pending rows as one row of arrays, one
// element per bucket (the hour's while hours are kept), and its fold adds
// each to its day and sets the users' presence bits from the user rows;
// SQLite upserts every bucket at once. The same chunks — recent hours,
// hours past HourlyRollupKeep, bypassers, two days — give the same rows on
// both, and rows appended in the tables of migrations 0030 and 0033
// (consoles of earlier versions) are folded too.
func TestFleetRollupsSameOnBothStores(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 30, 0, 0, time.UTC)
	hours := []time.Time{now, now.Add(-time.Hour), now.Add(-13 * time.Hour), now.Add(-100 * time.Hour), now.Add(-101 * time.Hour), now.Add(-40 * 24 * time.Hour)}
	got := map[string][]string{}
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		s.now = func() time.Time { return now }
		enrolled(t, s)
		for i, at := range hours {
			b := fullBatch(fmt.Sprint("c", i), fmt.Sprint("s", i), at)
			if i%2 == 1 { // bob bypasses in some hours only
				tk := TrafficKey{HourOf(at), "dropbox", "dropbox.com"}
				b.Bypassers[UserKey{tk, "bob"}] = struct{}{}
			}
			if err := s.IngestChunk(ctx, b); err != nil {
				t.Fatal(err)
			}
			if i == 2 { // a fold between chunks: rows added to folded ones
				if err := s.FoldRollups(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if s.dialect == Postgres {
			// What a console of an earlier version appends for one chunk
			// of the first hour: both buckets, presence apart.
			h, d := HourOf(now), bucketOf(HourOf(now), SpanDay)
			blockH, bitH := presenceOf(SpanHour, h)
			blockD, bitD := presenceOf(SpanDay, d)
			for _, q := range []string{
				fmt.Sprintf("INSERT INTO roll_app_pending (span, bucket, app_id, domain, %s, last_hour) VALUES (3600, %d, 'dropbox', 'dropbox.com', 2, 10, 20, 0, 1, 1, 0, 0, %d), (86400, %d, 'dropbox', 'dropbox.com', 2, 10, 20, 0, 1, 1, 0, 0, %d)", counterCols, h, h, d, h),
				fmt.Sprintf("INSERT INTO roll_app_user_pending (span, bucket, app_id, domain, user_name, bypassed) VALUES (3600, %d, 'dropbox', '', 'carol', 1), (86400, %d, 'dropbox', '', 'carol', 1)", h, d),
				fmt.Sprintf("INSERT INTO presence_app_user_pending (span, block, app_id, domain, user_name, bits, bypass_bits) VALUES (3600, %d, 'dropbox', '', 'carol', %d, %d), (86400, %d, 'dropbox', '', 'carol', %d, %d)", blockH, bitH, bitH, blockD, bitD, bitD),
				// And what a console of migration 0033's version appends for
				// one chunk of the hour before: its hour bucket only, a row
				// per key.
				fmt.Sprintf("INSERT INTO roll_app_hour_pending (span, bucket, app_id, domain, %s, last_hour) VALUES (3600, %d, 'box', 'box.com', 3, 30, 40, 1, 0, 0, 0, 1, %d)", counterCols, h-3600, h-3600),
				fmt.Sprintf("INSERT INTO roll_app_user_hour_pending (span, bucket, app_id, domain, user_name, bypassed) VALUES (3600, %d, 'box', '', 'dave', 0)", h-3600),
			} {
				if _, err := s.exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		} else {
			// The same chunks on SQLite.
			tk33 := TrafficKey{HourOf(now) - 3600, "box", "box.com"}
			b33 := &ChunkBatch{Meta: ChunkMeta{DeviceID: "d1", ChunkID: "old33", SHA256: "old33", ReceivedAt: now, Path: "x/old33"},
				Traffic: map[TrafficKey]*Counters{tk33: {Transactions: 3, BytesSent: 30, BytesReceived: 40, Blocks: 1, Failures: 1}},
				Users:   map[UserKey]struct{}{{tk33, "dave"}: {}}}
			if err := s.IngestChunk(ctx, b33); err != nil {
				t.Fatal(err)
			}
			tk := TrafficKey{HourOf(now), "dropbox", "dropbox.com"}
			b := &ChunkBatch{Meta: ChunkMeta{DeviceID: "d1", ChunkID: "old", SHA256: "old", ReceivedAt: now, Path: "x/old"},
				Traffic: map[TrafficKey]*Counters{tk: {Transactions: 2, BytesSent: 10, BytesReceived: 20, Warns: 1, Bypasses: 1}},
				Users:   map[UserKey]struct{}{{tk, "carol"}: {}}, Bypassers: map[UserKey]struct{}{{tk, "carol"}: {}}}
			if err := s.IngestChunk(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.FoldRollups(ctx); err != nil {
			t.Fatal(err)
		}
		rows := rollupRows(t, s)
		if len(rows) == 0 {
			t.Fatal("no rollup rows")
		}
		got[s.dialect] = rows
	})
	lite, pgRows := got[SQLite], got[Postgres]
	if lite == nil || pgRows == nil {
		t.Skip("needs both stores")
	}
	if !slices.Equal(lite, pgRows) {
		t.Errorf("fleet-wide rollups differ:\nsqlite:\n%s\npostgres:\n%s", strings.Join(lite, "\n"), strings.Join(pgRows, "\n"))
	}
}
