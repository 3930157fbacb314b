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

// TestStandaloneServersUsage: --help exits 0 with the usage on stdout; a
// bad flag is the error and the usage line; serve-feed and collect follow
// one token rule (a token, a token file, or --no-auth said out loud); a
// --dir that does not exist leaves no signing key behind (issue 23).
func TestStandaloneServersUsage(t *testing.T) {
	for _, verb := range []string{"serve-feed", "collect", "serve"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{verb, "--help"}, &out, &errb); code != 0 ||
			!strings.Contains(out.String(), "usage: netward-console "+verb) || !strings.Contains(out.String(), "-listen") && verb != "serve" || errb.Len() != 0 {
			t.Errorf("%s --help = %d, stdout %q, stderr %q; want 0 and the usage on stdout", verb, code, out.String(), errb.String())
		}
		out.Reset()
		errb.Reset()
		if code := run(context.Background(), []string{verb, "--frob"}, &out, &errb); code != 2 || out.Len() != 0 ||
			strings.Count(errb.String(), "\n") != 2 || !strings.Contains(errb.String(), "flag provided but not defined: -frob") {
			t.Errorf("%s --frob = %d, stdout %q, stderr %q; want 2, the error and one usage line", verb, code, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "serve-feed") {
		t.Errorf("netward-console --help = %d %q", code, out.String())
	}

	dir := t.TempDir()
	key := filepath.Join(dir, "feed.key")
	empty := filepath.Join(dir, "empty-token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--dir", filepath.Join(dir, "no-such-dir"), "--key", key, "--no-auth"}, 1, "no-such-dir: stat"},
		{[]string{"--dir", dir, "--key", key}, 2, "give --token-file F (or --token T)"},
		{[]string{"--dir", dir, "--key", key, "--token-file", empty}, 1, "is empty; put the devices' bearer token in it"},
		{[]string{"--dir", dir, "--key", key, "--token", "a", "--token-file", empty}, 2, "exclude each other"},
	} {
		errb.Reset()
		if code := run(context.Background(), append([]string{"serve-feed"}, tc.args...), io.Discard, &errb); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("serve-feed %q = %d %q, want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
		if _, err := os.Stat(key); !os.IsNotExist(err) {
			t.Fatalf("serve-feed %q created the signing key before failing", tc.args)
		}
	}
	errb.Reset()
	if code := run(context.Background(), []string{"collect", "--dir", dir, "--token-file", empty}, io.Discard, &errb); code != 1 ||
		!strings.Contains(errb.String(), "is empty; put the devices' bearer token in it") {
		t.Errorf("collect with an empty token file = %d %q", code, errb.String())
	}
}

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
		{"token and no-auth", []string{"collect", "--dir", t.TempDir(), "--token", "t", "--no-auth"}, 2},
		{"help", []string{"collect", "--help"}, 0},
		{"bad flag", []string{"collect", "--frob"}, 2},
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
