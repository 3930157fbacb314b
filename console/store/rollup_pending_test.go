package store

import (
	"context"
	"fmt"
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
		for _, tbl := range []string{"roll_app_pending", "roll_app_user_pending", "presence_app_user_pending"} {
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
