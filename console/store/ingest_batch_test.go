package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// enrolled is a store with device d1 enrolled.
func enrolled(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateEnrollKey(ctx, EnrollKey{Name: "k", Hash: "kh", CreatedBy: "a", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Enroll(ctx, "kh", Device{ID: "d1", Name: "pc", TokenHash: "t"}, ""); err != nil {
		t.Fatal(err)
	}
}

// fullBatch is a chunk that writes a row in every table ingest writes to.
func fullBatch(id, sum string, at time.Time) *ChunkBatch {
	h := HourOf(at)
	tk := TrafficKey{h, "dropbox", "dropbox.com"}
	return &ChunkBatch{
		Meta:      ChunkMeta{DeviceID: "d1", ChunkID: id, SHA256: sum, CompressedBytes: 100, Records: 3, ReceivedAt: at, Path: "x/" + id},
		Traffic:   map[TrafficKey]*Counters{tk: {Transactions: 2, BytesSent: 10, BytesReceived: 20, Warns: 1, Bypasses: 1}, {h, "", "intranet.example"}: {Transactions: 1}},
		Users:     map[UserKey]struct{}{{tk, "alice"}: {}, {tk, "bob"}: {}},
		Bypassers: map[UserKey]struct{}{{tk, "alice"}: {}},
		Actions:   map[ActionKey]int64{{h, "ConnectionSuccess"}: 3},
		People:    map[string]*Seen{"alice": {Value: "alice", FirstSeen: at, LastSeen: at}},
		Addresses: map[string]*Seen{"192.0.2.5": {Value: "192.0.2.5", Interface: "eth0", FirstSeen: at, LastSeen: at}},
		Info:      &DeviceInfo{At: at, OSPlatform: "linux", OSVersion: "Debian 12", AgentVersion: "1.0", LoggedOnUsers: []string{"alice"}},
	}
}

// ingestTables are the tables one chunk writes to (PostgreSQL).
var ingestTables = []string{"chunks", "traffic_hourly", "traffic_hourly_users", "actions_hourly", "device_users", "device_addresses",
	"roll_app_device", "roll_device", "presence_app_device", "hunt_daily", "hunt_index",
	"roll_app_chunk_pending", "roll_app_user_chunk_pending"}

func countRows(t *testing.T, s *Store, table string) int64 {
	t.Helper()
	var n int64
	if err := s.queryRow(context.Background(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A chunk's statements go to PostgreSQL as one batch: when a statement
// late in it fails, nothing of the chunk is stored — not its row, not the
// aggregates queued before the failure — and the same chunk is taken in
// full once the failure is gone.
func TestIngestBatchIsAtomic(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			t.Skip("the batch is PostgreSQL's")
		}
		ctx := context.Background()
		s.now = func() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }
		enrolled(t, s)
		at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		// roll_app_user_chunk_pending is written by the batch's last
		// statement: make it fail there.
		if _, err := s.exec(ctx, "ALTER TABLE roll_app_user_chunk_pending ADD CONSTRAINT test_refuse CHECK (cardinality(bypassed) < 0)"); err != nil {
			t.Fatal(err)
		}
		err := s.IngestChunk(ctx, fullBatch("c1", "s1", at))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23514" || pe.TableName != "roll_app_user_chunk_pending" {
			t.Fatalf("IngestChunk with the last statement refused = %v, want the check violation on roll_app_user_chunk_pending", err)
		}
		for _, table := range ingestTables {
			if n := countRows(t, s, table); n != 0 {
				t.Errorf("%s has %d rows after the chunk's batch failed, want 0", table, n)
			}
		}
		d, err := s.Device(ctx, "d1")
		if err != nil {
			t.Fatal(err)
		}
		if !d.LastChunkAt.IsZero() || !d.InfoAt.IsZero() || d.OSVersion != "" {
			t.Errorf("device updated by a failed chunk: %+v", d)
		}

		if _, err := s.exec(ctx, "ALTER TABLE roll_app_user_chunk_pending DROP CONSTRAINT test_refuse"); err != nil {
			t.Fatal(err)
		}
		if err := s.IngestChunk(ctx, fullBatch("c1", "s1", at)); err != nil {
			t.Fatalf("the same chunk after the failure: %v", err)
		}
		for _, table := range ingestTables {
			if n := countRows(t, s, table); n == 0 {
				t.Errorf("%s has no row after the chunk was taken", table)
			}
		}
		if err := s.IngestChunk(ctx, fullBatch("c1", "s1", at)); !errors.Is(err, ErrDuplicateChunk) {
			t.Errorf("retry = %v, want ErrDuplicateChunk", err)
		}
		sum := transactionsOf(t, s, "d1", at)
		if sum != 3 {
			t.Errorf("transactions counted %d, want 3 (once)", sum)
		}
	})
}

// Two replicas taking the same chunk at once: one stores it, the other
// answers a duplicate (the chunks primary key refuses its plain INSERT),
// and it is counted once.
func TestIngestSameChunkAtOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		enrolled(t, s)
		other := s.twin(t)
		at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		for round := range 5 {
			id := "c" + strings.Repeat("x", round)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, st := range []*Store{s, other} {
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = st.IngestChunk(ctx, fullBatch(id, "same", at)) }()
			}
			wg.Wait()
			var stored, dup int
			for _, err := range errs {
				switch {
				case err == nil:
					stored++
				case errors.Is(err, ErrDuplicateChunk):
					dup++
				default:
					t.Errorf("round %d: %v", round, err)
				}
			}
			if stored != 1 || dup != 1 {
				t.Errorf("round %d: stored %d, duplicates %d; want 1 and 1", round, stored, dup)
			}
		}
		sum := transactionsOf(t, s, "d1", at)
		if sum != 5*3 {
			t.Errorf("transactions counted %d, want %d (each chunk once)", sum, 5*3)
		}
		// The hunting index has no unique key on PostgreSQL (migration
		// 0037): the chunk's own row is what keeps its rows single.
		if n := countRows(t, s, "hunt_index"); n != 5*2 {
			t.Errorf("hunt_index has %d rows, want %d (two domains of each of 5 chunks)", n, 5*2)
		}
		if n := countRows(t, s, "(SELECT rdomain, hour, device_id, chunk_id FROM hunt_index GROUP BY rdomain, hour, device_id, chunk_id HAVING COUNT(*) > 1) AS twice"); n != 0 {
			t.Errorf("%d hunt_index keys written twice", n)
		}
	})
}

// The device row's update (one statement, skipped when nothing changes):
// the last receipt and the DeviceInfo of the chunk received last win, a
// chunk received earlier changes neither, and an info_at from a bad clock
// is replaced.
func TestIngestDeviceUpdate(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		enrolled(t, s)
		t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		put := func(id string, at time.Time, info *DeviceInfo) Device {
			t.Helper()
			b := fullBatch(id, id, at)
			b.Info = info
			if err := s.IngestChunk(ctx, b); err != nil {
				t.Fatal(err)
			}
			d, err := s.Device(ctx, "d1")
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		info := func(v string, users ...string) *DeviceInfo {
			return &DeviceInfo{OSPlatform: "linux", OSVersion: v, AgentVersion: "1.0", LoggedOnUsers: users}
		}
		d := put("c1", t0, info("12", "alice"))
		if !d.LastChunkAt.Equal(t0) || !d.InfoAt.Equal(t0) || d.OSVersion != "12" || strings.Join(d.LoggedOnUsers, ",") != "alice" {
			t.Errorf("first chunk: %+v", d)
		}
		d = put("c2", t0.Add(-time.Minute), info("11", "old"))
		if !d.LastChunkAt.Equal(t0) || !d.InfoAt.Equal(t0) || d.OSVersion != "12" || strings.Join(d.LoggedOnUsers, ",") != "alice" {
			t.Errorf("a chunk received earlier changed the device: %+v", d)
		}
		d = put("c3", t0.Add(time.Minute), nil)
		if !d.LastChunkAt.Equal(t0.Add(time.Minute)) || !d.InfoAt.Equal(t0) || d.OSVersion != "12" {
			t.Errorf("a chunk without DeviceInfo: %+v", d)
		}
		d = put("c4", t0.Add(2*time.Minute), info("13", "alice", "bob"))
		if !d.LastChunkAt.Equal(t0.Add(2*time.Minute)) || !d.InfoAt.Equal(t0.Add(2*time.Minute)) || d.OSVersion != "13" || len(d.LoggedOnUsers) != 2 {
			t.Errorf("a later chunk's DeviceInfo: %+v", d)
		}
		// A stored info_at far ahead (an older console trusted a bad
		// clock) is replaced by the next chunk's, even one received before
		// the last chunk.
		if _, err := s.exec(ctx, "UPDATE devices SET info_at = ? WHERE id = ?", ms(t0.Add(24*time.Hour)), "d1"); err != nil {
			t.Fatal(err)
		}
		d = put("c5", t0.Add(time.Minute+time.Second), info("14", "carol"))
		if !d.InfoAt.Equal(t0.Add(time.Minute+time.Second)) || d.OSVersion != "14" || !d.LastChunkAt.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("bad-clock info_at not replaced: %+v", d)
		}
		// Known from a check-in: the check-in's versions stay.
		if _, err := s.exec(ctx, "UPDATE devices SET checkin_known = 1, os_version = ? WHERE id = ?", "from-checkin", "d1"); err != nil {
			t.Fatal(err)
		}
		d = put("c6", t0.Add(3*time.Minute), info("15", "dave"))
		if d.OSVersion != "from-checkin" || strings.Join(d.LoggedOnUsers, ",") != "dave" {
			t.Errorf("after a check-in: %+v", d)
		}
	})
}

// transactionsOf sums a device's counted transactions in the hour around at.
func transactionsOf(t *testing.T, s *Store, device string, at time.Time) int64 {
	t.Helper()
	tr, err := s.DeviceTraffic(context.Background(), device, at.Add(-time.Hour), at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, x := range tr {
		sum += x.Transactions
	}
	return sum
}
