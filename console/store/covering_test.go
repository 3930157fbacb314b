package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestAppViewReadsCoveringIndexes: on SQLite the app drawer's machines and
// users are read from their index alone (migration 0032), not one table
// search per row, and the view's sums come out of them.
func TestAppViewReadsCoveringIndexes(t *testing.T) {
	ctx := context.Background()
	s := sqliteStore(t)
	now := time.Now().UTC()
	h := HourOf(now)
	for _, dev := range []string{"d1", "d2"} {
		k := TrafficKey{h, "slack", "www.slack.example"}
		tr := map[TrafficKey]*Counters{k: {Transactions: 3, BytesSent: 100, BytesReceived: 50, Warns: 1, Bypasses: 1}}
		users := map[UserKey]struct{}{{k, "u-" + dev}: {}}
		if err := s.IngestChunk(ctx, &ChunkBatch{Meta: ChunkMeta{DeviceID: dev, ChunkID: "c", SHA256: "c" + dev, ReceivedAt: now, Path: dev + "/c"},
			Traffic: tr, Users: users, Bypassers: map[UserKey]struct{}{{k, "u-d1"}: {}}}); err != nil {
			t.Fatal(err)
		}
	}
	p := PeriodFor(now.Add(-30*24*time.Hour), now, now)
	args := append([]any{"slack", ""}, p.args()...)
	for q, index := range map[string]string{s.appMachinesQuery(): "roll_app_device_app", s.appUsersQuery(): "roll_app_user_app"} {
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "\n"), "USING COVERING INDEX "+index) {
			t.Errorf("%s\nplan:\n%s\nwant a search of the covering index %s", q, strings.Join(plan, "\n"), index)
		}
	}
	d, err := s.App(ctx, p, "slack", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Machines) != 2 || d.Machines[0].Transactions != 3 || d.Machines[0].BytesReceived != 50 || d.Machines[0].LastSeen.IsZero() ||
		len(d.Users) != 2 || !d.Users[0].Bypassed || d.Users[1].Bypassed {
		t.Errorf("app view from the covering indexes: machines %+v users %+v", d.Machines, d.Users)
	}
}
