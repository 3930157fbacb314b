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

// watchApps opens a store and starts watchCustomApps on it from the
// version since returns (read before the watch starts, as the server reads
// it before its first build), counting the rebuilds.
func watchApps(t *testing.T, since func(context.Context, *store.Store) string) (context.Context, *store.Store, *atomic.Int64) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Config{DSN: "sqlite:" + filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	v := since(ctx, st)
	var rebuilds atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = watchCustomApps(ctx, st, v, 10*time.Millisecond, func(context.Context) { rebuilds.Add(1) })
	}()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return ctx, st, &rebuilds
}

func appsVersion(t *testing.T) func(context.Context, *store.Store) string {
	return func(ctx context.Context, st *store.Store) string {
		v, err := st.CustomAppsVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// A custom app created or deleted in the store by another replica gets
// this replica's app matcher rebuilt (issue 22 replicas × custom apps in
// ingest and the analytics of issue 18); no change, no rebuild.
func TestWatchCustomAppsRebuilds(t *testing.T) {
	ctx, st, rebuilds := watchApps(t, appsVersion(t))
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
}

// An app another replica creates after the server read the apps' version
// for its first build but before the watch's first look is rebuilt for
// too (the watch used to read its own first version, so the app was
// missed until the next change; TestWatchCustomAppsRebuilds failed so
// when its create came before the watch goroutine ran, 26 of 100 runs
// under load).
func TestWatchCustomAppsChangeBeforeWatch(t *testing.T) {
	_, _, rebuilds := watchApps(t, func(ctx context.Context, st *store.Store) string {
		v := appsVersion(t)(ctx, st)
		if _, err := st.CreateCustomApp(ctx, store.CustomApp{Name: "intranet", Domains: []string{"intra.example"}, CreatedBy: "other replica"}); err != nil {
			t.Fatal(err)
		}
		return v
	})
	e2e.WaitFor(t, "a rebuild for the app created before the watch started", 10*time.Second, func() bool { return rebuilds.Load() == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := rebuilds.Load(); n != 1 {
		t.Fatalf("%d rebuilds for one change", n)
	}
}

// The server reads the apps' version before its first build (firstBuild):
// an app another replica creates while that build runs (after it read the
// catalog) is then rebuilt for by the watch. With the version read after
// the build the app would be missed until the next change.
func TestFirstBuildReadsVersionBefore(t *testing.T) {
	_, _, rebuilds := watchApps(t, func(ctx context.Context, st *store.Store) string {
		return firstBuild(ctx, st, func(ctx context.Context) {
			if _, err := st.CreateCustomApp(ctx, store.CustomApp{Name: "intranet", Domains: []string{"intra.example"}, CreatedBy: "other replica"}); err != nil {
				t.Fatal(err)
			}
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	e2e.WaitFor(t, "a rebuild for the app created during the first build", 10*time.Second, func() bool { return rebuilds.Load() == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := rebuilds.Load(); n != 1 {
		t.Fatalf("%d rebuilds for one change", n)
	}
}
