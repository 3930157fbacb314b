package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigContractExample(t *testing.T) {
	// The full example of CONTRACT §4 must load unchanged.
	const example = `{
  "version": 1,
  "device": {"id": "auto", "name": "auto"},
  "dataDir": "/var/lib/netward",
  "mode": "block",
  "indicators": {"source": "https://console.example/v1/indicators",
                 "tokenFile": "/etc/netward/token", "publicKey": "<base64 ed25519>",
                 "caFile": "", "longPollSeconds": 60},
  "dns": {"capture": true, "listen": ["127.0.0.153:53", "[::1]:53"],
          "upstreams": [], "blockAnswer": "nxdomain", "syntheticTtlSeconds": 10,
          "stripEch": true},
  "sni": {"enabled": true, "quic": "inspect", "failClosed": false},
  "warn": {"sinkAddress": "127.0.0.154", "localCA": false},
  "telemetry": {"endpoint": "https://console.example", "chunkBytes": 4194304,
                "chunkRecords": 4000, "chunkInterval": "1h", "spoolBytes": 268435456,
                "privacy": "full"},
  "control": {"socket": "/run/netward/netward.sock"},
  "metrics": {"listen": ""}
}`
	c, err := Parse([]byte(example), "example.json")
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.Telemetry.ChunkInterval) != time.Hour || !c.DNS.Capture || c.SNI.QUIC != "inspect" || len(c.DNS.Listen) != 2 {
		t.Errorf("example decoded wrongly: %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // substrings of the error
	}{
		{"unknown top-level key", `{"versoin": 1}`, []string{`"versoin"`, "bad.json"}},
		{"unknown nested key", `{"dns": {"captrue": true}}`, []string{`"dns.captrue"`}},
		{"trailing data", `{"mode": "block"} {"mode": "off"}`, []string{"trailing data"}},
		{"bad mode", `{"mode": "enforce"}`, []string{`"mode"`, "enforce"}},
		{"bad block answer", `{"dns": {"blockAnswer": "refused"}}`, []string{"dns.blockAnswer"}},
		{"bad duration", `{"telemetry": {"chunkInterval": "soon"}}`, []string{"soon"}},
		{"wrong type", `{"dns": {"capture": "yes"}}`, []string{"capture", "line 1"}},
		{"syntax error line", "{\n\"mode\": \"block\",\n}", []string{"line 3"}},
		{"bad version", `{"version": 2}`, []string{"version 1"}},
		{"bad privacy", `{"telemetry": {"privacy": "all"}}`, []string{"telemetry.privacy"}},
		{"negative udp sockets", `{"dns": {"udpSockets": -1}}`, []string{"dns.udpSockets", "0..256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in), "bad.json")
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want one mentioning %q", tt.in, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q) error = %q, want it to mention %q", tt.in, err, w)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(`{}`), "min.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeBlock || c.DNS.BlockAnswer != "nxdomain" || c.DNS.SyntheticTTLSeconds != 10 ||
		c.Telemetry.ChunkRecords != 4000 || c.Telemetry.ChunkBytes != 4<<20 || c.Telemetry.SpoolBytes != 256<<20 ||
		c.Warn.SinkAddress != "127.0.0.154" || c.DNS.StripECH == nil || !*c.DNS.StripECH || c.Indicators.LongPollSeconds != 60 {
		t.Errorf("defaults not applied: %+v", c)
	}
	if got := c.DNS.Listen; len(got) != 1 || got[0] != "127.0.0.1:15353" {
		t.Errorf("listen without capture = %v, want [127.0.0.1:15353]", got)
	}
	c, err = Parse([]byte(`{"dns": {"capture": true}}`), "cap.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.DNS.Listen; len(got) != 2 || got[0] != "127.0.0.153:53" {
		t.Errorf("listen with capture = %v, want the dedicated loopback address", got)
	}
}

func TestEmbeddedDefault(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if c.DNS.Capture || c.DNS.Listen[0] != "127.0.0.1:15353" {
		t.Errorf("embedded default must listen on 127.0.0.1:15353 without capture, got %+v", c.DNS)
	}
	if !strings.HasPrefix(c.DataDir, os.Getenv("XDG_STATE_HOME")) {
		t.Errorf("embedded default dataDir = %q, want under the user's state directory", c.DataDir)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.json"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("Load(missing) = %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
