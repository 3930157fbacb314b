package ingest

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netward/netward/console/store"
	"github.com/netward/netward/internal/pgtest"
)

// syncBuffer is a log destination Run's goroutines may write at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunFoldsOnPostgres: Run, on PostgreSQL, folds what a chunk left for
// later — the fleet-wide rollups' pending rows (every second) and, days
// on, the hunting index's and the device's app hours into their days
// (store.FoldHuntDays, on its first pass) — and returns once ctx ends.
// (Every hourly pass folds the pending rows too: a second chunk's, sent
// after the first pass, are folded by the every-second fold alone.)
// The chunk goes through the real handler; the tables are read directly,
// since what each fold leaves behind is the store's business (its own
// tests check the sums).
func TestRunFoldsOnPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t, "ingestrun", pgtest.Options{})
	st, err := store.Open(ctx, store.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	count := func(q string) int64 {
		t.Helper()
		var n int64
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	start := time.Now().UTC()
	var now atomic.Int64
	now.Store(start.Unix())
	var logs syncBuffer
	f := newFixture(t, Config{Store: st, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Now: func() time.Time { return time.Unix(now.Load(), 0).UTC() }})
	in := f.in

	// An hour ago: after the hunting watermark (a day start at least two
	// hours back), so its rows wait in the hour tables for the fold.
	at := start.Add(-time.Hour).Format(time.RFC3339)
	body := gz(`{"Timestamp":"`+at+`","DeviceId":"dev1","DeviceName":"laptop","ActionType":"ConnectionSuccess","RemoteUrl":"www.dropbox.com","BytesSent":100,"BytesReceived":1000,"InitiatingProcessAccountName":"alice"}`,
		`{"Timestamp":"`+at+`","DeviceId":"dev1","DeviceName":"laptop","ActionType":"ConnectionSuccess","RemoteUrl":"unknown.example","BytesSent":1,"BytesReceived":2}`)
	put := func(chunk string) {
		t.Helper()
		if got := f.put(t, "dev1", chunk, body).StatusCode; got != http.StatusCreated {
			t.Fatalf("PUT %s = %d, want 201", chunk, got)
		}
	}
	put("c1")
	const pending = "SELECT (SELECT COUNT(*) FROM roll_app_chunk_pending) + (SELECT COUNT(*) FROM roll_app_user_chunk_pending)"
	const appHours = "SELECT COUNT(*) FROM roll_app_device_hour WHERE bucket >= (SELECT g FROM app_hours_watermark)"
	const huntHours = "SELECT COUNT(*) FROM hunt_index WHERE hour >= (SELECT f FROM hunt_watermark)"
	const appDays = "SELECT COUNT(*) FROM roll_app_device WHERE span = 86400 AND device_id = 'dev1'"
	if count(pending) == 0 || count(appHours) == 0 || count(huntHours) == 0 || count(appDays) != 0 {
		t.Fatalf("after the chunk: %d pending rows, %d app hour rows, %d hunting index rows not folded, %d app day rows; want some, some, some, none",
			count(pending), count(appHours), count(huntHours), count(appDays))
	}

	// Three days on: the chunk's day is past the hunting watermark.
	now.Store(start.Add(72 * time.Hour).Unix())
	rctx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- in.Run(rctx) }()
	defer func() {
		cancel()
		select {
		case err := <-ran:
			if err != nil {
				t.Errorf("Run = %v, want nil once ctx ends", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run has not returned 30 s after its context ended")
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		p, ah, hh, ad := count(pending), count(appHours), count(huntHours), count(appDays)
		if p == 0 && ah == 0 && hh == 0 && ad > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s into Run: %d pending rows, %d app hour rows and %d hunting index rows not folded, %d app day rows of the device; want none, none, none, some\nlog:\n%s",
				p, ah, hh, ad, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "appDayRows=") {
		t.Errorf("Run folded the days but did not log it:\n%s", logs.String())
	}
	// A chunk now: its pending rows wait for the every-second fold (the
	// hourly pass, which also folds them, is an hour away).
	put("c2")
	for deadline := time.Now().Add(30 * time.Second); count(pending) != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("30 s after a chunk, %d of its pending rows are not folded\nlog:\n%s", count(pending), logs.String())
		}
	}
}
