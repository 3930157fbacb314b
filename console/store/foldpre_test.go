package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// A fold sums the unnested rows by key before it adds the hour rows to
// their days (foldStatements): many chunks of the same keys and hours in
// one fold, hours of one day, must give the same hour and day rows as the
// chunks upserted one by one (SQLite), down to each counter, the latest
// hour and the users' bypass.
func TestFoldSumsBeforeTheDays(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 30, 0, 0, time.UTC)
	got := map[string][]string{}
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		s.now = func() time.Time { return now }
		enrolled(t, s)
		for i := range 7 {
			at := now.Add(-time.Duration(i%3) * time.Hour) // hours 12, 11, 10 of one day
			b := fullBatch(fmt.Sprint("c", i), fmt.Sprint("s", i), at)
			tk := TrafficKey{HourOf(at), "dropbox", "dropbox.com"}
			b.Traffic[tk] = &Counters{Transactions: int64(i + 1), BytesSent: int64(10 * i), BytesReceived: 3, Blocks: int64(i % 2), Warns: 1, Bypasses: int64(i), Audits: 2, Failures: int64(i % 3)}
			delete(b.Bypassers, UserKey{tk, "alice"})
			if i == 4 { // bob bypasses in one chunk of hour 11 only
				b.Bypassers[UserKey{tk, "bob"}] = struct{}{}
			}
			if err := s.IngestChunk(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if s.dialect == Postgres {
			var n int
			if err := s.queryRow(ctx, "SELECT COUNT(*) FROM roll_app_chunk_pending").Scan(&n); err != nil || n != 7 {
				t.Fatalf("pending chunk rows before the fold = %d, %v; want all 7 in one fold", n, err)
			}
		}
		if err := s.FoldRollups(ctx); err != nil {
			t.Fatal(err)
		}
		got[s.dialect] = rollupRows(t, s)
	})
	pgRows := sameRollupsOnBothStores(t, got)
	// The day rows are the sums of the seven chunks (1+…+7 transactions),
	// whatever the hours' rows say; bob bypassed in one chunk.
	day := bucketOf(HourOf(now), SpanDay)
	for _, want := range []string{
		fmt.Sprint("roll_app", SpanDay, day, "dropbox|dropbox.com", [9]int64{28, 210, 21, 3, 7, 21, 14, 6, HourOf(now)}),
		fmt.Sprint("roll_app", SpanHour, HourOf(now)-3600, "dropbox|dropbox.com", [9]int64{2 + 5, 10 + 40, 6, 1 + 0, 2, 1 + 4, 4, 1 + 1, HourOf(now) - 3600}),
		fmt.Sprint("roll_app_user", SpanDay, day, "dropbox||bob", [9]int64{1}),
		fmt.Sprint("roll_app_user", SpanDay, day, "dropbox||alice", [9]int64{0}),
	} {
		if !slices.Contains(pgRows, want) {
			t.Errorf("no row %q among:\n%s", want, strings.Join(pgRows, "\n"))
		}
	}
}

// A fold leaves a presence_app_user row whose bits are all set already
// untouched: not even locked (ON CONFLICT DO UPDATE locks the row it finds
// before its WHERE is checked, a WAL record per row for nothing). A bit
// not set yet is still set, and a bypass bit added.
func TestFoldLeavesSetPresenceUnlocked(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Date(2026, 11, 22, 12, 30, 0, 0, time.UTC)
		s.now = func() time.Time { return now }
		enrolled(t, s)
		ingestFold := func(id string, at time.Time, bobBypasses bool) {
			t.Helper()
			ingestDropbox(t, s, id, at, bobBypasses)
			if err := s.FoldRollups(ctx); err != nil {
				t.Fatal(err)
			}
		}
		type version struct {
			xmin, xmax       string
			bits, bypassBits int64
		}
		rows := func() map[string]version {
			t.Helper()
			r, err := s.w.QueryContext(ctx, "SELECT span || ' ' || block || ' ' || user_name, xmin::text, xmax::text, bits, bypass_bits FROM presence_app_user")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			m := map[string]version{}
			for r.Next() {
				var k string
				var v version
				if err := r.Scan(&k, &v.xmin, &v.xmax, &v.bits, &v.bypassBits); err != nil {
					t.Fatal(err)
				}
				m[k] = v
			}
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			return m
		}
		ingestFold("c1", now, false)
		before := rows()
		if len(before) != 4 { // alice and bob, hour and day
			t.Fatalf("presence rows after the first fold: %v", before)
		}
		ingestFold("c2", now, false) // the same users, app and hour
		after := rows()
		for k, v := range before {
			if after[k] != v {
				t.Errorf("presence row %s: %+v → %+v after a fold that sets no bit; want it untouched (xmax 0: not locked)", k, v, after[k])
			}
			if v.xmax != "0" {
				t.Errorf("presence row %s has xmax %s after its insert", k, v.xmax)
			}
		}
		hBlock, _ := presenceOf(SpanHour, HourOf(now))
		_, prevBit := presenceOf(SpanHour, HourOf(now)-3600)
		_, bit := presenceOf(SpanHour, HourOf(now))
		ingestFold("c3", now.Add(-time.Hour), true) // a new bit in the same hour block, bob bypassing
		final := rows()
		bob := final[fmt.Sprintf("%d %d bob", SpanHour, hBlock)]
		if bob.bits != bit|prevBit || bob.bypassBits != prevBit {
			t.Fatalf("bob's hour presence row %+v; want bits %b, bypass bits %b", bob, bit|prevBit, prevBit)
		}
	})
}

// Migration 0040: the pending arrays are compressed with lz4 where the
// server has it (PostgreSQL 14+, built with lz4), pglz elsewhere.
func TestPendingArraysLZ4(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		var lz4 bool
		if err := s.queryRow(ctx, "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'").Scan(&lz4); err != nil || !lz4 {
			t.Skipf("this PostgreSQL has no lz4 (%v): the columns keep pglz", err)
		}
		var cols, onLZ4 int
		if err := s.queryRow(ctx, "SELECT COUNT(*), COUNT(*) FILTER (WHERE attcompression = 'l') FROM pg_attribute "+
			"WHERE attrelid IN ('roll_app_chunk_pending'::regclass, 'roll_app_user_chunk_pending'::regclass) AND attnum > 0 AND NOT attisdropped").Scan(&cols, &onLZ4); err != nil {
			t.Fatal(err)
		}
		if cols != 19 || onLZ4 != cols {
			t.Fatalf("%d of the pending tables' %d columns compress with lz4; want all 19", onLZ4, cols)
		}
		// A chunk's stored arrays say so too.
		now := time.Now().UTC()
		s.now = func() time.Time { return now }
		tr := map[TrafficKey]*Counters{}
		users := map[UserKey]struct{}{}
		for i := range 2000 {
			k := TrafficKey{HourOf(now), "", fmt.Sprintf("host%d.example.com", i)} // no app: a user row per domain
			tr[k] = &Counters{Transactions: 1}
			users[UserKey{k, fmt.Sprintf("user%d", i%10)}] = struct{}{}
		}
		if err := s.IngestChunk(ctx, &ChunkBatch{Meta: ChunkMeta{DeviceID: "d1", ChunkID: "big", SHA256: "big", ReceivedAt: now, Path: "x/big"}, Traffic: tr, Users: users}); err != nil {
			t.Fatal(err)
		}
		var app, user string
		if err := s.queryRow(ctx, "SELECT (SELECT pg_column_compression(domain) FROM roll_app_chunk_pending), (SELECT pg_column_compression(span) FROM roll_app_user_chunk_pending)").Scan(&app, &user); err != nil {
			t.Fatal(err)
		}
		if app != "lz4" || user != "lz4" {
			t.Fatalf("a chunk's pending domains are compressed with %q, its users' spans with %q; want lz4", app, user)
		}
		if err := s.FoldRollups(ctx); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := s.queryRow(ctx, "SELECT SUM(transactions) FROM roll_app WHERE span = ?", SpanDay).Scan(&n); err != nil || n != 2000 {
			t.Fatalf("folded transactions = %d, %v; want 2000", n, err)
		}
	})
}

// ingestDropbox ingests fullBatch's chunk id at at, with bob bypassing a
// Warn of dropbox in that hour when bobBypasses (the fold tests' chunks).
func ingestDropbox(t *testing.T, s *Store, id string, at time.Time, bobBypasses bool) {
	t.Helper()
	b := fullBatch(id, id, at)
	if bobBypasses {
		b.Bypassers[UserKey{TrafficKey{HourOf(at), "dropbox", "dropbox.com"}, "bob"}] = struct{}{}
	}
	if err := s.IngestChunk(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// sameRollupsOnBothStores requires the fleet-wide rollup rows (rollupRows)
// each store gave to be the same, and returns PostgreSQL's; it skips the
// test where either store did not run.
func sameRollupsOnBothStores(t *testing.T, got map[string][]string) []string {
	t.Helper()
	lite, pgRows := got[SQLite], got[Postgres]
	if lite == nil || pgRows == nil {
		t.Skip("needs both stores")
	}
	if !slices.Equal(lite, pgRows) {
		t.Errorf("fleet-wide rollups differ:\nsqlite:\n%s\npostgres:\n%s", strings.Join(lite, "\n"), strings.Join(pgRows, "\n"))
	}
	return pgRows
}
