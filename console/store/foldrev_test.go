package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// The presence upsert leaves out a row only when its stored row has every
// bit and every bypass bit the fold brings (foldStatements). Two cases the
// skip must not swallow: a fold that brings a bit already set together
// with one not set yet (two hours of one presence block in one fold), and
// a fold that brings no new bit but a new bypass bit (a user seen in an
// hour, then seen bypassing in the same hour). Both stores give the same
// rows, down to each bit.
func TestFoldPresenceSkipKeepsNewBits(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 30, 0, 0, time.UTC)
	got := map[string][]string{}
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		s.now = func() time.Time { return now }
		enrolled(t, s)
		ingest := func(id string, at time.Time, bobBypasses bool) {
			t.Helper()
			ingestDropbox(t, s, id, at, bobBypasses)
		}
		fold := func() {
			t.Helper()
			if err := s.FoldRollups(ctx); err != nil {
				t.Fatal(err)
			}
		}
		ingest("c1", now, false) // hour 12: bob's bit, no bypass
		fold()
		ingest("c2", now, false)                   // hour 12 again: set already
		ingest("c3", now.Add(-2*time.Hour), false) // hour 10: same block, new bit
		fold()
		ingest("c4", now, true) // hour 12 once more, bob bypassing: a bypass bit only
		fold()
		got[s.dialect] = rollupRows(t, s)
	})
	pgRows := sameRollupsOnBothStores(t, got)
	h := HourOf(now)
	hBlock, bit := presenceOf(SpanHour, h)
	_, bit10 := presenceOf(SpanHour, h-2*3600)
	dBlock, dBit := presenceOf(SpanDay, bucketOf(h, SpanDay))
	for _, want := range []string{
		fmt.Sprint("presence_app_user", SpanHour, hBlock, "dropbox||bob", [9]int64{bit | bit10, bit}),
		fmt.Sprint("presence_app_user", SpanDay, dBlock, "dropbox||bob", [9]int64{dBit, dBit}),
	} {
		if !slices.Contains(pgRows, want) {
			t.Errorf("no row %q among:\n%s", want, strings.Join(pgRows, "\n"))
		}
	}
}

// Migration 0040 must not stop a console from starting where lz4 cannot be
// set: its comment promises "a NOTICE and pglz elsewhere". A server older
// than PostgreSQL 14 has no SET COMPRESSION clause at all, and PL/pgSQL
// parses a DO block's static statements before it runs the block, so a
// syntax error there is raised outside the block's EXCEPTION handler: the
// migration failed instead of keeping pglz. Simulated here by a clause
// this server does not know either. The migration also runs twice without
// error and without rewriting the tables (relfilenode unchanged).
func TestMigration0040KeepsPglzWhereItCannot(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		b, err := migrations.ReadFile("migrations/0040_pending_lz4.postgres.sql")
		if err != nil {
			t.Fatal(err)
		}
		run := func(body string) error {
			tx, err := s.w.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			for _, stmt := range splitSQL(body) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			return tx.Commit()
		}
		files := func() string {
			t.Helper()
			var f string
			if err := s.queryRow(ctx, "SELECT string_agg(relfilenode::text, ',' ORDER BY relname) FROM pg_class "+
				"WHERE relname IN ('roll_app_chunk_pending', 'roll_app_user_chunk_pending')").Scan(&f); err != nil {
				t.Fatal(err)
			}
			return f
		}
		before := files()
		if err := run(string(b)); err != nil {
			t.Fatalf("migration 0040 run again: %v", err)
		}
		if after := files(); after != before {
			t.Errorf("migration 0040 rewrote the pending tables: relfilenode %s → %s", before, after)
		}
		old := strings.ReplaceAll(string(b), "SET COMPRESSION", "SET COMPRESSION_UNKNOWN")
		if old == string(b) {
			t.Fatal("the migration has no SET COMPRESSION to simulate an older server with")
		}
		if err := run(old); err != nil {
			t.Fatalf("migration 0040 on a server without SET COMPRESSION: %v; want a NOTICE and pglz kept", err)
		}
	})
}
