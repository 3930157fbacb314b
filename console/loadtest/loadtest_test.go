package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/server"
	"github.com/netward/netward/internal/pgtest"
)

// startConsole runs a console in this process on dsn ("" for SQLite).
func startConsole(t *testing.T, dsn string) (url, fingerprint, password string) {
	t.Helper()
	dir := t.TempDir()
	store := ""
	if dsn != "" {
		store = fmt.Sprintf(`,"store":{"dsn":%q}`, dsn)
	}
	cfg, err := server.ParseConfig([]byte(fmt.Sprintf(`{"listen":"127.0.0.1:0","dataDir":%q%s,"ingest":{"retryAfterSeconds":1}}`, filepath.Join(dir, "data"), store)), "test")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := server.New(cfg, nil, pw)
	s.Argon2 = auth.Argon2Params{Time: 1, Memory: 64, Threads: 1}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("console: %v", err)
		}
	})
	sc := bufio.NewScanner(pr)
	for password == "" && sc.Scan() {
		line := sc.Text()
		last := line[strings.LastIndexByte(line, ' ')+1:]
		switch {
		case strings.HasPrefix(line, "netward-console serving "):
			url = last
		case strings.HasPrefix(line, "certificate SHA-256"):
			fingerprint = last
		case strings.HasPrefix(line, "initial admin account"):
			password = last
		}
	}
	go io.Copy(io.Discard, pr)
	if password == "" {
		t.Fatal("console did not start")
	}
	return url, fingerprint, password
}

// The short correctness run of `make loadtest`: a small fleet enrolls,
// holds polls and uploads for a few seconds; every tag change reaches
// every poll, and the aggregates count exactly what was acknowledged.
// Timing is reported, never asserted (docs/scale.md has the figures).
func TestFleetShort(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			dsn := ""
			if kind == "postgres" {
				pg, err := pgtest.Start()
				if err != nil {
					if pgtest.Required() {
						t.Fatal(err)
					}
					t.Skip(err)
				}
				t.Cleanup(pg.Stop)
				if dsn, err = pg.NewDatabase("fleet"); err != nil {
					t.Fatal(err)
				}
			}
			url, fp, pw := startConsole(t, dsn)
			names, err := LoadNames(existing("../../../shared/data/blocklist-stevenblack.txt"), "")
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), Config{Console: url, Fingerprint: fp, AdminPassword: pw, PID: os.Getpid(),
				Devices: 30, Polls: 25, Uploaders: 6, Duration: 3 * time.Second, FullEvery: 3, FullRecords: 800, SmallRecords: 40,
				FeedChanges: 2, FeedTimeout: 20 * time.Second, Names: names})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", *rep)
			if !rep.Check.OK || rep.Check.SentTransactions == 0 {
				t.Errorf("check: %+v", rep.Check)
			}
			if rep.Chunks == 0 || rep.Errors != 0 || rep.Unacknowledged != 0 {
				t.Errorf("uploads: %d chunks, %d errors (%v), %d unacknowledged", rep.Chunks, rep.Errors, rep.FirstErrors, rep.Unacknowledged)
			}
			if rep.HeldPolls != 25 || len(rep.Feed) != 2 {
				t.Fatalf("held %d polls, %d feed changes measured", rep.HeldPolls, len(rep.Feed))
			}
			for _, f := range rep.Feed {
				if f.Delivered != 25 || f.BytesSent <= 0 {
					t.Errorf("feed change %+v: not every poll got it", f)
				}
			}
		})
	}
}

func existing(p string) string {
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// The generated chunk says what it holds.
func TestMakeChunkCounts(t *testing.T) {
	names := Names{Apps: []string{"dropbox.com", "mega.nz"}, Blocklist: []string{"ads.example"}}
	c, err := makeChunk(newRand(1), names, "dev", 500, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.sent.Records != 500 || c.sent.Transactions != 499 || len(c.gz) == 0 {
		t.Errorf("chunk: %+v", c.sent)
	}
}
