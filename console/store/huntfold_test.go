package store

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"strings"
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

// setWatermark puts w of the hunting fold at w, and both its folded
// marks (f of the hunting index, g of the devices' app rows) at f
// (PostgreSQL).
func setWatermark(t *testing.T, s *Store, w, f int64) {
	t.Helper()
	if _, err := s.w.ExecContext(context.Background(), "UPDATE hunt_watermark SET w = $1, f = $2", w, f); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(context.Background(), "UPDATE app_hours_watermark SET g = $1", f); err != nil {
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

// openChunk begins a chunk's transaction as ingest writes it — its row in
// chunks first, then its aggregates (n transactions to www.hunted.example
// in hour) — adds it to want and leaves it open (rolled back at the end of
// the test unless committed).
func openChunk(t *testing.T, s *Store, want huntWant, dev, chunk string, hour, n int64, now time.Time) *sql.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	if _, err := tx.ExecContext(ctx, "INSERT INTO chunks (device_id, chunk_id, sha256, compressed_bytes, records, received_at, path, first_hour) VALUES ($1, $2, $3, 0, 1, $4, $5, $6)",
		dev, chunk, chunk, ms(now), dev+"/"+chunk, hour); err != nil {
		t.Fatal(err)
	}
	b := &ChunkBatch{Meta: ChunkMeta{DeviceID: dev, ChunkID: chunk, SHA256: chunk, ReceivedAt: now, Path: dev + "/" + chunk},
		Traffic: map[TrafficKey]*Counters{{hour, "", "www.hunted.example"}: {Transactions: n}}}
	if err := s.writeChunk(ctx, tx, b); err != nil {
		t.Fatal(err)
	}
	want.add(dev, hour, n)
	return tx
}

// foldEnds requires the fold reporting on done to end without an error
// within 30 s.
func foldEnds(t *testing.T, done <-chan error, after string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the fold did not end after %s", after)
	}
}

// foldedExactly requires the two per-day tables to hold exactly the index
// rows summed into them, per domain, day and device: hunt_daily the direct
// ones, hunt_daily_folded the others before f (one row per key); and the
// devices' app rollups, which the same fold folds, to be the traffic's
// sums (appRowsExactly).
func foldedExactly(t *testing.T, s *Store, when string) {
	t.Helper()
	appRowsExactly(t, s, when)
	for _, c := range []struct{ table, rows string }{{"hunt_daily", "direct"}, {"hunt_daily_folded", "NOT direct AND hour < (SELECT f FROM hunt_watermark)"}} {
		sums := "SELECT rdomain, " + huntDaySQL("hour") + ", device_id, SUM(records), MIN(hour), MAX(hour) FROM hunt_index WHERE " + c.rows + " GROUP BY 1, 2, 3"
		table := "SELECT rdomain, day, device_id, records, first_hour, last_hour FROM " + c.table
		for _, q := range []string{"(" + table + " EXCEPT ALL " + sums + ") x", "(" + sums + " EXCEPT ALL " + table + ") x"} {
			if n := countRows(t, s, q); n != 0 {
				t.Fatalf("%s: %d rows of %s are not the sums of the index rows %s (or the other way)", when, n, c.table, c.rows)
			}
		}
	}
}

// TestHuntFoldDays: on PostgreSQL a chunk adds its hunting index rows to
// the per-day summary only when they are behind the watermark (the start
// of a day); the fold moves the rest once their day is over. A day-period
// hunt answers the same before and after every fold, late chunks and
// chunks of the current hours alike; folds are idempotent and two
// replicas folding at once count nothing twice. On SQLite every chunk adds
// its day rows itself, and the same hunts hold.
func TestHuntFoldDays(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		const day = 86400
		now := time.Now().UTC().Truncate(time.Hour).Add(30 * time.Minute)
		s.now = func() time.Time { return now }
		h := HourOf(now)
		d0 := bucketOf(h, SpanDay) // today
		pg := s.dialect == Postgres
		if pg {
			setWatermark(t, s, d0-day, d0-day)
		}
		want := huntWant{}
		// Across the watermark (yesterday's start): the day before
		// yesterday is behind it (direct); yesterday, from its first
		// hour, and today are not.
		huntPut(t, s, want, "d1", "c1", "www.hunted.example", 3, d0-2*day+5*3600, d0-day+3*3600)
		huntPut(t, s, want, "d1", "c2", "api.hunted.example", 5, d0-3600, h)
		huntPut(t, s, want, "d2", "c3", "hunted.example", 7, d0-2*day+7*3600, d0-day)
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
		if n := countRowsWhere(t, s, "hunt_index", "direct"); n != 2 {
			t.Errorf("%d hunt_index rows direct, want 2 (the hours behind the watermark)", n)
		}
		foldedExactly(t, s, "before any fold")
		// Before the lag has passed since midnight: yesterday stays.
		if f, err := s.FoldHuntDays(ctx, time.Unix(d0+3600, 0)); err != nil || f.From != f.To {
			t.Errorf("fold at 01:00 = %+v, %v; want nothing folded before 02:00", f, err)
		}
		f, err := s.FoldHuntDays(ctx, time.Unix(d0+2*3600, 0))
		if err != nil {
			t.Fatal(err)
		}
		if f.From != d0-day || f.To != d0 || f.Rows == 0 {
			t.Errorf("fold = %+v; want [%d, %d) with rows", f, d0-day, d0)
		}
		if w, fw := watermark(t, s); w != d0 || fw != w {
			t.Errorf("watermark after the fold w=%d f=%d, want both %d", w, fw, d0)
		}
		checkHunt(t, s, now, want, "after the first fold")
		foldedExactly(t, s, "after the first fold")
		if again, err := s.FoldHuntDays(ctx, time.Unix(d0+5*3600, 0)); err != nil || again.From != again.To || again.Rows != 0 {
			t.Errorf("the same fold again = %+v, %v; want nothing folded", again, err)
		}
		checkHunt(t, s, now, want, "after the same fold again")
		// A row at the watermark's hour itself: not direct, not folded.
		huntPut(t, s, want, "d5", "c7", "hunted.example", 23, d0)
		checkHunt(t, s, now, want, "with a row at the watermark's hour")

		// A late chunk (behind the new watermark) and one of the current
		// hour, then two replicas folding the next day at once.
		huntPut(t, s, want, "d2", "c5", "www.hunted.example", 13, d0-10*day+3600, d0-3600)
		huntPut(t, s, want, "d4", "c6", "hunted.example", 17, h)
		checkHunt(t, s, now, want, "after a late chunk")
		foldedExactly(t, s, "after a late chunk")
		later := time.Unix(d0+day+3*3600, 0)
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
		if w, fw := watermark(t, s); w != d0+day || fw != w {
			t.Errorf("watermark after two replicas folded w=%d f=%d, want both %d", w, fw, d0+day)
		}
		if folds[0].To-folds[0].From+folds[1].To-folds[1].From != day {
			t.Errorf("two replicas' folds %+v: want the day folded once between them", folds)
		}
		checkHunt(t, s, later, want, "after two replicas folded")
		foldedExactly(t, s, "after two replicas folded")
		if n := countRowsWhere(t, s, "hunt_index", "NOT direct AND hour >= (SELECT f FROM hunt_watermark)"); n != 0 {
			t.Errorf("%d index rows of past days left unfolded", n)
		}
		// Aggregate retention takes the folded days with the rest.
		if _, err := s.CompactTraffic(ctx, later, later.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"hunt_daily_folded", "hunt_daily", "hunt_index"} {
			if n := countRows(t, s, table); n != 0 {
				t.Errorf("%s keeps %d rows past aggregate retention", table, n)
			}
		}
	})
}

// TestHuntFoldWaitsForOpenChunks: a chunk whose transaction read the
// watermark before the fold moved it, and has not committed, marks its
// rows of the day the fold is about to take as not direct; the fold must
// wait for it, or those rows would be in neither table (PostgreSQL).
func TestHuntFoldWaitsForOpenChunks(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Hour).Add(30 * time.Minute)
		s.now = func() time.Time { return now }
		d0 := bucketOf(HourOf(now), SpanDay)
		setWatermark(t, s, d0-86400, d0-86400)
		want := huntWant{}
		// The chunk as ingest writes it, in a transaction left open.
		tx := openChunk(t, s, want, "d1", "open", d0-3*3600, 19, now)
		done := make(chan error, 1)
		go func() { _, err := s.FoldHuntDays(ctx, time.Unix(d0+3*3600, 0)); done <- err }()
		select {
		case err := <-done:
			t.Fatalf("the fold ended (%v) while a chunk that read the old watermark was still open", err)
		case <-time.After(500 * time.Millisecond):
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		foldEnds(t, done, "the open chunk committed")
		if w, f := watermark(t, s); f != d0 || w != f {
			t.Errorf("watermark w=%d f=%d after the fold, want both %d", w, f, d0)
		}
		foldedExactly(t, s, "after the fold")
		checkHunt(t, s, now, want, "after the fold")
	})
}

// TestHuntFoldUnderIngest: chunks of many devices ingested on two replicas
// while both fold with a clock that moves six hours a step; each chunk has
// hours on both sides of the moving watermark. At the end every index row
// is in hunt_daily exactly once and the hunt answers what was sent
// (PostgreSQL).
func TestHuntFoldUnderIngest(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		base := time.Now().UTC().Truncate(24 * time.Hour).Add(-3 * 24 * time.Hour)
		var mu sync.Mutex
		clock := base
		now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
		s.now = now
		other := s.twin(t)
		other.now = now
		setWatermark(t, s, huntWatermarkAt(base), huntWatermarkAt(base))
		want := huntWant{}
		var wmu sync.Mutex
		stop := make(chan struct{})
		var folders sync.WaitGroup
		var folded sync.Map
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
					f, err := st.FoldHuntDays(ctx, now())
					if err != nil {
						t.Error(err)
						return
					}
					if f.To > f.From {
						folded.Store(f.From, f.To)
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
						clock = clock.Add(6 * time.Hour)
						mu.Unlock()
					}
					h := HourOf(now())
					hours := []int64{h - 5*3600, h - 3*3600, h - 3600, h}
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
		n := 0
		folded.Range(func(_, _ any) bool { n++; return true })
		if n == 0 {
			t.Error("no fold moved a day while the chunks came in")
		}
		end := now().Add(3 * 24 * time.Hour)
		if _, err := s.FoldHuntDays(ctx, end); err != nil {
			t.Fatal(err)
		}
		if n := countRowsWhere(t, s, "hunt_index", "NOT direct AND hour >= (SELECT f FROM hunt_watermark)"); n != 0 {
			t.Errorf("%d index rows left unfolded", n)
		}
		foldedExactly(t, s, "after ingest and folds")
		checkHunt(t, s, end, want, "after ingest and folds")
		t.Logf("%d index rows, %d direct (written behind the watermark); %d folds moved a day during ingest",
			countRows(t, s, "hunt_index"), countRowsWhere(t, s, "hunt_index", "direct"), n)
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
		rewindMigration(t, s, 39, "DROP TABLE roll_app_device_hour", "DROP TABLE app_hours_watermark")
		rewindMigration(t, s, 38, "DROP TABLE hunt_watermark", "DROP TABLE hunt_daily_folded", "DROP INDEX hunt_index_fold", "ALTER TABLE hunt_index DROP COLUMN direct")
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
		if w, f := watermark(t, s); w != f || (w != huntWatermarkAt(now) && w != huntWatermarkAt(now.Add(time.Hour))) {
			t.Errorf("watermark after the migration w=%d f=%d, want both at the start of the day two hours ago (%d)", w, f, huntWatermarkAt(now))
		}
		checkHunt(t, s, now, want, "after the migration")
		// An earlier replica keeps writing during the upgrade; a new one
		// writes beside it.
		old("d2", "o3", h, 5)
		huntPut(t, s, want, "d2", "n1", "www.hunted.example", 7, h, h-3600)
		checkHunt(t, s, now, want, "with both versions writing")
		if _, err := s.FoldHuntDays(ctx, now.Add(2*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		foldedExactly(t, s, "after the fold")
		if n := countRowsWhere(t, s, "hunt_index", "NOT direct AND hour >= (SELECT f FROM hunt_watermark)"); n != 0 {
			t.Errorf("%d index rows left unfolded", n)
		}
		checkHunt(t, s, now.Add(2*24*time.Hour), want, "after the fold")
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

// execAll runs statements on the store's writer, failing tb at the first
// error (the benchmarks' setup).
func execAll(tb testing.TB, s *Store, qs ...string) {
	tb.Helper()
	for _, q := range qs {
		if _, err := s.w.ExecContext(context.Background(), q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
}

// BenchmarkHuntMonth: a month's hunt of a name every device asks every
// hour (the admin's first hunt, and the costliest), 1,000 devices × 720
// hours: "before" as every chunk's upsert left it (all of it in
// hunt_daily), "unfolded" with the last 26 hours waiting for the fold (the
// most they do, at 01:59 UTC), "folded" after the fold moved them into
// hunt_daily_folded. Profiling aid: compare them in one run
// (docs/scale.md "Twelfth round").
func BenchmarkHuntMonth(b *testing.B) {
	s := huntBenchStore(b)
	ctx := context.Background()
	now := time.Now().UTC()
	s.now = func() time.Time { return now }
	h := HourOf(now)
	w := h - 26*3600
	sqls := func(b *testing.B, qs ...string) { execAll(b, s, qs...) }
	daily := "INSERT INTO hunt_daily (rdomain, day, device_id, records, first_hour, last_hour) SELECT rdomain, " + huntDaySQL("hour") +
		", device_id, SUM(records), MIN(hour), MAX(hour) FROM hunt_index WHERE direct GROUP BY 1, 2, 3"
	sqls(b, fmt.Sprintf("UPDATE hunt_watermark SET w = %d, f = %[1]d; UPDATE app_hours_watermark SET g = %[1]d", h+86400),
		fmt.Sprintf("INSERT INTO hunt_index (rdomain, hour, device_id, chunk_id, records, direct) "+
			"SELECT 'com.popular', %d - hr * 3600, 'd' || lpad(CAST(d AS TEXT), 4, '0'), 'c' || hr, 5, true "+
			"FROM generate_series(0, 999) AS d, generate_series(0, 719) AS hr", h),
		daily, "ANALYZE hunt_index", "ANALYZE hunt_daily")
	month := PeriodFor(now.Add(-30*24*time.Hour), now, now)
	hunt := func(b *testing.B) {
		for b.Loop() {
			d, err := s.HuntDevices(ctx, []string{"popular.com"}, month)
			if err != nil || len(d) != 1000 || d[0].Records != 5*720 {
				b.Fatalf("hunt = %d devices (%+v…), %v", len(d), d[:min(1, len(d))], err)
			}
		}
	}
	b.Run("before", hunt)
	sqls(b, fmt.Sprintf("UPDATE hunt_index SET direct = false WHERE hour >= %d", w), "DELETE FROM hunt_daily", daily,
		fmt.Sprintf("UPDATE hunt_watermark SET w = %d, f = %[1]d; UPDATE app_hours_watermark SET g = %[1]d", w), "ANALYZE hunt_index", "ANALYZE hunt_daily")
	b.Run("unfolded", hunt)
	if _, err := s.FoldHuntDays(ctx, now.Add(48*time.Hour)); err != nil {
		b.Fatal(err)
	}
	sqls(b, "ANALYZE hunt_daily_folded")
	b.Run("folded", hunt)
}

// BenchmarkHuntDayWork: the work that makes hunt_daily for one day of
// 100 devices sending a chunk an hour (24 chunks each, 100 names a chunk),
// per index row (ns/row), as ingest did it before migration 0038 — an
// upsert in every chunk's transaction ("perchunk": the same statement,
// sent pipelined 24 chunks to a round trip, so the commits and round
// trips of a real chunk are not counted) — and as the fold does it, once
// for the day ("fold"; the index rows are written in both designs and not
// counted). "every-hour": a device sees each of its 100 names in every
// hour (24 row versions a day per name before, one now); "once-a-day":
// every name of a device in one hour only (one row either way).
func BenchmarkHuntDayWork(b *testing.B) {
	const devices, names = 100, 100
	const rows = devices * 24 * names
	for _, pattern := range []struct {
		name string
		sql  string // the name of the i-th name of hour hr
	}{{"every-hour", "'com.name' || n"}, {"once-a-day", "'com.name' || (hr * 100 + n)"}} {
		nameOf := func(hr, n int) string {
			if pattern.name == "every-hour" {
				return fmt.Sprintf("com.name%d", n)
			}
			return fmt.Sprintf("com.name%d", hr*100+n)
		}
		b.Run(pattern.name+"/perchunk", func(b *testing.B) {
			s := huntBenchStore(b)
			ctx := context.Background()
			day0 := bucketOf(HourOf(time.Now()), SpanDay) - 400*86400
			i := 0
			for b.Loop() {
				d := day0 + int64(i)*86400
				i++
				for dev := range devices {
					q := &pgQueue{}
					for hr := range 24 {
						var rd, dv []string
						var day, rec, first, last []int64
						for n := range names {
							h := d + int64(hr)*3600
							rd, dv = append(rd, nameOf(hr, n)), append(dv, fmt.Sprintf("d%d", dev))
							day, rec, first, last = append(day, d), append(rec, 3), append(first, h), append(last, h)
						}
						q.queue("INSERT INTO hunt_daily (rdomain, day, device_id, records, first_hour, last_hour) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[]) "+
							"ON CONFLICT (rdomain, day, device_id) DO UPDATE SET "+huntDailyAdd, rd, day, dv, rec, first, last)
					}
					if err := s.sendBatch(ctx, &q.batch); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
		b.Run(pattern.name+"/fold", func(b *testing.B) {
			s := huntBenchStore(b)
			ctx := context.Background()
			day0 := bucketOf(HourOf(time.Now()), SpanDay) - 400*86400
			i := 0
			for b.Loop() {
				b.StopTimer()
				d := day0 + int64(i)*86400
				i++
				for _, q := range []string{
					fmt.Sprintf("UPDATE hunt_watermark SET w = %d, f = %[1]d; UPDATE app_hours_watermark SET g = %[1]d", d),
					fmt.Sprintf("INSERT INTO hunt_index (rdomain, hour, device_id, chunk_id, records, direct) "+
						"SELECT %s, %d + hr * 3600, 'd' || dev, 'c' || hr, 3, false FROM generate_series(0, %d) AS dev, generate_series(0, 23) AS hr, generate_series(0, %d) AS n",
						pattern.sql, d, devices-1, names-1),
					"ANALYZE hunt_index",
				} {
					if _, err := s.w.ExecContext(ctx, q); err != nil {
						b.Fatal(err)
					}
				}
				if i == 3 {
					// Its scans (a benchmark's log keeps ten lines).
					var scans []string
					for _, l := range strings.Split(explain(b, s, huntFoldSQL, huntFoldArgs(d, d+86400)...), "\n") {
						if strings.Contains(l, "Scan") || strings.Contains(l, "Cond") {
							scans = append(scans, strings.TrimSpace(l))
						}
					}
					b.Logf("the fold's scans: %s", strings.Join(scans, " | "))
				}
				b.StartTimer()
				f, err := s.FoldHuntDays(ctx, time.Unix(d+86400, 0).Add(huntFoldLag))
				if err != nil || f.To != d+86400 {
					b.Fatalf("fold = %+v, %v; want up to %d", f, err, d+86400)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}

// explain is PostgreSQL's plan for q.
func explain(b *testing.B, s *Store, q string, args ...any) string {
	b.Helper()
	r, err := s.w.QueryContext(context.Background(), "EXPLAIN "+q, args...)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var plan []string
	for r.Next() {
		var line string
		if err := r.Scan(&line); err != nil {
			b.Fatal(err)
		}
		plan = append(plan, line)
	}
	return strings.Join(plan, "\n")
}
