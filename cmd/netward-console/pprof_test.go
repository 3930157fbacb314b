package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The profile endpoint listens on loopback only, and serves the profiles
// there.
func TestServePprofLoopbackOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "localhost"} {
		if err := servePprof(ctx, addr, io.Discard); err == nil {
			t.Errorf("--pprof %s accepted", addr)
		}
	}
	var out bytes.Buffer
	if err := servePprof(ctx, "127.0.0.1:0", &out); err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(strings.TrimPrefix(out.String(), "profiles on "))
	resp, err := http.Get(url + "goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte("goroutine profile")) {
		t.Errorf("%s: %s %.100s", url, resp.Status, b)
	}
}
