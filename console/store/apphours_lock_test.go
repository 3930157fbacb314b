package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestAppDeviceFoldLockOrderWithLateChunk: the fold adds to a device's
// roll_app_device day rows in the order a late chunk of that device locks
// the same rows (appDeviceFoldSQL, appDeviceSQL), so when both need them
// one waits for the other and neither deadlocks. The fold is held, by
// locks that give no transaction id (its wait does not see them), past
// its wait; then a row lock stops it between the device's two day rows;
// a late chunk of the device then adds to both. With the fold's rows in
// another order than the chunk's, one holds a row the other waits for
// while waiting for one the other holds, and PostgreSQL aborts one of
// them: the second row locked catches a fold in another order, the first
// a chunk in another order (PostgreSQL).
//
// The same for the device's day presence rows (presence_app_device, one
// per app and 32 days): the fold sets day d's bit after its day rows; a
// late chunk of day d-1 inserts day rows the fold does not touch, then
// sets d-1's bit in the same presence rows, so the two meet only there.
func TestAppDeviceFoldLockOrderWithLateChunk(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		// Day 4 of a 32-day presence block, 20 to 84 days back: d-2 in
		// the same block.
		base := bucketOf(HourOf(time.Now().UTC().Add(-20*24*time.Hour)), SpanDay)
		base -= (base/86400%32 + 28) * 86400
		i := 0
		for _, presence := range []bool{false, true} {
			for _, locked := range []string{"slack", "dropbox"} {
				name := "locked day row of " + locked
				if presence {
					name = "locked presence row of " + locked
				}
				d := base + int64(i)*3*86400
				i++
				t.Run(name, func(t *testing.T) { foldAgainstLateChunk(t, s, d, locked, presence) })
			}
		}
	})
}

// foldAgainstLateChunk is TestAppDeviceFoldLockOrderWithLateChunk with
// the device's day row of the app locked held, on day d (its day
// presence row with presence).
func foldAgainstLateChunk(t *testing.T, s *Store, d int64, locked string, presence bool) {
	ctx := context.Background()
	now := time.Unix(d+86400+3*3600, 0).UTC() // the fold moves w to d + 1 day
	s.now = func() time.Time { return now }
	dev := "x-" + locked
	if presence {
		dev = "p-" + locked
	}
	// The rows an earlier call left, older than the hours kept now.
	for _, table := range []string{"traffic_hourly", "roll_app_device", "roll_app_device_hour", "presence_app_device"} {
		if _, err := s.w.ExecContext(ctx, "DELETE FROM "+table); err != nil {
			t.Fatal(err)
		}
	}
	// The direct rows before the fold and the late chunk's: day d's
	// (the day rows the fold adds to), or, for the presence rows, days
	// d-2 and d-1 (day rows of their own, the fold's presence rows).
	first, lateDay := d, d
	if presence {
		first, lateDay = d-2*86400, d-86400
	}
	chunk := func(id string, n, day int64) error {
		tr := map[TrafficKey]*Counters{}
		for _, app := range []string{"dropbox", "slack"} { // byte order: dropbox's rows first
			tr[TrafficKey{day + 5*3600, app, app + ".com"}] = &Counters{Transactions: n, BytesSent: 10 * n}
		}
		return s.IngestChunk(ctx, &ChunkBatch{Meta: ChunkMeta{DeviceID: dev, ChunkID: id + dev, SHA256: id, ReceivedAt: now, Path: dev + "/" + id}, Traffic: tr})
	}
	// The device's day rows of d, written directly (a late chunk), so
	// that one of them can be locked; then rows of d's hours for the
	// fold (roll_app_device_hour).
	setWatermark(t, s, d+86400, d)
	if err := chunk("c0", 1, first); err != nil {
		t.Fatal(err)
	}
	setWatermark(t, s, d, d)
	if err := chunk("c1", 2, d); err != nil {
		t.Fatal(err)
	}
	if n := countRowsWhere(t, s, "roll_app_device_hour", "device_id = '"+dev+"'"); n != 2 {
		t.Fatalf("%d roll_app_device_hour rows of the device, want 2", n)
	}
	begin := func() *sql.Tx {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	// waitLocks waits until n sessions of this database wait for a lock.
	waitLocks := func(n int, what string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			var k int
			if err := s.w.QueryRowContext(ctx, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&k); err != nil {
				t.Fatal(err)
			}
			if k >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d sessions wait for a lock after 30 s, want %d", what, k, n)
			}
		}
	}
	// 1. A table lock (no transaction id) stops the fold at its first
	// write, after its wait.
	hold := begin()
	defer hold.Rollback()
	if _, err := hold.ExecContext(ctx, "LOCK TABLE hunt_daily_folded IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	folded := make(chan error, 1)
	go func() {
		_, err := s.FoldHuntDays(ctx, now)
		folded <- err
	}()
	waitLocks(1, "the fold at hunt_daily_folded")
	// 2. One of the device's day rows locked; then the fold goes on
	// and waits for it (holding the other when it comes first).
	row := begin()
	defer row.Rollback()
	var one int
	lock := fmt.Sprintf("SELECT 1 FROM roll_app_device WHERE span = 86400 AND bucket = %d AND app_id = $1 AND device_id = $2 FOR UPDATE", d)
	if presence {
		lock = fmt.Sprintf("SELECT 1 FROM presence_app_device WHERE span = 86400 AND block = %d AND app_id = $1 AND device_id = $2 FOR UPDATE", d/86400/32)
	}
	if err := row.QueryRowContext(ctx, lock, locked, dev).Scan(&one); err != nil {
		t.Fatal(err)
	}
	if err := hold.Commit(); err != nil {
		t.Fatal(err)
	}
	waitLocks(1, "the fold at the locked day row")
	// 3. A late chunk of the device (begun after the fold's wait, so it
	// reads the moved w): it adds to both day rows.
	late := make(chan error, 1)
	go func() { late <- chunk("c2", 4, lateDay) }()
	waitLocks(2, "the late chunk")
	if err := row.Commit(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]chan error{"the fold": folded, "the late chunk": late} {
		select {
		case err := <-c:
			var pe interface{ SQLState() string }
			if errors.As(err, &pe) && pe.SQLState() == "40P01" {
				t.Errorf("%s: deadlock with the other: %v", name, err)
			} else if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s has not ended after 60 s", name)
		}
	}
	appRowsExactly(t, s, "after the fold and the late chunk")
}
