package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/auth"
)

func TestParseConfig(t *testing.T) {
	def, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	if def.Listen != "127.0.0.1:8443" || def.DataDir != "netward-console-data" || def.Store.DSN != "sqlite:netward-console-data/console.db" || def.Ingest.RetentionDays != 90 {
		t.Errorf("default = %+v", def)
	}
	tests := []struct{ name, in, want string }{
		{"unknown key", `{"listen":"127.0.0.1:1","stroe":{}}`, `config f.json: unknown key "stroe"`},
		{"wrong type", `{"feed":{"maxWaitSeconds":"300"}}`, `key "feed.maxWaitSeconds"`},
		{"bad listen", `{"listen":"8443"}`, `key "listen"`},
		{"half a TLS pair", `{"tls":{"certFile":"c.pem"}}`, `key "tls.certFile"`},
		{"out of range", `{"ingest":{"retentionDays":-3}}`, `key "ingest.retentionDays": -3 is outside`},
		{"too many connections", `{"store":{"maxConns":5000}}`, `key "store.maxConns": 5000 is outside 0..1000`},
		{"negative connections", `{"store":{"maxConns":-1}}`, `key "store.maxConns": -1 is outside`},
		{"bad level", `{"log":{"level":"loud"}}`, `key "log.level"`},
		{"trailing data", `{} {}`, "trailing data"},
		{"version", `{"version":2}`, `key "version"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.in), "f.json")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "f.json") {
				t.Errorf("ParseConfig(%s) err = %v, want it to name f.json and %q", tt.in, err, tt.want)
			}
		})
	}
	c, err := ParseConfig([]byte(`{"dataDir":"/srv/nc","store":{"dsn":"postgres://nc@db/nc"}}`), "f.json")
	if err != nil || c.Store.DSN != "postgres://nc@db/nc" {
		t.Errorf("postgres config = %+v, %v", c, err)
	}
	if c.Store.MaxConns != 0 {
		t.Errorf("maxConns unset = %d, want 0 (the store's default)", c.Store.MaxConns)
	}
	c, err = ParseConfig([]byte(`{"store":{"dsn":"postgres://nc@db/nc","maxConns":4}}`), "f.json")
	if err != nil || c.Store.MaxConns != 4 {
		t.Errorf("maxConns 4: %+v, %v", c, err)
	}
}

// A start on the embedded-default shape prints the address, the
// certificate fingerprint and the first password once; a restart keeps the
// certificate, key and accounts.
func TestServeAndRestart(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig([]byte(`{"listen":"127.0.0.1:0","dataDir":"`+filepath.Join(dir, "data")+`"}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	run := func() map[string]string {
		pr, pw := io.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		s := New(cfg, nil, pw)
		s.Argon2 = auth.Argon2Params{Time: 1, Memory: 64, Threads: 1}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx); pw.Close() }()
		got := map[string]string{}
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			k, v, _ := strings.Cut(line, ": ")
			if strings.HasPrefix(line, "netward-console serving ") {
				k, v = "url", strings.TrimPrefix(line, "netward-console serving ")
			}
			got[strings.Fields(k)[0]] = v
			if k == "feed public key" {
				break
			}
		}
		go io.Copy(io.Discard, pr)
		time.Sleep(200 * time.Millisecond) // the password line, if any
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Get(got["url"] + "/api/licenses")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "MIT") {
			t.Errorf("/api/licenses lacks the catalog licence: %.200s", b)
		}
		if fp := Fingerprint(resp.TLS.PeerCertificates[0].Raw); fp != got["certificate"] {
			t.Errorf("served certificate %s, printed %s", fp, got["certificate"])
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		return got
	}
	first := run()
	second := run()
	if first["certificate"] != second["certificate"] || first["feed"] != second["feed"] || first["certificate"] == "" {
		t.Errorf("restart changed the certificate or signing key: %v / %v", first, second)
	}
}
