package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netward/netward/indicators"
)

func TestServeFeed(t *testing.T) {
	dir := t.TempDir()
	feedDir := filepath.Join(dir, "feed")
	if err := os.Mkdir(feedDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(feedDir, "block.txt"), []byte("blocked.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- serveFeedMain(ctx, []string{"--dir", feedDir, "--key", filepath.Join(dir, "key"), "--listen", "127.0.0.1:0", "--token", "tok"}, pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve-feed exit %d", code)
		}
	}()
	sc := bufio.NewScanner(pr)
	var pub ed25519.PublicKey
	var url string
	// Stop scanning once the URL is read: another Scan would block until
	// serve-feed exits, which it does only after this test cancels it.
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
	fetch := func(inm string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, url+"?wait=30", nil)
		req.Header.Set("Authorization", "Bearer tok")
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
	resp, body := fetch("")
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
	resp2, body2 := fetch(resp.Header.Get("ETag"))
	if resp2.StatusCode != 200 || !strings.Contains(string(body2), "warn.example") {
		t.Errorf("after a change: %d %s", resp2.StatusCode, body2)
	}
	// The key persists: a second start signs with the same key.
	priv, err := loadOrCreateKey(filepath.Join(dir, "key"))
	if err != nil || !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Errorf("key not persisted: %v", err)
	}
}
