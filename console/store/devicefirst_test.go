package store

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ingestViewsFixture ingests chunks of three devices over hours 30 h
// apart (hour and day buckets, apps, unclaimed domains, bypassers).
func ingestViewsFixture(t *testing.T, s *Store, now time.Time, chunk string) {
	t.Helper()
	ctx := context.Background()
	h := HourOf(now)
	for d := range 3 {
		dev := fmt.Sprintf("d%d", d)
		tr := map[TrafficKey]*Counters{}
		users, byp := map[UserKey]struct{}{}, map[UserKey]struct{}{}
		for i := range 6 {
			k := TrafficKey{h - int64(i*30)*3600, []string{"slack", "", "dropbox"}[i%3], fmt.Sprintf("www.s%d.example", i%4)}
			tr[k] = &Counters{Transactions: int64(d + i + 1), BytesSent: int64(100 * i), Warns: int64(i % 2), Bypasses: int64(i % 2)}
			users[UserKey{k, fmt.Sprintf("u%d", (d+i)%4)}] = struct{}{}
			if i%2 == 1 {
				byp[UserKey{k, fmt.Sprintf("u%d", (d+i)%4)}] = struct{}{}
			}
		}
		if err := s.IngestChunk(ctx, &ChunkBatch{Meta: ChunkMeta{DeviceID: dev, ChunkID: chunk, SHA256: chunk, ReceivedAt: now, Path: dev + "/" + chunk}, Traffic: tr, Users: users, Bypassers: byp}); err != nil {
			t.Fatal(err)
		}
	}
}

// storeViews is what the views of the app, machine, fleet and hunting
// pages answer over a day and a month.
func storeViews(t *testing.T, s *Store, now time.Time) []any {
	t.Helper()
	ctx := context.Background()
	var out []any
	for _, p := range []Period{PeriodFor(now.Add(-24*time.Hour), now, now), PeriodFor(now.Add(-30*24*time.Hour), now, now)} {
		apps, err1 := s.DiscoveredApps(ctx, p, false)
		cands, err2 := s.DiscoveredApps(ctx, p, true)
		fleet, err3 := s.Fleet(ctx, p)
		app, err4 := s.App(ctx, p, "slack", "")
		m, err5 := s.Machine(ctx, p, "d1")
		hd, err6 := s.HuntDevices(ctx, []string{"s1.example"}, p)
		totals, err7 := s.DeviceTotals(ctx, p)
		for _, err := range []error{err1, err2, err3, err4, err5, err6, err7} {
			if err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, apps, cands, fleet, app, m, hd, totals)
	}
	return out
}

// pgPlan is PostgreSQL's plan of query.
func pgPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := s.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, "EXPLAIN "+s.q(query), args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	return strings.Join(plan, "\n")
}

// TestDeviceFirstRollupMigration: migration 0035 keys roll_app_device by
// device first on PostgreSQL, drops the device index the key replaces and
// adds a B-tree on bucket. A store made before it (the key and index
// of 0002) upgrades with its rows, every view answers the same before and
// after, and the machine and app views and the pruning read an index.
func TestDeviceFirstRollupMigration(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC()
		s.now = func() time.Time { return now }
		// Every chunk behind the watermark: written into roll_app_device
		// directly, in both spans, as before migration 0039.
		setWatermark(t, s, HourOf(now)+100*86400, HourOf(now)+100*86400)
		// Back to roll_app_device as 0002 made it, then ingest.
		rewindMigration(t, s, 35,
			"DROP INDEX roll_app_device_bucket",
			"ALTER TABLE roll_app_device DROP CONSTRAINT roll_app_device_pkey",
			"ALTER TABLE roll_app_device ADD PRIMARY KEY (span, bucket, app_id, domain, device_id)",
			"CREATE INDEX roll_app_device_device ON roll_app_device(device_id, span, bucket)")
		ingestViewsFixture(t, s, now, "c1")
		before := storeViews(t, s, now)
		if fl := before[2].(FleetSummary); fl.Machines != 3 || len(before[4].(MachineDetail).Apps) == 0 || len(before[3].(AppDetail).Machines) == 0 {
			t.Fatalf("the fixture answers %+v, want three machines, apps and the app's machines", before)
		}
		rows := countRows(t, s, "roll_app_device")
		if err := s.migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s, "roll_app_device"); n != rows {
			t.Fatalf("%d roll_app_device rows after the migration, %d before", n, rows)
		}
		if after := storeViews(t, s, now); !reflect.DeepEqual(before, after) {
			t.Fatalf("views after migration 0035:\n%+v\nwant\n%+v", after, before)
		}
		var key string
		if err := s.r.QueryRowContext(ctx, "SELECT pg_get_indexdef('roll_app_device_pkey'::regclass)").Scan(&key); err != nil || !strings.Contains(key, "(device_id, span, bucket, app_id, domain)") {
			t.Fatalf("primary key %q %v", key, err)
		}
		if n := countRowsWhere(t, s, "pg_indexes", "tablename = 'roll_app_device' AND indexname = 'roll_app_device_device'"); n != 0 {
			t.Errorf("roll_app_device_device still there")
		}
		// The same chunks again (new ids) upsert the migrated rows: the
		// ON CONFLICT target is the new key.
		ingestViewsFixture(t, s, now, "c2")
		if n := countRows(t, s, "roll_app_device"); n != rows {
			t.Errorf("%d roll_app_device rows after the same keys again, want %d (updated, not inserted)", n, rows)
		}
		twice := storeViews(t, s, now)
		if m := twice[4].(MachineDetail); m.Total.Transactions != 2*before[4].(MachineDetail).Total.Transactions {
			t.Errorf("machine total %d after the same chunk twice, want %d", m.Total.Transactions, 2*before[4].(MachineDetail).Total.Transactions)
		}
		// Rows of a fleet's history, written in time order as ingest
		// writes them, so the plans weigh a table of some size: 200
		// devices × 300 hours before the fixture's.
		first := HourOf(now.Add(-400 * time.Hour))
		if _, err := s.w.ExecContext(ctx, "INSERT INTO roll_app_device (span, bucket, app_id, domain, device_id, "+counterCols+", last_hour) "+
			"SELECT 3600, $1::bigint + (i / 200) * 3600, 'zoom', '', 'g' || (i % 200), 1, 1, 1, 0, 0, 0, 0, 0, $1::bigint + (i / 200) * 3600 FROM generate_series(0, 59999) AS i", first); err != nil {
			t.Fatal(err)
		}
		if _, err := s.w.ExecContext(ctx, "ANALYZE roll_app_device"); err != nil {
			t.Fatal(err)
		}
		p := PeriodFor(now.Add(-24*time.Hour), now, now)
		for _, c := range []struct {
			name, query, index string
			args               []any
		}{
			{"machine's apps", "SELECT app_id, domain, " + sumCols("") + ", MAX(last_hour) FROM roll_app_device WHERE device_id = ? AND " + inPeriod + " GROUP BY app_id, domain", "roll_app_device_pkey", append([]any{"d1"}, p.args()...)},
			{"app's machines", s.appMachinesQuery(), "roll_app_device_app", append([]any{"slack", ""}, p.args()...)},
			// The hour an hourly prune drops, and a day of retention.
			{"prune", "DELETE FROM roll_app_device WHERE span = ? AND bucket < ?", "roll_app_device_bucket", []any{SpanHour, first + 3600}},
			{"retention", "DELETE FROM roll_app_device WHERE bucket < ?", "roll_app_device_bucket", []any{first + 24*3600}},
		} {
			if plan := pgPlan(t, s, c.query, c.args...); !strings.Contains(plan, c.index) {
				t.Errorf("%s: plan\n%s\nwant it to read %s", c.name, plan, c.index)
			}
		}
	})
}

func countRowsWhere(t *testing.T, s *Store, table, cond string) int64 {
	t.Helper()
	var n int64
	if err := s.queryRow(context.Background(), "SELECT COUNT(*) FROM "+table+" WHERE "+cond).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// rewindMigration puts s back to before migration version: it runs undo
// (the statements that restore the earlier schema) and forgets the
// version, so the next s.migrate applies it again to the rows ingested
// meanwhile.
func rewindMigration(t *testing.T, s *Store, version int, undo ...string) {
	t.Helper()
	for _, q := range append(undo, fmt.Sprintf("DELETE FROM schema_migrations WHERE version = %d", version)) {
		if _, err := s.w.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
