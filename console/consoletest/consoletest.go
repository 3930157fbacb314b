// Package consoletest builds the pieces console tests share: a fresh
// SQLite store and an auth service with cheap password hashing, with an
// enrolled device when a test needs one.
package consoletest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/store"
)

// CheapArgon2 keeps password hashing out of test time.
var CheapArgon2 = auth.Argon2Params{Time: 1, Memory: 64, Threads: 1}

// Store opens a fresh SQLite store, closed when the test ends.
func Store(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DSN: "sqlite:" + filepath.Join(t.TempDir(), "console.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Auth is an auth service on st; cfg's Store and Argon2 are filled in.
func Auth(st *store.Store, cfg auth.Config) *auth.Service {
	cfg.Store, cfg.Argon2 = st, CheapArgon2
	return auth.New(cfg)
}

// Enroll enrolls device id with a new key and returns its token.
func Enroll(t testing.TB, a *auth.Service, id string) string {
	t.Helper()
	ctx := context.Background()
	k, _, err := a.CreateEnrollKey(ctx, "test", "admin", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.Enroll(ctx, k, id, id)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
