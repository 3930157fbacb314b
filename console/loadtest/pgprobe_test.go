package loadtest

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/netward/netward/internal/pgtest"
)

// The probe, on a real PostgreSQL with production durability (full-page
// writes on), sees in the right windows a forced CHECKPOINT (started,
// completed, buffers written), the full-page images of the first writes
// after it, a backend waiting on a lock, and a VACUUM while it runs —
// and none of them in the window before.
func TestPGProbeSeesCheckpointLockVacuum(t *testing.T) {
	dsn := pgtest.Database(t, "probe", pgtest.Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(c interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}, q string) {
		t.Helper()
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Autovacuum off on it: the only vacuum is the test's.
	exec(db, "CREATE TABLE t (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off)")
	exec(db, "INSERT INTO t SELECT i, repeat('x', 100) FROM generate_series(1, 20000) i")
	exec(db, "DELETE FROM t WHERE id % 2 = 0")

	pgp, err := newPGProbe(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	// 1-s windows sampled every 50 ms keep the test short.
	const win = time.Second
	start := time.Now()
	p := newProbe(start, win, 50*time.Millisecond, pgp, func(err error) { t.Errorf("sample: %v", err) })
	p.run(ctx)
	defer p.stop()
	index := func() int { return int(time.Since(start) / win) }
	nextWindow := func() int {
		i := index() + 1
		time.Sleep(time.Until(start.Add(time.Duration(i)*win + 100*time.Millisecond)))
		return i
	}

	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ckW := nextWindow() // window 1
	exec(conn, "CHECKPOINT")
	exec(conn, "UPDATE t SET v = 'y' WHERE id < 2000") // full-page images: first change since the checkpoint
	// A backend publishes its WAL counters at most once a second (or
	// when idle for 10 s): this one now.
	exec(conn, "SELECT pg_stat_force_next_flush()")

	lockW := nextWindow()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	exec(tx, "LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
	blocked := make(chan error, 1)
	go func() { _, err := db.ExecContext(ctx, "SELECT count(*) FROM t"); blocked <- err }()
	// The lock is held until the probe has seen the backend wait on it
	// (the blocked query opens a connection of its own first, which under
	// load took more than the half second the test used to hold it), or
	// for at most 30 s: if the probe never sees it, the check below fails.
	sawLock := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, w := range p.pgw {
			if i >= lockW && w.Waits.Lock > 0 {
				return true
			}
		}
		return false
	}
	for wait := time.Now().Add(30 * time.Second); !sawLock() && time.Now().Before(wait); {
		time.Sleep(10 * time.Millisecond)
	}
	lockEnd := index()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}

	vacW := nextWindow()
	// Cost-based delay makes the vacuum of ~300 pages last a while.
	exec(conn, "SET vacuum_cost_delay = '2ms'")
	exec(conn, "SET vacuum_cost_limit = 1")
	t0 := time.Now()
	exec(conn, "VACUUM t")
	vacEnd := index()
	took := time.Since(t0)
	time.Sleep(200 * time.Millisecond)
	p.stop()

	ws := make([]Window, vacEnd+1)
	p.join(ws)
	for i, w := range ws {
		if w.PG == nil || w.PG.Samples == 0 || w.PG.SampleErrors > 0 {
			t.Fatalf("window %d not sampled: %+v", i, w.PG)
		}
		t.Logf("window %d: %+v", i, *w.PG)
	}
	if w := ws[0].PG; w.CheckpointsStarted+w.CheckpointsDone != 0 || w.Waits.Lock != 0 || w.Vacuums != 0 || w.WALFPI != 0 {
		t.Errorf("window 0, before anything: %+v", w)
	}
	// The checkpoint's windows: from the one it was asked in to the one
	// the lock test started in (the next one when all is quick).
	var started, done, buffers, fpi int64
	for _, w := range ws[ckW : lockW+1] {
		started, done, buffers, fpi = started+w.PG.CheckpointsStarted, done+w.PG.CheckpointsDone, buffers+w.PG.CheckpointBuffers, fpi+w.PG.WALFPI
	}
	if started != 1 || done != 1 || buffers == 0 || fpi == 0 {
		t.Errorf("checkpoint windows %d–%d: %d started, %d done, %d buffers written, %d full-page images; want 1, 1, some, some", ckW, lockW, started, done, buffers, fpi)
	}
	var locks int
	for i, w := range ws {
		switch {
		case i < lockW && w.PG.Waits.Lock != 0:
			t.Errorf("window %d, before the lock test's window %d: %+v", i, lockW, w.PG.Waits)
		case i >= lockW && i <= lockEnd:
			locks += w.PG.Waits.Lock
		}
	}
	if locks == 0 {
		t.Errorf("lock windows %d–%d: no backend seen waiting on a lock", lockW, lockEnd)
	}
	var seen bool
	for _, w := range ws[vacW:] {
		seen = seen || w.PG.Vacuuming() && slices.Contains(w.PG.VacuumTables, "t")
	}
	for _, w := range ws[:vacW] {
		if w.PG.Vacuuming() {
			t.Errorf("a vacuum before the test's: %+v", w.PG)
		}
	}
	if !seen {
		t.Errorf("the VACUUM (%v long, windows %d–%d) was not seen", took, vacW, vacEnd)
	}
}
