package enroll

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netward/netward/agent/config"
)

func TestParseFingerprint(t *testing.T) {
	want := strings.Repeat("ab", 32)
	for _, in := range []string{want, strings.ToUpper(want), "sha256:" + want, strings.TrimSuffix(strings.Repeat("AB:", 32), ":")} {
		if b, err := ParseFingerprint(in); err != nil || fmt.Sprintf("%x", b) != want {
			t.Errorf("ParseFingerprint(%q) = %x, %v", in, b, err)
		}
	}
	for _, bad := range []string{"", "ab", strings.Repeat("zz", 32)} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", bad)
		}
	}
}

func TestEnrollPinsAndApplies(t *testing.T) {
	var gotKey, gotCurrent string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		json.NewDecoder(r.Body).Decode(&in)
		gotKey, gotCurrent = in["key"], in["currentToken"]
		if in["deviceId"] == "taken" {
			w.WriteHeader(409)
			fmt.Fprint(w, `{"error":"device \"taken\": this device id is already enrolled"}`)
			return
		}
		if in["key"] != "nwe_good" {
			w.WriteHeader(403)
			fmt.Fprint(w, `{"error":"enrollment key unknown, revoked or expired"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"deviceId": in["deviceId"], "token": "nwd_tok",
			"feedUrl": "https://" + r.Host + "/v1/indicators", "telemetryEndpoint": "https://" + r.Host, "publicKey": "cGs="})
	}))
	defer srv.Close()
	sum := sha256.Sum256(srv.Certificate().Raw)
	dir := t.TempDir()
	ctx := context.Background()
	opts := Options{Console: srv.URL, Key: "nwe_good", Fingerprint: fmt.Sprintf("%X", sum), DataDir: dir, DeviceID: "d1", DeviceName: "pc"}

	wrong := opts
	wrong.Fingerprint = strings.Repeat("00", 32)
	if _, err := Device(ctx, wrong); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Errorf("wrong fingerprint err = %v", err)
	}
	if gotKey != "" {
		t.Error("the key was sent to a console whose certificate did not match the pin")
	}
	bad := opts
	bad.Key = "nwe_bad"
	if _, err := Device(ctx, bad); err == nil || !strings.Contains(err.Error(), "refused the enrollment (403)") {
		t.Errorf("bad key err = %v", err)
	}
	if _, err := Device(ctx, Options{Console: srv.URL, Key: "nwe_good", DataDir: dir, DeviceID: "d1"}); err == nil || !strings.Contains(err.Error(), "--fingerprint") {
		t.Errorf("self-signed without a pin err = %v, want a hint to pass --fingerprint", err)
	}
	e, err := Device(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{DeviceTokenFile, EnrollmentFile, ConsoleCertFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want 0600", f, st, err)
		}
	}
	if gotCurrent != "" {
		t.Errorf("a first enrollment sent currentToken %q", gotCurrent)
	}
	// Enrolling again proves the token this machine holds (review #1).
	if _, err := Device(ctx, opts); err != nil || gotCurrent != "nwd_tok" {
		t.Errorf("re-enroll sent currentToken %q (err %v), want the stored device token", gotCurrent, err)
	}
	// An id enrolled elsewhere: the error says what to do.
	taken := opts
	taken.DataDir, taken.DeviceID = t.TempDir(), "taken"
	if _, err := Device(ctx, taken); err == nil || !strings.Contains(err.Error(), "allow-reenroll") || !strings.Contains(err.Error(), "netward enroll again") {
		t.Errorf("409 err = %v, want the re-enrollment steps", err)
	}
	cfg := &config.Config{DataDir: dir, Indicators: config.Indicators{Source: "builtin:demo", TokenFile: "/etc/netward/token"}}
	got, err := Apply(cfg)
	if err != nil || got == nil || got.DeviceID != e.DeviceID {
		t.Fatalf("ApplyEnrollment = %+v, %v", got, err)
	}
	ic := cfg.Indicators
	if ic.Source != e.FeedURL || ic.TokenFile != filepath.Join(dir, DeviceTokenFile) || ic.PublicKey != "cGs=" ||
		ic.CAFile != filepath.Join(dir, ConsoleCertFile) || cfg.Telemetry.Endpoint != e.TelemetryEndpoint {
		t.Errorf("config after ApplyEnrollment = %+v / %q", ic, cfg.Telemetry.Endpoint)
	}
	// A config that names its own feed keeps it; the token still wins.
	own := &config.Config{DataDir: dir, Indicators: config.Indicators{Source: "https://other.example/feed", PublicKey: "own"}, Telemetry: config.Telemetry{Endpoint: "https://collector.example"}}
	if _, err := Apply(own); err != nil {
		t.Fatal(err)
	}
	if own.Indicators.Source != "https://other.example/feed" || own.Indicators.PublicKey != "own" || own.Telemetry.Endpoint != "https://collector.example" ||
		own.Indicators.TokenFile != filepath.Join(dir, DeviceTokenFile) {
		t.Errorf("explicit config overridden: %+v", own)
	}
	if e, err := Apply(&config.Config{DataDir: t.TempDir()}); e != nil || err != nil {
		t.Errorf("not enrolled: %+v, %v", e, err)
	}
}
