package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netward/netward/indicators"
)

// serveFeed runs serve-feed with args until the returned stop is called
// (or the test ends) and returns its feed URL and public key.
func serveFeed(t *testing.T, args ...string) (url string, pub ed25519.PublicKey, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- serveFeedMain(ctx, append(args, "--listen", "127.0.0.1:0"), pw, io.Discard)
		pw.Close()
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve-feed exit %d", code)
		}
	}
	t.Cleanup(stop)
	sc := bufio.NewScanner(pr)
	// Stop scanning once the URL is read: another Scan would block until
	// serve-feed exits, which it does only after the test stops it.
	for url == "" && sc.Scan() {
		if k, ok := strings.CutPrefix(sc.Text(), "public key: "); ok {
			b, _ := base64.StdEncoding.DecodeString(k)
			pub = b
		}
		if u, ok := strings.CutPrefix(sc.Text(), "serving indicator feed on "); ok {
			url = u
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if len(pub) != ed25519.PublicKeySize || url == "" {
		t.Fatalf("no key/url printed: %d %q", len(pub), url)
	}
	return url, pub, stop
}

func fetchFeed(t *testing.T, url, inm string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"?wait=30", nil)
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set(indicators.AgentHeader, indicators.AgentInfo{Version: "test", Platform: "linux", OSVersion: "x", Seq: 3}.String())
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestServeFeed(t *testing.T) {
	dir := t.TempDir()
	feedDir := filepath.Join(dir, "feed")
	if err := os.Mkdir(feedDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(feedDir, "block.txt"), []byte("blocked.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, pub, _ := serveFeed(t, "--dir", feedDir, "--key", filepath.Join(dir, "key"), "--token", "tok")
	resp, body := fetchFeed(t, url, "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := indicators.Verify(pub, body, resp.Header.Get(indicators.SignatureHeader)); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if !strings.Contains(string(body), "blocked.example") {
		t.Errorf("body lacks the indicator: %s", body)
	}
	// A new file in the directory is published; the waiting poll gets it.
	if err := os.WriteFile(filepath.Join(feedDir, "warn.csv"), []byte("IndicatorType,IndicatorValue,Action\nDomainName,warn.example,Warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resp2, body2 := fetchFeed(t, url, resp.Header.Get("ETag"))
	if resp2.StatusCode != 200 || !strings.Contains(string(body2), "warn.example") {
		t.Errorf("after a change: %d %s", resp2.StatusCode, body2)
	}
	// The key persists: a second start signs with the same key.
	priv, err := loadOrCreateKey(filepath.Join(dir, "key"))
	if err != nil || !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Errorf("key not persisted: %v", err)
	}
}

// TestServeFeedSequenceSurvivesRestart is issue 14 §2 on the server side:
// serve-feed keeps its sequence across restarts — the same content is
// served as the same bytes under the same sequence, a change gets the next
// one — and every 200 and 304 carries a Netward-Freshness proof that
// verifies for the version served.
func TestServeFeedSequenceSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	feedDir := filepath.Join(dir, "feed")
	if err := os.Mkdir(feedDir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(content string) {
		if err := os.WriteFile(filepath.Join(feedDir, "list.txt"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--dir", feedDir, "--key", filepath.Join(dir, "key"), "--token", "tok"}
	type served struct {
		seq     uint64
		version string
		body    string
	}
	get := func(url string, pub ed25519.PublicKey) served {
		t.Helper()
		resp, body := fetchFeed(t, url, "")
		var d struct {
			Version  string `json:"version"`
			Sequence uint64 `json:"sequence"`
		}
		if err := json.Unmarshal(body, &d); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%d %v %s", resp.StatusCode, err, body)
		}
		f, err := indicators.ParseFreshness(resp.Header.Get(indicators.FreshnessHeader))
		if err != nil {
			t.Fatalf("200 without a usable freshness proof: %v", err)
		}
		if err := f.Verify(pub, d.Version); err != nil || f.Seq != d.Sequence {
			t.Errorf("freshness %+v for version %s seq %d: %v", f, d.Version, d.Sequence, err)
		}
		// The 304 for the same version carries the proof too.
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("If-None-Match", `"`+d.Version+`"`)
		r304, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r304.Body.Close()
		f304, err := indicators.ParseFreshness(r304.Header.Get(indicators.FreshnessHeader))
		if r304.StatusCode != http.StatusNotModified || err != nil || f304.Verify(pub, d.Version) != nil {
			t.Errorf("304: %d, freshness %v", r304.StatusCode, err)
		}
		return served{d.Sequence, d.Version, string(body)}
	}

	write("a.example\n")
	url, pub, stop := serveFeed(t, args...)
	first := get(url, pub)
	stop()
	if first.seq != 1 {
		t.Fatalf("first sequence %d, want 1", first.seq)
	}
	url, pub, stop = serveFeed(t, args...)
	again := get(url, pub)
	stop()
	if again != first {
		t.Errorf("a restart with the same content changed what is served:\n%+v\n%+v", first, again)
	}
	write("a.example\nb.example\n")
	url, pub, stop = serveFeed(t, args...)
	second := get(url, pub)
	stop()
	if second.seq != 2 || second.version == first.version {
		t.Errorf("new content: %+v, want sequence 2 and a new version", second)
	}
	url, pub, _ = serveFeed(t, args...)
	if got := get(url, pub); got != second {
		t.Errorf("after a restart: %+v, want %+v", got, second)
	}
	b, err := os.ReadFile(filepath.Join(dir, "key.state"))
	if err != nil || !strings.Contains(string(b), `"sequence": 2`) {
		t.Errorf("state file: %v %s", err, b)
	}
}
