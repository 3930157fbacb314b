package indicators

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
)

func TestStoreSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "indicators.db")
	s, err := OpenStore(StoreConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(); ok || err != nil {
		t.Fatalf("empty store: ok=%v err=%v", ok, err)
	}
	want := Record{Body: []byte(`{"version":"1"}`), Version: "1", Signature: "ed25519=abc", Source: "https://console.example/v1/indicators", FetchedAt: testNow}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore(StoreConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, ok, err := s.Load()
	if !ok || err != nil || !bytes.Equal(got.Body, want.Body) || got.Version != "1" || got.Signature != want.Signature || got.Source != want.Source || !got.FetchedAt.Equal(testNow) {
		t.Errorf("Load = %+v %v %v, want %+v", got, ok, err, want)
	}
}

func TestStoreCorruptMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "indicators.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a bbolt file "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := OpenStore(StoreConfig{Path: path, Log: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatalf("a corrupt store must be moved aside, not fail: %v", err)
	}
	defer s.Close()
	if _, ok, _ := s.Load(); ok {
		t.Error("fresh store has a set")
	}
	aside := path + ".corrupt-20261122T120000Z"
	if _, err := os.Stat(aside); err != nil {
		t.Errorf("corrupt file not moved aside: %v", err)
	}
	if !strings.Contains(logs.String(), "moved aside") || !strings.Contains(logs.String(), aside) {
		t.Errorf("log does not say what happened: %s", logs.String())
	}
	if err := s.Save(Record{Body: []byte("x"), Version: "2"}); err != nil {
		t.Errorf("fresh store not writable: %v", err)
	}
}

// crashBody is the body of version v: large enough that a write takes a
// while, and self-describing so a torn write would be visible.
func crashBody(v int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("version %08d;", v)), 200_000) // 3.4 MB
}

// TestStoreCrashChild is the child of TestStoreSurvivesKill: it saves new
// versions in a loop until killed.
func TestStoreCrashChild(t *testing.T) {
	if !e2e.IsChild(t) {
		t.Skip("child process of TestStoreSurvivesKill")
	}
	path := os.Getenv("NETWARD_STORE_CRASH_PATH")
	s, err := OpenStore(StoreConfig{Path: path})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	start, _ := strconv.Atoi(os.Getenv("NETWARD_STORE_CRASH_START"))
	for v := start; ; v++ {
		if err := s.Save(Record{Body: crashBody(v), Version: strconv.Itoa(v)}); err != nil {
			fmt.Println("save:", err)
			os.Exit(3)
		}
		fmt.Println("saved", v)
	}
}

// TestStoreSurvivesKill kills a child process in the middle of writing and
// checks that the store still holds a complete, earlier set.
func TestStoreSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "indicators.db")
	last := 0
	for round := 0; round < 3; round++ {
		cmd := e2e.ChildCmd("TestStoreCrashChild", "NETWARD_STORE_CRASH_PATH="+path, fmt.Sprintf("NETWARD_STORE_CRASH_START=%d", last+1))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		saved := 0
		// Wait for two completed saves, then kill during the next ones: a
		// 3.4 MB transaction is in flight nearly all of the time.
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "saved ") {
				saved, _ = strconv.Atoi(strings.TrimPrefix(sc.Text(), "saved "))
				if saved >= last+2 {
					break
				}
			} else {
				t.Fatalf("child: %s", sc.Text())
			}
		}
		time.Sleep(time.Duration(round+1) * 3 * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		s, err := OpenStore(StoreConfig{Path: path})
		if err != nil {
			t.Fatalf("round %d: open after kill: %v", round, err)
		}
		r, ok, err := s.Load()
		s.Close()
		if !ok || err != nil {
			t.Fatalf("round %d: no set after kill: %v", round, err)
		}
		v, _ := strconv.Atoi(r.Version)
		if v < saved || !bytes.Equal(r.Body, crashBody(v)) {
			t.Fatalf("round %d: stored version %d (last confirmed %d) is torn or older", round, v, saved)
		}
		if matches, _ := filepath.Glob(path + ".corrupt-*"); len(matches) > 0 {
			t.Fatalf("round %d: kill mid-write corrupted the store: %v", round, matches)
		}
		t.Logf("round %d: killed after version %d was confirmed; store holds complete version %d", round, saved, v)
		last = v
	}
}
