package config

import (
	"strings"
	"testing"
)

// TestTransportWarnings: an http:// feed without a public key and an
// http:// telemetry endpoint are warned about; https, a signed http feed
// and loopback are not (issue 20 #7).
func TestTransportWarnings(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		want []string // substrings, one per warning
	}{
		{"https", Config{Indicators: Indicators{Source: "https://console.example/v1/indicators"}, Telemetry: Telemetry{Endpoint: "https://console.example"}}, nil},
		{"http feed unsigned", Config{Indicators: Indicators{Source: "http://console.example/v1/indicators"}}, []string{"indicators.publicKey is not set"}},
		{"http feed signed", Config{Indicators: Indicators{Source: "http://console.example/v1/indicators", PublicKey: "k"}}, nil},
		{"http telemetry", Config{Telemetry: Telemetry{Endpoint: "HTTP://192.0.2.1:8480"}}, []string{"telemetry.endpoint HTTP://192.0.2.1:8480 is plain http://"}},
		{"both", Config{Indicators: Indicators{Source: "http://[2001:db8::1]/v1/indicators"}, Telemetry: Telemetry{Endpoint: "http://console.example"}}, []string{"indicators.source", "telemetry.endpoint"}},
		{"loopback", Config{Indicators: Indicators{Source: "http://127.0.0.1:18470/v1/indicators"}, Telemetry: Telemetry{Endpoint: "http://localhost:8480"}}, nil},
		{"file and builtin", Config{Indicators: Indicators{Source: "file:///etc/netward/indicators.json"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TransportWarnings(&tc.c)
			if len(got) != len(tc.want) {
				t.Fatalf("warnings = %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}
