package store

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"
)

// huntWant is what a day-period hunt must answer per device, computed from
// what the test ingested.
type huntWant map[string]HuntDevice

func (w huntWant) add(dev string, hour, n int64) {
	d, ok := w[dev]
	h := time.Unix(hour, 0).UTC()
	if !ok {
		d = HuntDevice{DeviceID: dev, FirstHour: h, LastHour: h}
	}
	if h.Before(d.FirstHour) {
		d.FirstHour = h
	}
	if h.After(d.LastHour) {
		d.LastHour = h
	}
	d.Records += n
	w[dev] = d
}

// huntPut ingests one chunk of a device with n transactions to name in
// each of hours, and adds them to want.
func huntPut(t *testing.T, s *Store, want huntWant, dev, chunk, name string, n int64, hours ...int64) {
	t.Helper()
	tr := map[TrafficKey]*Counters{}
	for _, h := range hours {
		tr[TrafficKey{h, "", name}] = &Counters{Transactions: n}
		want.add(dev, h, n)
	}
	if err := s.IngestChunk(context.Background(), &ChunkBatch{Meta: ChunkMeta{DeviceID: dev, ChunkID: chunk, SHA256: chunk, ReceivedAt: s.now(), Path: dev + "/" + chunk}, Traffic: tr}); err != nil {
		t.Fatal(err)
	}
}

// checkHunt requires the day-period hunt over the month before now to
// answer want exactly.
func checkHunt(t *testing.T, s *Store, now time.Time, want huntWant, when string) {
	t.Helper()
	got, err := s.HuntDevices(context.Background(), []string{"hunted.example"}, PeriodFor(now.Add(-30*24*time.Hour), now, now))
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	m := map[string]HuntDevice{}
	for _, d := range got {
		m[d.DeviceID] = d
	}
	if !maps.Equal(m, map[string]HuntDevice(want)) {
		t.Fatalf("%s: the month's hunt per device =\n%+v\nwant\n%+v", when, m, want)
	}
}

// setWatermark puts w and f of the hunting fold at hour (PostgreSQL).
func setWatermark(t *testing.T, s *Store, w, f int64) {
	t.Helper()
	if _, err := s.w.ExecContext(context.Background(), "UPDATE hunt_watermark SET w = $1, f = $2", w, f); err != nil {
		t.Fatal(err)
	}
}

func watermark(t *testing.T, s *Store) (w, f int64) {
	t.Helper()
	if err := s.w.QueryRowContext(context.Background(), "SELECT w, f FROM hunt_watermark").Scan(&w, &f); err != nil {
		t.Fatal(err)
	}
	return w, f
}

// foldedExactly requires hunt_daily to hold exactly the index rows a fold
// has covered (direct, or before f), summed per domain, day and device.
func foldedExactly(t *testing.T, s *Store, when string) {
	t.Helper()
	q := "SELECT COUNT(*) FROM (SELECT rdomain, day, device_id, records, first_hour, last_hour FROM hunt_daily " +
		"EXCEPT SELECT rdomain, " + huntDaySQL("hour") + ", device_id, SUM(records), MIN(hour), MAX(hour) FROM hunt_index " +
		"WHERE direct OR hour < (SELECT f FROM hunt_watermark) GROUP BY 1, 2, 3) x"
	var n int64
	if err := s.w.QueryRowContext(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	var m int64
	if err := s.w.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM (SELECT rdomain, "+huntDaySQL("hour")+", device_id FROM hunt_index WHERE direct OR hour < (SELECT f FROM hunt_watermark) GROUP BY 1, 2, 3) x").Scan(&m); err != nil {
		t.Fatal(err)
	}
	if days := countRows(t, s, "hunt_daily"); n != 0 || days != m {
		t.Fatalf("%s: %d hunt_daily rows differ from the index rows folded into them; %d rows, want %d", when, n, days, m)
	}
}

// TestHuntFoldDays: on PostgreSQL a chunk adds its hunting index rows to
// the per-day summary only when they are behind the watermark; the fold
// moves the rest later. A day-period hunt answers the same before and
// after every fold, late chunks and chunks of the current hours alike;
// folds are idempotent and two replicas folding at once count nothing
// twice. On SQLite every chunk adds its day rows itself, and the same
// hunts hold.
func TestHuntFoldDays(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Hour).Add(30 * time.Minute)
		s.now = func() time.Time { return now }
		h := HourOf(now)
		pg := s.dialect == Postgres
		if pg {
			setWatermark(t, s, h-5*3600, h-5*3600)
		}
		want := huntWant{}
		// Across the watermark: hours 9 and 6 before now's are behind it
		// (direct), 4, 1 and 0 are not; a chunk spanning both sides.
		huntPut(t, s, want, "d1", "c1", "www.hunted.example", 3, h-9*3600, h-6*3600)
		huntPut(t, s, want, "d1", "c2", "api.hunted.example", 5, h-4*3600, h)
		huntPut(t, s, want, "d2", "c3", "hunted.example", 7, h-6*3600, h-3600)
		huntPut(t, s, want, "d3", "c4", "other.example", 11, h) // does not match
		delete(want, "d3")
		checkHunt(t, s, now, want, "before any fold")
		if !pg {
			if f, err := s.FoldHuntDays(ctx, now); err != nil || f != (HuntFold{}) {
				t.Fatalf("FoldHuntDays on SQLite = %+v, %v; want nothing done", f, err)
			}
			checkHunt(t, s, now, want, "after FoldHuntDays on SQLite")
			return
		}
		if n := countRowsWhere(t, s, "hunt_index", "direct"); n != 3 {
			t.Errorf("%d hunt_index rows direct, want 3 (the hours behind the watermark)", n)
		}
		foldedExactly(t, s, "before any fold")

		f, err := s.FoldHuntDays(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if f.From != h-5*3600 || f.To != h-2*3600 || f.Rows == 0 {
			t.Errorf("fold = %+v; want [%d, %d) with rows", f, h-5*3600, h-2*3600)
		}
		if w, fw := watermark(t, s); w != h-2*3600 || fw != w {
			t.Errorf("watermark after the fold w=%d f=%d, want both %d", w, fw, h-2*3600)
		}
		checkHunt(t, s, now, want, "after the first fold")
		foldedExactly(t, s, "after the first fold")
		if again, err := s.FoldHuntDays(ctx, now); err != nil || again.From != again.To || again.Rows != 0 {
			t.Errorf("the same fold again = %+v, %v; want nothing folded", again, err)
		}
		checkHunt(t, s, now, want, "after the same fold again")
		// A row at the watermark's hour itself: not direct, not folded.
		huntPut(t, s, want, "d5", "c7", "hunted.example", 23, h-2*3600)
		checkHunt(t, s, now, want, "with a row at the watermark's hour")

		// A late chunk (behind the new watermark) and one of the current
		// hour, then two replicas folding three hours later at once.
		huntPut(t, s, want, "d2", "c5", "www.hunted.example", 13, h-30*3600, h-3*3600)
		huntPut(t, s, want, "d4", "c6", "hunted.example", 17, h)
		checkHunt(t, s, now, want, "after a late chunk")
		foldedExactly(t, s, "after a late chunk")
		later := now.Add(3 * time.Hour)
		other := s.twin(t)
		var wg sync.WaitGroup
		folds := make([]HuntFold, 2)
		errs := make([]error, 2)
		for i, st := range []*Store{s, other} {
			wg.Add(1)
			go func() { defer wg.Done(); folds[i], errs[i] = st.FoldHuntDays(ctx, later) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if w, fw := watermark(t, s); w != h+3600 || fw != w {
			t.Errorf("watermark after two replicas folded w=%d f=%d, want both %d", w, fw, h+3600)
		}
		if folds[0].To-folds[0].From+folds[1].To-folds[1].From != 3*3600 {
			t.Errorf("two replicas' folds %+v: want the three hours folded once between them", folds)
		}
		checkHunt(t, s, later, want, "after two replicas folded")
		foldedExactly(t, s, "after two replicas folded")
		if n := countRowsWhere(t, s, "hunt_index", "NOT direct AND hour >= (SELECT f FROM hunt_watermark)"); n != 0 {
			t.Errorf("%d index rows left unfolded behind the clock", n)
		}
	})
}

// TestHuntFoldWaitsForOpenChunks: a chunk whose transaction read the
// watermark before the fold moved it, and has not committed, marks its
// rows of the hours the fold is about to take as not direct; the fold must
// wait for it, or those rows would be in neither table (PostgreSQL).
func TestHuntFoldWaitsForOpenChunks(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Hour).Add(30 * time.Minute)
		s.now = func() time.Time { return now }
		h := HourOf(now)
		setWatermark(t, s, h-5*3600, h-5*3600)
		want := huntWant{}
		// The chunk as ingest writes it — its row first, then its
		// aggregates — in a transaction left open.
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		b := &ChunkBatch{Meta: ChunkMeta{DeviceID: "d1", ChunkID: "open", SHA256: "open", ReceivedAt: now, Path: "d1/open"},
			Traffic: map[TrafficKey]*Counters{{h - 3*3600, "", "www.hunted.example"}: {Transactions: 19}}}
		want.add("d1", h-3*3600, 19)
		if _, err := tx.ExecContext(ctx, "INSERT INTO chunks (device_id, chunk_id, sha256, compressed_bytes, records, received_at, path, first_hour) VALUES ($1, $2, $3, 0, 1, $4, $5, $6)",
			"d1", "open", "open", ms(now), "d1/open", h-3*3600); err != nil {
			t.Fatal(err)
		}
		if err := s.writeChunk(ctx, tx, b); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := s.FoldHuntDays(ctx, now); done <- err }()
		select {
		case err := <-done:
			t.Fatalf("the fold ended (%v) while a chunk that read the old watermark was still open", err)
		case <-time.After(500 * time.Millisecond):
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the fold did not end after the open chunk committed")
		}
		if w, f := watermark(t, s); f != h-2*3600 || w != f {
			t.Errorf("watermark w=%d f=%d after the fold, want both %d", w, f, h-2*3600)
		}
		foldedExactly(t, s, "after the fold")
		checkHunt(t, s, now, want, "after the fold")
	})
}

// TestHuntFoldUnderIngest: chunks of many devices ingested on two replicas
// while both fold with a clock that moves an hour a step; each chunk has
// hours on both sides of the moving watermark. At the end every index row
// is in hunt_daily exactly once and the hunt answers what was sent
// (PostgreSQL).
func TestHuntFoldUnderIngest(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		base := time.Now().UTC().Truncate(time.Hour).Add(-20 * time.Hour)
		var mu sync.Mutex
		clock := base
		now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
		s.now = now
		other := s.twin(t)
		other.now = now
		setWatermark(t, s, HourOf(base)-2*3600, HourOf(base)-2*3600)
		want := huntWant{}
		var wmu sync.Mutex
		stop := make(chan struct{})
		var folders sync.WaitGroup
		for _, st := range []*Store{s, other} {
			folders.Add(1)
			go func() {
				defer folders.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := st.FoldHuntDays(ctx, now()); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		var ingest sync.WaitGroup
		for g := range 6 {
			ingest.Add(1)
			go func() {
				defer ingest.Done()
				st := []*Store{s, other}[g%2]
				for i := range 40 {
					if g == 0 && i%5 == 4 {
						mu.Lock()
						clock = clock.Add(time.Hour)
						mu.Unlock()
					}
					h := HourOf(now())
					hours := []int64{h - 3*3600, h - 2*3600, h - 3600, h}
					local := huntWant{}
					huntPut(t, st, local, fmt.Sprintf("d%d", g), fmt.Sprintf("c%d-%d", g, i), "www.hunted.example", int64(1+i%7), hours...)
					wmu.Lock()
					for _, d := range local {
						want.add(d.DeviceID, d.FirstHour.Unix(), 0)
						want.add(d.DeviceID, d.LastHour.Unix(), d.Records)
					}
					wmu.Unlock()
				}
			}()
		}
		ingest.Wait()
		close(stop)
		folders.Wait()
		end := now().Add(5 * time.Hour)
		if _, err := s.FoldHuntDays(ctx, end); err != nil {
			t.Fatal(err)
		}
		if n := countRowsWhere(t, s, "hunt_index", "NOT direct AND hour >= (SELECT f FROM hunt_watermark)"); n != 0 {
			t.Errorf("%d index rows left unfolded", n)
		}
		foldedExactly(t, s, "after ingest and folds")
		checkHunt(t, s, end, want, "after ingest and folds")
		var direct int64
		if err := s.w.QueryRowContext(ctx, "SELECT COUNT(*) FROM hunt_index WHERE direct").Scan(&direct); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d index rows, %d direct (written behind the watermark)", countRows(t, s, "hunt_index"), direct)
	})
}

// TestHuntWatermarkMigration: migration 0038 on a store written before it
// (rows of both hunting tables, as every chunk wrote them) and with an
// earlier version's consoles still writing: their rows count once, new
// chunks' rows are folded, and hunts answer the same throughout.
func TestHuntWatermarkMigration(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Hour).Add(30 * time.Minute)
		s.now = func() time.Time { return now }
		h := HourOf(now)
		rewindMigration(t, s, 38, "DROP TABLE hunt_watermark", "DROP INDEX hunt_index_fold", "ALTER TABLE hunt_index DROP COLUMN direct")
		want := huntWant{}
		// An earlier version's chunk: both tables, no direct column.
		old := func(dev, chunk string, hour, n int64) {
			t.Helper()
			for _, q := range []string{
				fmt.Sprintf("INSERT INTO hunt_index (rdomain, hour, device_id, chunk_id, records) VALUES ('example.hunted.www', %d, '%s', '%s', %d)", hour, dev, chunk, n),
				fmt.Sprintf("INSERT INTO hunt_daily (rdomain, day, device_id, records, first_hour, last_hour) VALUES ('example.hunted.www', %d, '%s', %d, %d, %d) "+
					"ON CONFLICT (rdomain, day, device_id) DO UPDATE SET "+huntDailyAdd, bucketOf(hour, SpanDay), dev, n, hour, hour),
			} {
				if _, err := s.w.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			want.add(dev, hour, n)
		}
		old("d1", "o1", h-26*3600, 2)
		old("d1", "o2", h, 3)
		if err := s.migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countRowsWhere(t, s, "hunt_index", "NOT direct"); n != 0 {
			t.Errorf("%d rows written before the migration are not direct", n)
		}
		if w, f := watermark(t, s); w != f || w > h || w < h-3*3600 {
			t.Errorf("watermark after the migration w=%d f=%d, want both two hours before the clock's hour %d", w, f, h)
		}
		checkHunt(t, s, now, want, "after the migration")
		// An earlier replica keeps writing during the upgrade; a new one
		// writes beside it.
		old("d2", "o3", h, 5)
		huntPut(t, s, want, "d2", "n1", "www.hunted.example", 7, h, h-3600)
		checkHunt(t, s, now, want, "with both versions writing")
		if _, err := s.FoldHuntDays(ctx, now.Add(4*time.Hour)); err != nil {
			t.Fatal(err)
		}
		foldedExactly(t, s, "after the fold")
		checkHunt(t, s, now.Add(4*time.Hour), want, "after the fold")
	})
}

// huntBenchStore is a PostgreSQL store for the hunting benchmarks (they
// need the watermark), skipped without the private cluster.
func huntBenchStore(b *testing.B) *Store {
	b.Helper()
	if pg == nil {
		b.Skipf("the hunting benchmarks need PostgreSQL: %v", pgErr)
	}
	dsn, err := pg.NewDatabase("huntbench")
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(context.Background(), Config{DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkHuntMonth: a month's hunt of a name every device asks every
// hour (the admin's first hunt, and the costliest), 1,000 devices × 720
// hours, with the last hours waiting for the fold as they do between two
// passes ("unfolded") and with every hour folded into days (what every
// chunk's own upsert gave before migration 0038). Profiling aid: compare
// the two in one run (docs/scale.md "Twelfth round").
func BenchmarkHuntMonth(b *testing.B) {
	s := huntBenchStore(b)
	ctx := context.Background()
	now := time.Now().UTC()
	s.now = func() time.Time { return now }
	h := HourOf(now)
	w := h - 3*3600 // as after a pass an hour ago: up to four hours wait
	for _, q := range []string{
		fmt.Sprintf("UPDATE hunt_watermark SET w = %d, f = %d", w, w),
		fmt.Sprintf("INSERT INTO hunt_index (rdomain, hour, device_id, chunk_id, records, direct) "+
			"SELECT 'com.popular', %[1]d - hr * 3600, 'd' || lpad(CAST(d AS TEXT), 4, '0'), 'c' || hr, 5, %[1]d - hr * 3600 < %[2]d "+
			"FROM generate_series(0, 999) AS d, generate_series(0, 719) AS hr", h, w),
		"INSERT INTO hunt_daily (rdomain, day, device_id, records, first_hour, last_hour) SELECT rdomain, " + huntDaySQL("hour") +
			", device_id, SUM(records), MIN(hour), MAX(hour) FROM hunt_index WHERE direct GROUP BY 1, 2, 3",
		"ANALYZE hunt_index", "ANALYZE hunt_daily",
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	month := PeriodFor(now.Add(-30*24*time.Hour), now, now)
	hunt := func(b *testing.B) {
		for b.Loop() {
			d, err := s.HuntDevices(ctx, []string{"popular.com"}, month)
			if err != nil || len(d) != 1000 {
				b.Fatalf("hunt = %d devices, %v", len(d), err)
			}
		}
	}
	b.Run("unfolded", hunt)
	if _, err := s.FoldHuntDays(ctx, now.Add(5*time.Hour)); err != nil {
		b.Fatal(err)
	}
	b.Run("folded", hunt)
}

// BenchmarkHuntFold: the fold of one hour of index rows, 1,000 devices ×
// 200 names, per index row (ns/row): what the per-chunk upsert it replaces
// cost per row is in docs/scale.md "Twelfth round".
func BenchmarkHuntFold(b *testing.B) {
	s := huntBenchStore(b)
	ctx := context.Background()
	h := HourOf(time.Now()) - 100*3600
	if _, err := s.w.ExecContext(ctx, "UPDATE hunt_watermark SET w = $1, f = $1", h); err != nil {
		b.Fatal(err)
	}
	const rows = 1000 * 200
	i := 0
	for b.Loop() {
		b.StopTimer()
		hour := h + int64(i)*3600
		i++
		if _, err := s.w.ExecContext(ctx, fmt.Sprintf("INSERT INTO hunt_index (rdomain, hour, device_id, chunk_id, records, direct) "+
			"SELECT 'com.name' || n, %d, 'd' || d, 'c', 3, false FROM generate_series(0, 999) AS d, generate_series(0, 199) AS n", hour)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		f, err := s.FoldHuntDays(ctx, time.Unix(hour+3600, 0).Add(huntFoldLag))
		if err != nil || f.To != hour+3600 {
			b.Fatalf("fold = %+v, %v; want up to %d", f, err, hour+3600)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}
