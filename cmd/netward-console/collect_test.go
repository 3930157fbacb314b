package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCollectUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no dir", []string{"collect"}, 2},
		{"no auth choice", []string{"collect", "--dir", t.TempDir()}, 2},
		{"cert without key", []string{"collect", "--dir", t.TempDir(), "--no-auth", "--tls-cert", "x"}, 2},
		{"missing token file", []string{"collect", "--dir", t.TempDir(), "--token-file", "/nonexistent/token"}, 1},
		{"unknown command", []string{"no-such-verb"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := run(context.Background(), tt.args, &out, &errb); got != tt.want {
				t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, got, tt.want, errb.String())
			}
		})
	}
}

// pipeWriter hands the first stdout line to the test.
type lineWriter struct{ ch chan string }

func (w lineWriter) Write(b []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		select {
		case w.ch <- sc.Text():
		default:
		}
	}
	return len(b), nil
}

func TestCollectServes(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	lines := lineWriter{make(chan string, 1)}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"collect", "--dir", dir, "--listen", "127.0.0.1:0", "--token-file", tok}, lines, io.Discard)
	}()
	first := <-lines.ch
	url := strings.Fields(first)[3]
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	zw.Write([]byte(`{"Timestamp":"2026-11-22T10:00:00Z","DeviceId":"d1","ActionType":"ConnectionSuccess","BytesSent":5}` + "\n"))
	zw.Close()
	for _, want := range []int{201, 200} {
		req, _ := http.NewRequest("PUT", url+"/v1/telemetry/d1/c1", bytes.NewReader(body.Bytes()))
		req.Header.Set("Authorization", "Bearer s3cret")
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("PUT = %d, want %d", resp.StatusCode, want)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("collect exited %d after interrupt, want 0", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "d1", "c1.ndjson.gz")); err != nil {
		t.Errorf("chunk not stored: %v", err)
	}
}
