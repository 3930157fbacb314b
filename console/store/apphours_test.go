package store

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// appRowsExactly requires the devices' app rollups on PostgreSQL to be
// exactly the traffic ingested (traffic_hourly), whichever way each row
// went (migration 0039): per day, roll_app_device's day rows plus
// roll_app_device_hour's rows at or after g (not folded); per hour, both
// tables' hour rows, for every hour kept at the store's clock. And every
// row has its presence bit.
func appRowsExactly(t *testing.T, s *Store, when string) {
	t.Helper()
	if s.dialect != Postgres {
		return
	}
	sums := sumCols("")
	rd := "CASE WHEN app_id = '' THEN domain ELSE '' END"
	checks := []struct{ name, want, got string }{
		{"days",
			"SELECT device_id, " + huntDaySQL("hour") + ", app_id, " + rd + ", " + sums + " FROM traffic_hourly GROUP BY 1, 2, 3, 4",
			"SELECT device_id, day, app_id, domain, " + sums + " FROM (SELECT device_id, bucket AS day, app_id, domain, " + counterCols + " FROM roll_app_device WHERE span = 86400 " +
				"UNION ALL SELECT device_id, " + huntDaySQL("bucket") + ", app_id, domain, " + counterCols + " FROM roll_app_device_hour WHERE bucket >= (SELECT g FROM app_hours_watermark)) x GROUP BY 1, 2, 3, 4"},
		{"hours",
			fmt.Sprintf("SELECT device_id, hour, app_id, %s, %s FROM traffic_hourly WHERE hour >= %d GROUP BY 1, 2, 3, 4", rd, sums, hourOf(s.now().Add(-HourlyRollupKeep))),
			"SELECT device_id, bucket, app_id, domain, " + sums + " FROM (SELECT device_id, bucket, app_id, domain, " + counterCols + " FROM roll_app_device WHERE span = 3600 " +
				"UNION ALL SELECT device_id, bucket, app_id, domain, " + counterCols + " FROM roll_app_device_hour) x GROUP BY 1, 2, 3, 4"},
	}
	for _, c := range checks {
		for _, q := range []string{"((" + c.want + ") EXCEPT ALL (" + c.got + ")) x", "((" + c.got + ") EXCEPT ALL (" + c.want + ")) x"} {
			if n := countRows(t, s, q); n != 0 {
				t.Fatalf("%s: %d app rollup rows of the %s are not the traffic's sums (or the other way)", when, n, c.name)
			}
		}
	}
	bit := func(table, span string) string {
		return "SELECT COUNT(*) FROM " + table + " r WHERE NOT EXISTS (SELECT 1 FROM presence_app_device p WHERE p.span = " + span + " AND p.block = r.bucket / " + span + " / 32 " +
			"AND p.app_id = r.app_id AND p.domain = r.domain AND p.device_id = r.device_id AND (p.bits & (CAST(1 AS BIGINT) << CAST(r.bucket / " + span + " % 32 AS INTEGER))) <> 0)"
	}
	for _, q := range []string{bit("roll_app_device", "r.span"), bit("roll_app_device_hour", "3600")} {
		var n int64
		if err := s.queryRow(context.Background(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%s: %d app rollup rows without their presence bit (%s)", when, n, q)
		}
	}
}

// appHoursChunk ingests one chunk of dev with traffic of three apps (one
// an unclaimed domain) and a user in each of hours.
func appHoursChunk(t *testing.T, s *Store, dev, chunk string, n int64, hours ...int64) {
	t.Helper()
	tr := map[TrafficKey]*Counters{}
	users := map[UserKey]struct{}{}
	for i, h := range hours {
		for j, k := range []TrafficKey{{h, "slack", "slack.com"}, {h, "", "files.example"}, {h, "dropbox", "dropbox.com"}} {
			if (i+j)%3 == 2 {
				continue // not every app in every hour
			}
			tr[k] = &Counters{Transactions: n + int64(j), BytesSent: 10 * n, BytesReceived: int64(7 * j), Warns: int64(j % 2)}
			users[UserKey{k, "u-" + dev}] = struct{}{}
		}
	}
	if err := s.IngestChunk(context.Background(), &ChunkBatch{Meta: ChunkMeta{DeviceID: dev, ChunkID: chunk, SHA256: chunk, ReceivedAt: s.now(), Path: dev + "/" + chunk}, Traffic: tr, Users: users}); err != nil {
		t.Fatal(err)
	}
}

// appHoursViews is what every view that reads the devices' app rollups
// answers over periods of hours and of days around the watermark.
func appHoursViews(t *testing.T, s *Store, now time.Time) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	d0 := time.Unix(bucketOf(HourOf(now), SpanDay), 0).UTC()
	for _, p := range []Period{
		PeriodFor(now.Add(-6*time.Hour), now, now),                     // hours of today
		PeriodFor(now.Add(-40*time.Hour), now.Add(-10*time.Hour), now), // hours across midnight
		PeriodFor(d0.Add(-24*time.Hour), d0, now),                      // yesterday, per hour
		{From: d0.Add(-24 * time.Hour), To: d0, Span: SpanDay},         // yesterday, per day
		{From: d0, To: d0.Add(24 * time.Hour), Span: SpanDay},          // today, per day
		PeriodFor(now.Add(-30*24*time.Hour), now, now),                 // the month
		PeriodFor(d0.Add(-3*24*time.Hour), d0.Add(-24*time.Hour), now), // two days before yesterday
	} {
		apps, err1 := s.DiscoveredApps(ctx, p, false)
		cands, err2 := s.DiscoveredApps(ctx, p, true)
		slack, err3 := s.App(ctx, p, "slack", "")
		files, err4 := s.App(ctx, p, "", "files.example")
		var ms []MachineDetail
		for _, dev := range []string{"d0", "d1", "d2"} {
			m, err := s.Machine(ctx, p, dev)
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		for _, err := range []error{err1, err2, err3, err4} {
			if err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, fmt.Sprintf("%+v %v\napps %+v\nunclaimed %+v\nslack machines %+v\nfiles machines %+v\nmachines %+v", p.From, p.Span, apps, cands, slack.Machines, files.Machines, ms))
	}
	return out
}

// TestAppDeviceHoursSameViews: PostgreSQL writes a device's app rows of
// the hours at or after the watermark into roll_app_device_hour and
// leaves their days to the fold; SQLite writes both spans in every chunk.
// The same chunks — before the watermark (direct), after it, one chunk
// across it, a row at the next watermark's hour, late chunks after the
// fold, rows written directly in hours that also have unfolded rows (a
// replica of the previous version during an upgrade), the hourly prune,
// a second fold — give the same views on both stores in every state, and
// PostgreSQL's rows are the traffic's sums throughout.
func TestAppDeviceHoursSameViews(t *testing.T) {
	const day = 86400
	// A fixed day, well before the watermark the migration sets: every
	// state is set by hand.
	d0 := bucketOf(HourOf(time.Now().UTC().Add(-40*24*time.Hour)), SpanDay)
	now := time.Unix(d0+12*3600+1800, 0).UTC()
	h := HourOf(now)
	got := map[string][][]string{}
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		s.now = func() time.Time { return now }
		pg := s.dialect == Postgres
		if pg {
			setWatermark(t, s, d0-day, d0-day)
		}
		var states [][]string
		state := func(when string) {
			t.Helper()
			appRowsExactly(t, s, when)
			states = append(states, append([]string{when}, appHoursViews(t, s, now)...))
		}
		appHoursChunk(t, s, "d0", "c1", 3, d0-2*day+5*3600, d0-day+3*3600, d0-3600) // before w, then unfolded yesterday
		appHoursChunk(t, s, "d1", "c2", 5, d0-day-3600, d0-day, d0-day+3600)        // across the watermark
		appHoursChunk(t, s, "d2", "c3", 7, d0, d0+3600, h)                          // the next watermark's hour, today
		appHoursChunk(t, s, "d1", "c4", 11, d0-day+3*3600, d0-3*day+2*3600, h-3600) // more of the same rows
		if pg {
			if n := countRows(t, s, "roll_app_device_hour"); n == 0 {
				t.Fatal("no row of an hour after the watermark in roll_app_device_hour")
			}
			if n := countRowsWhere(t, s, "roll_app_device", fmt.Sprintf("bucket >= %d", d0-day)); n != 0 {
				t.Errorf("%d roll_app_device rows at or after the watermark, want none (they wait for the fold)", n)
			}
		}
		state("before the fold")
		if pg {
			// A console of the previous version (migration 0038) folds the
			// hunting index first: it moves w and f, not g.
			if _, err := s.w.ExecContext(ctx, huntFoldSQL, huntFoldArgs(d0-day, d0)...); err != nil {
				t.Fatal(err)
			}
			if _, err := s.w.ExecContext(ctx, "UPDATE hunt_watermark SET w = $1, f = $1", d0); err != nil {
				t.Fatal(err)
			}
			state("after a fold of the previous version")
		}
		f, err := s.FoldHuntDays(ctx, time.Unix(d0+2*3600, 0))
		if err != nil {
			t.Fatal(err)
		}
		if pg && (f.To != d0 || f.AppRows == 0) {
			t.Errorf("fold = %+v; want up to %d with app rows", f, d0)
		}
		state("after the fold")
		appHoursChunk(t, s, "d0", "c5", 13, d0-day+3*3600, d0-10*day, h) // late: yesterday's folded day, and today
		appHoursChunk(t, s, "d2", "c6", 17, d0-day+22*3600, d0+3600)
		state("after late chunks")
		if pg {
			// A replica of the previous version writes every row directly:
			// as this version does with the watermark ahead of the rows.
			setWatermark(t, s, h+day, d0)
		}
		appHoursChunk(t, s, "d1", "c7", 19, d0+3600, h)
		if pg {
			setWatermark(t, s, d0, d0)
		}
		appHoursChunk(t, s, "d1", "c8", 23, d0+3600, h)
		state("with rows of the same hours written both ways")
		if _, err := s.PruneHourlyRollups(ctx, now); err != nil {
			t.Fatal(err)
		}
		state("after the hourly prune")
		if _, err := s.FoldHuntDays(ctx, time.Unix(d0+day+2*3600, 0)); err != nil {
			t.Fatal(err)
		}
		state("after the next day's fold")
		got[s.dialect] = states
	})
	lite, pgStates := got[SQLite], got[Postgres]
	if lite == nil || pgStates == nil {
		t.Skip("needs both stores")
	}
	// PostgreSQL has one state more: after an earlier version's fold,
	// the same views as before the fold.
	if len(pgStates) != len(lite)+1 || !reflect.DeepEqual(pgStates[1][1:], lite[0][1:]) {
		t.Errorf("after a fold of the previous version, postgres answers\n%s\nwant\n%s", strings.Join(pgStates[1], "\n"), strings.Join(lite[0], "\n"))
	}
	pgStates = append(pgStates[:1:1], pgStates[2:]...)
	for i := range lite {
		for j := range lite[i] {
			if lite[i][j] != pgStates[i][j] {
				t.Errorf("%s, period %d: sqlite\n%s\npostgres\n%s", lite[i][0], j, lite[i][j], pgStates[i][j])
			}
		}
	}
	if !strings.Contains(strings.Join(lite[0], ""), "slack") {
		t.Fatal("the views saw no traffic")
	}
}

// unfoldedAppHours sets s's clock two days before day d0 (40 days back)
// and its marks five days before it, and ingests device d0's chunk of
// the hours from d0-4 days + 1 hour to d0-3 days: hour rows not folded.
func unfoldedAppHours(t *testing.T, s *Store) (d0 int64, now time.Time) {
	t.Helper()
	d0 = bucketOf(HourOf(time.Now().UTC().Add(-40*24*time.Hour)), SpanDay)
	now = time.Unix(d0-2*86400+12*3600, 0).UTC()
	s.now = func() time.Time { return now }
	setWatermark(t, s, d0-5*86400, d0-5*86400)
	appHoursChunk(t, s, "d0", "c1", 3, d0-4*86400+3600, d0-3*86400)
	return d0, now
}

// TestAppDeviceHoursPruneKeepsUnfolded: the hourly prune drops
// roll_app_device_hour's rows, and the hour presence bits, older than the
// hours kept only once the fold has added them to their day (g): with the
// fold failing for days, they stay and the month's views still count
// them (PostgreSQL).
func TestAppDeviceHoursPruneKeepsUnfolded(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		d0, now := unfoldedAppHours(t, s)
		if n := countRowsWhere(t, s, "roll_app_device_hour", fmt.Sprintf("bucket = %d", d0-4*86400+3600)); n == 0 {
			t.Fatal("the chunk wrote no hour row of the hours not folded")
		}
		month := PeriodFor(now.Add(-30*24*time.Hour), now, now)
		before, err := s.Machine(ctx, month, "d0")
		if err != nil {
			t.Fatal(err)
		}
		appsBefore, err := s.DiscoveredApps(ctx, month, false)
		if err != nil || len(appsBefore) == 0 || appsBefore[0].Machines != 1 {
			t.Fatalf("the month's apps = %+v, %v; want apps with their machine", appsBefore, err)
		}
		later := now.Add(4 * 24 * time.Hour) // d0-4 days + 1 hour, and its 32-hour presence block, are past the hours kept then
		s.now = func() time.Time { return later }
		if _, err := s.PruneHourlyRollups(ctx, later); err != nil {
			t.Fatal(err)
		}
		if n := countRowsWhere(t, s, "roll_app_device_hour", fmt.Sprintf("bucket = %d", d0-4*86400+3600)); n == 0 {
			t.Fatal("the prune dropped an hour row the fold has not added to its day")
		}
		if after, err := s.Machine(ctx, month, "d0"); err != nil || !reflect.DeepEqual(after, before) {
			t.Fatalf("the month's machine view after the prune = %+v, %v; want %+v", after, err, before)
		}
		if after, err := s.DiscoveredApps(ctx, month, false); err != nil || !reflect.DeepEqual(after, appsBefore) {
			t.Fatalf("the month's apps after the prune = %+v, %v; want %+v", after, err, appsBefore)
		}
		if _, err := s.FoldHuntDays(ctx, later); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PruneHourlyRollups(ctx, later); err != nil {
			t.Fatal(err)
		}
		if n := countRowsWhere(t, s, "roll_app_device_hour", fmt.Sprintf("bucket < %d", hourOf(later.Add(-HourlyRollupKeep)))); n != 0 {
			t.Errorf("%d hour rows past the hours kept stay after they were folded", n)
		}
		if after, err := s.Machine(ctx, month, "d0"); err != nil || !reflect.DeepEqual(after, before) {
			t.Fatalf("the month's machine view after the fold and prune = %+v, %v; want %+v", after, err, before)
		}
		appRowsExactly(t, s, "after the fold and prune")
	})
}

// TestAppDeviceHoursPruneWithoutMark: with app_hours_watermark's row gone
// (a hand-edited or half-restored store), the prune keeps every hour row
// and hour bit (PostgreSQL's LEAST skips a NULL: the cut alone would drop
// the hours never folded), and the fold fails saying how to restore it.
func TestAppDeviceHoursPruneWithoutMark(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		_, now := unfoldedAppHours(t, s)
		hours := countRowsWhere(t, s, "roll_app_device_hour", "true")
		bits := countRowsWhere(t, s, "presence_app_device", fmt.Sprintf("span = %d", SpanHour))
		if hours == 0 || bits == 0 {
			t.Fatalf("the chunk wrote %d hour rows, %d hour presence rows; want some", hours, bits)
		}
		if _, err := s.w.ExecContext(ctx, "DELETE FROM app_hours_watermark"); err != nil {
			t.Fatal(err)
		}
		later := now.Add(4 * 24 * time.Hour)
		s.now = func() time.Time { return later }
		if _, err := s.PruneHourlyRollups(ctx, later); err != nil {
			t.Fatal(err)
		}
		if n := countRowsWhere(t, s, "roll_app_device_hour", "true"); n != hours {
			t.Errorf("the prune without a mark left %d of %d hour rows", n, hours)
		}
		if n := countRowsWhere(t, s, "presence_app_device", fmt.Sprintf("span = %d", SpanHour)); n != bits {
			t.Errorf("the prune without a mark left %d of %d hour presence rows", n, bits)
		}
		if _, err := s.FoldHuntDays(ctx, later); err == nil || !strings.Contains(err.Error(), "INSERT INTO app_hours_watermark") {
			t.Errorf("the fold without a mark: %v; want an error saying how to restore it", err)
		}
	})
}

// TestAppDeviceHoursMigration: migration 0039 on a store whose
// roll_app_device holds both spans (as every chunk wrote them): the views
// answer the same after it, g starts at w, and the chunks after it write
// their current hours into roll_app_device_hour (PostgreSQL).
func TestAppDeviceHoursMigration(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC()
		s.now = func() time.Time { return now }
		h := HourOf(now)
		// Every row direct, as before the migration (see
		// TestAppDeviceHoursSameViews), then back to before it.
		setWatermark(t, s, h+86400, h+86400)
		ingestViewsFixture(t, s, now, "c1")
		before := storeViews(t, s, now)
		rewindMigration(t, s, 39, "DROP TABLE roll_app_device_hour", "DROP TABLE app_hours_watermark")
		setWatermark0038 := func(w int64) {
			if _, err := s.w.ExecContext(ctx, "UPDATE hunt_watermark SET w = $1, f = $1", w); err != nil {
				t.Fatal(err)
			}
		}
		setWatermark0038(huntWatermarkAt(now))
		if err := s.migrate(ctx); err != nil {
			t.Fatal(err)
		}
		var w, g int64
		if err := s.w.QueryRowContext(ctx, "SELECT w, g FROM hunt_watermark, app_hours_watermark").Scan(&w, &g); err != nil || g != w {
			t.Fatalf("after the migration w=%d g=%d (%v); want g = w", w, g, err)
		}
		if after := storeViews(t, s, now); !reflect.DeepEqual(before, after) {
			t.Fatalf("views after migration 0039:\n%+v\nwant\n%+v", after, before)
		}
		ingestViewsFixture(t, s, now, "c2")
		if n := countRowsWhere(t, s, "roll_app_device_hour", fmt.Sprintf("bucket = %d", h)); n == 0 {
			t.Error("a chunk after the migration wrote no row of its current hour into roll_app_device_hour")
		}
		appRowsExactly(t, s, "after the migration and a chunk")
		twice := storeViews(t, s, now)
		if m := twice[4].(MachineDetail); m.Total.Transactions != 2*before[4].(MachineDetail).Total.Transactions || len(m.Apps) != len(before[4].(MachineDetail).Apps) {
			t.Errorf("machine view after the same chunk again = %+v; want twice %+v", m, before[4])
		}
	})
}

// TestAppDeviceHoursPlans: on a roll_app_device_hour of some size (200
// devices × 300 hours, written in time order as ingest writes it), a
// machine's rows are read through the primary key, an app's through the
// app index, and the fold's hours and the prune through the bucket index
// (PostgreSQL).
func TestAppDeviceHoursPlans(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC()
		h := HourOf(now)
		first := h - 300*3600
		for _, q := range []string{
			fmt.Sprintf("INSERT INTO roll_app_device_hour (device_id, bucket, app_id, domain, %s, last_hour) "+
				"SELECT 'g' || (i %% 200), %d + (i / 200) * 3600, 'zoom' || (i %% 7), '', 1, 1, 1, 0, 0, 0, 0, 0, %[2]d + (i / 200) * 3600 FROM generate_series(0, 59999) AS i", counterCols, first),
			fmt.Sprintf("UPDATE hunt_watermark SET w = %d, f = %[1]d; UPDATE app_hours_watermark SET g = %[1]d", bucketOf(h-26*3600, SpanDay)),
			"ANALYZE roll_app_device_hour",
		} {
			if _, err := s.w.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		month := PeriodFor(now.Add(-30*24*time.Hour), now, now)
		machine, margs := appDeviceRows(month, "device_id = ?", []any{"g7"})
		app, aargs := appDeviceRows(month, "app_id = ? AND domain = ?", []any{"zoom3", ""})
		for _, c := range []struct {
			name, query, index string
			args               []any
		}{
			{"machine's apps", "SELECT app_id, domain, COUNT(*) FROM " + machine + " GROUP BY app_id, domain", "roll_app_device_hour_pkey", margs},
			{"app's machines", "SELECT device_id, COUNT(*) FROM " + app + " GROUP BY device_id", "roll_app_device_hour_app", aargs},
			{"fold", appDeviceFoldSQL, "roll_app_device_hour_bucket", []any{first + 200*3600, first + 224*3600}},
			{"prune", "DELETE FROM roll_app_device_hour WHERE bucket < LEAST(?, COALESCE((SELECT g FROM app_hours_watermark), 0))", "roll_app_device_hour_bucket", []any{first + 3600}},
		} {
			if plan := pgPlan(t, s, c.query, c.args...); !strings.Contains(plan, c.index) {
				t.Errorf("%s: plan\n%s\nwant it to read %s", c.name, plan, c.index)
			}
		}
	})
}

// TestAppDeviceHoursMigrationBesideFold: migration 0039 must not wait for
// a running fold's lock on the hunting watermark's row (held for the
// fold's whole transaction, minutes at fleet scale): had it altered
// hunt_watermark, its ACCESS EXCLUSIVE lock would wait for that row lock
// and every chunk's read of w would queue behind it, stalling ingest for
// the rest of the fold (the review of the thirteenth round).
func TestAppDeviceHoursMigrationBesideFold(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		rewindMigration(t, s, 39, "DROP TABLE roll_app_device_hour", "DROP TABLE app_hours_watermark")
		fold, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer fold.Rollback()
		var w int64
		if err := fold.QueryRowContext(ctx, "SELECT w FROM hunt_watermark FOR UPDATE").Scan(&w); err != nil {
			t.Fatal(err)
		}
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.migrate(mctx); err != nil {
			t.Fatalf("migration 0039 beside a fold holding the watermark row: %v (it must not wait for the fold)", err)
		}
		// A chunk's read of w goes on meanwhile.
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		var w2, g int64
		if err := s.w.QueryRowContext(rctx, "SELECT w, g FROM hunt_watermark, app_hours_watermark").Scan(&w2, &g); err != nil || w2 != w || g != w {
			t.Fatalf("after the migration beside a fold: w=%d g=%d (%v); want both %d", w2, g, err, w)
		}
	})
}
