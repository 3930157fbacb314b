package store

import (
	"context"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestWithoutRowidMigration: migration 0024 turns the SQLite rollup,
// presence, hunting and aggregate tables into WITHOUT ROWID tables and
// every view answers the same from them as before.
func TestWithoutRowidMigration(t *testing.T) {
	ctx := context.Background()
	s := sqliteStore(t)
	now := time.Now().UTC()
	ingestViewsFixture(t, s, now, "c")
	views := func() []any {
		hc, err := s.HuntChunks(ctx, []string{"example"}, now.Add(-30*24*time.Hour), now.Add(time.Hour), 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		return append(storeViews(t, s, now), hc)
	}
	tables := regexp.MustCompile(`(?m)^CREATE TABLE (\w+)_wr \(`).FindAllStringSubmatch(mustMigration(t, "0024_without_rowid.sqlite.sql"), -1)
	if len(tables) < 10 {
		t.Fatalf("0024 rebuilds %d tables", len(tables))
	}
	withoutRowid := func(name string) bool {
		var sql string
		if err := s.w.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", name).Scan(&sql); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(sql, "WITHOUT ROWID")
	}
	after := views()
	if apps := after[7].([]AppStat); len(apps) != 2 || after[len(after)-1].([]HuntChunk) == nil {
		t.Fatalf("the fixture answers %+v, want two apps and hunting chunks", after)
	}
	// Back to the tables as 0001–0022 made them (rowid tables, same
	// columns and indexes), then migrate again.
	for _, m := range tables {
		name := m[1]
		if !withoutRowid(name) {
			t.Fatalf("%s is not WITHOUT ROWID after Open", name)
		}
		var def string
		if err := s.w.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", name).Scan(&def); err != nil {
			t.Fatal(err)
		}
		var idx []string
		rows, err := s.w.QueryContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", name)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var q string
			rows.Scan(&q)
			idx = append(idx, q)
		}
		rows.Close()
		old := strings.Replace(strings.Replace(def, " WITHOUT ROWID", "", 1), "CREATE TABLE \""+name+"\"", "CREATE TABLE "+name+"_old", 1)
		old = strings.Replace(old, "CREATE TABLE "+name+" ", "CREATE TABLE "+name+"_old ", 1)
		for _, q := range append([]string{old, "INSERT INTO " + name + "_old SELECT * FROM " + name, "DROP TABLE " + name, "ALTER TABLE " + name + "_old RENAME TO " + name}, idx...) {
			if _, err := s.w.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if withoutRowid(name) {
			t.Fatalf("%s still WITHOUT ROWID", name)
		}
	}
	if before := views(); !reflect.DeepEqual(before, after) {
		t.Fatalf("views differ between the rowid tables and the migrated ones")
	}
	// 0024 makes the narrow app indexes of 0002 again; 0032 (covering
	// indexes) runs after it, as on a store upgraded from before both.
	if _, err := s.w.ExecContext(ctx, "DELETE FROM schema_migrations WHERE version IN (24, 32)"); err != nil {
		t.Fatal(err)
	}
	if err := s.migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for index, col := range map[string]string{"roll_app_device_app": "last_hour", "roll_app_user_app": "bypassed"} {
		var def string
		if err := s.w.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", index).Scan(&def); err != nil || !strings.Contains(def, col) {
			t.Errorf("%s after upgrading: %q %v, want it to carry %s (migration 0032)", index, def, err, col)
		}
	}
	for _, m := range tables {
		if !withoutRowid(m[1]) {
			t.Errorf("%s is not WITHOUT ROWID after the migration", m[1])
		}
	}
	if again := views(); !reflect.DeepEqual(again, after) {
		t.Errorf("views after migrating the rowid tables:\n%+v\nwant\n%+v", again, after)
	}
}

func mustMigration(t *testing.T, name string) string {
	b, err := migrations.ReadFile("migrations/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
