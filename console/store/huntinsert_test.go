package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestHuntIndexInsertOnlyMigration: migration 0037 drops hunt_index's
// primary key on PostgreSQL for a B-tree on (rdomain, hour). A store made
// before it upgrades with its rows, hunts answer the same before and
// after, new chunks insert rows of their own, and every hunt query reads
// the new index. A console of an earlier version, which upserts the rows
// ON CONFLICT on the dropped key, has every ingest refused once the
// migration ran (docs/scale.md "Upgrading across migration 0037").
func TestHuntIndexInsertOnlyMigration(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		now := time.Now().UTC()
		s.now = func() time.Time { return now }
		// Back to hunt_index as 0002 made it, then ingest.
		rewindMigration(t, s, 37,
			"DROP INDEX hunt_index_domain",
			"ALTER TABLE hunt_index ADD PRIMARY KEY (rdomain, hour, device_id, chunk_id)")
		ingestViewsFixture(t, s, now, "c1")
		hunts := func() []any {
			t.Helper()
			var out []any
			for _, p := range []Period{PeriodFor(now.Add(-24*time.Hour), now, now), PeriodFor(now.Add(-30*24*time.Hour), now, now)} {
				d, err := s.HuntDevices(ctx, []string{"s1.example", "example"}, p)
				if err != nil {
					t.Fatal(err)
				}
				c, err := s.HuntChunks(ctx, []string{"s1.example", "example"}, p.From, p.To, 0, 100)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, d, c)
			}
			return out
		}
		before := hunts()
		if len(before[2].([]HuntDevice)) != 3 || len(before[3].([]HuntChunk)) != 3 {
			t.Fatalf("the fixture's hunts answer %+v, want three devices and their chunks over the month", before)
		}
		rows := countRows(t, s, "hunt_index")
		if err := s.migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s, "hunt_index"); n != rows {
			t.Fatalf("%d hunt_index rows after the migration, %d before", n, rows)
		}
		if after := hunts(); !reflect.DeepEqual(before, after) {
			t.Fatalf("hunts after migration 0037:\n%+v\nwant\n%+v", after, before)
		}
		// An earlier version's statement has no key to conflict on.
		_, err := s.exec(ctx, "INSERT INTO hunt_index (rdomain, hour, device_id, chunk_id, records) VALUES ('example.s1', 0, 'd0', 'old', 1) "+
			"ON CONFLICT (rdomain, hour, device_id, chunk_id) DO UPDATE SET records = hunt_index.records + excluded.records")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42P10" {
			t.Errorf("an earlier version's hunt_index upsert after 0037 = %v, want 42P10 (no unique constraint to infer)", err)
		}
		// The same keys again under new chunk ids: rows of their own.
		ingestViewsFixture(t, s, now, "c2")
		if n := countRows(t, s, "hunt_index"); n != 2*rows {
			t.Errorf("%d hunt_index rows after a second set of chunks, want %d", n, 2*rows)
		}
		twice := hunts()
		if d := twice[2].([]HuntDevice); d[0].Records != 2*before[2].([]HuntDevice)[0].Records {
			t.Errorf("hunt records %d after the same keys twice, want %d", d[0].Records, 2*before[2].([]HuntDevice)[0].Records)
		}
		if c := twice[3].([]HuntChunk); len(c) != 6 {
			t.Errorf("%d chunks hunted after a second set, want 6", len(c))
		}
		// A fleet's history, in time order as ingest writes it, so the
		// plans weigh a table of some size: 120 devices × 300 hours × 4
		// names, two of them under example.com (144,000 rows).
		h := HourOf(now)
		first := HourOf(now.Add(-400 * time.Hour))
		if _, err := s.w.ExecContext(ctx, "INSERT INTO hunt_index (rdomain, hour, device_id, chunk_id, records) "+
			"SELECT CASE i % 4 WHEN 0 THEN 'com.example.www' WHEN 1 THEN 'com.example.mail' WHEN 2 THEN 'net.other' ELSE 'org.n' || (i % 97) END, "+
			"$1::bigint + (i / 480) * 3600, 'g' || (i / 4 % 120), 'h' || (i / 480), 1 FROM generate_series(0, 143999) AS i", first); err != nil {
			t.Fatal(err)
		}
		if _, err := s.w.ExecContext(ctx, "ANALYZE hunt_index"); err != nil {
			t.Fatal(err)
		}
		devices := "SELECT h.device_id, MIN(h.hour), MAX(h.hour), SUM(h.records) FROM hunt_index h WHERE %s AND h.hour >= ? AND h.hour < ? GROUP BY h.device_id ORDER BY SUM(h.records) DESC, h.device_id"
		chunks := "SELECT h.device_id, h.chunk_id, c.path, MIN(h.hour) FROM hunt_index h JOIN chunks c ON c.device_id = h.device_id AND c.chunk_id = h.chunk_id " +
			"WHERE %s AND h.hour >= ? AND h.hour < ? GROUP BY h.device_id, h.chunk_id, c.path ORDER BY MIN(h.hour), h.device_id, h.chunk_id"
		names, rng := "h.rdomain IN (?, ?)", "(h.rdomain > ? AND h.rdomain < ?)"
		for _, c := range []struct {
			name, query string
			args        []any
		}{
			{"name seek", "SELECT 1 FROM hunt_index WHERE rdomain = ? LIMIT 1", []any{"com.example"}},
			{"next name", "SELECT MIN(rdomain) FROM hunt_index WHERE rdomain > ? AND rdomain < ?", []any{"com.example.", "com.example/"}},
			{"devices by names, a day", fmt.Sprintf(devices, names), []any{"com.example.www", "com.example.mail", h - 86400, h}},
			{"devices by range, a day", fmt.Sprintf(devices, rng), []any{"com.example.", "com.example/", h - 86400, h}},
			{"chunks by names, an hour", fmt.Sprintf(chunks, names), []any{"com.example.www", "com.example.mail", h - 3600, h}},
			{"chunks by range, an hour", fmt.Sprintf(chunks, rng), []any{"com.example.", "com.example/", h - 3600, h}},
		} {
			if plan := pgPlan(t, s, c.query, c.args...); !strings.Contains(plan, "hunt_index_domain") {
				t.Errorf("%s: plan\n%s\nwant it to read hunt_index_domain", c.name, plan)
			}
		}
	})
}
