package server

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netward/netward/console/store"
	"github.com/netward/netward/internal/e2e"
)

// A custom app created or deleted in the store by another replica gets
// this replica's app matcher rebuilt (issue 22 replicas × custom apps in
// ingest and the analytics of issue 18); no change, no rebuild.
func TestWatchCustomAppsRebuilds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, store.Config{DSN: "sqlite:" + filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var rebuilds atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = watchCustomApps(ctx, st, 10*time.Millisecond, func(context.Context) { rebuilds.Add(1) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	time.Sleep(100 * time.Millisecond)
	if n := rebuilds.Load(); n != 0 {
		t.Fatalf("%d rebuilds without a change", n)
	}
	a, err := st.CreateCustomApp(ctx, store.CustomApp{Name: "intranet", Domains: []string{"intra.example"}, CreatedBy: "other replica"})
	if err != nil {
		t.Fatal(err)
	}
	e2e.WaitFor(t, "a rebuild after the app was created", 10*time.Second, func() bool { return rebuilds.Load() == 1 })
	if err := st.DeleteCustomApp(ctx, a.ID, "custom-1"); err != nil {
		t.Fatal(err)
	}
	e2e.WaitFor(t, "a rebuild after the app was deleted", 10*time.Second, func() bool { return rebuilds.Load() == 2 })
	cancel()
	<-done
}
