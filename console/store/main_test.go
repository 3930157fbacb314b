package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/internal/pgtest"
)

// pg is this package's private PostgreSQL cluster (nil when unavailable;
// pgErr says why).
var (
	pg    *pgtest.Cluster
	pgErr error
)

func TestMain(m *testing.M) {
	if os.Getenv("NETWARD_E2E") != "off" {
		pg, pgErr = pgtest.Start()
	} else {
		pgErr = errors.New("NETWARD_E2E=off")
	}
	code := m.Run()
	if pg != nil {
		pg.Stop()
	}
	os.Exit(code)
}

// dsns remembers each test store's DSN, so twin can open a second Store
// on the same database (a replica).
var dsns sync.Map // *Store → DSN

// twin opens another Store on s's database, closed when the test ends.
func (s *Store) twin(t *testing.T) *Store {
	t.Helper()
	dsn, ok := dsns.Load(s)
	if !ok {
		t.Fatal("twin: store not opened by eachStore")
	}
	o, err := Open(context.Background(), Config{DSN: dsn.(string)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// eachStore runs f against a fresh SQLite store and a fresh PostgreSQL
// database: the one suite both backends must pass.
func eachStore(t *testing.T, f func(t *testing.T, s *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		dsn := "sqlite:" + filepath.Join(t.TempDir(), "console.db")
		s, err := Open(context.Background(), Config{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		dsns.Store(s, dsn)
		t.Cleanup(func() { s.Close() })
		f(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		if pg == nil {
			msg := fmt.Sprintf("PostgreSQL store tests need a private cluster: %v", pgErr)
			if pgtest.Required() {
				t.Fatal(msg)
			}
			e2e.Skip(t, msg)
		}
		dsn, err := pg.NewDatabase("store")
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(context.Background(), Config{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		dsns.Store(s, dsn)
		t.Cleanup(func() { s.Close() })
		f(t, s)
	})
}

// sqliteStore opens a fresh SQLite store, closed when the test ends.
func sqliteStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{DSN: "sqlite:" + filepath.Join(t.TempDir(), "console.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
