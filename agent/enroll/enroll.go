// Package enroll is `netward enroll` (CONTRACT §3): it exchanges a
// console's enrollment key for a per-device token, keeps the token and what
// the console said in the data directory (0600), and points the
// configuration at that console when the agent starts (Apply).
package enroll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/netward/netward/agent/config"
)

// Files `netward enroll` writes in the data directory (all 0600).
const (
	EnrollmentFile  = "enrollment.json"
	DeviceTokenFile = "device-token"
	ConsoleCertFile = "console-cert.pem"
)

// Enrollment is what `netward enroll` learnt from the console (CONTRACT §3).
type Enrollment struct {
	Console           string    `json:"console"`
	DeviceID          string    `json:"deviceId"`
	FeedURL           string    `json:"feedUrl"`
	TelemetryEndpoint string    `json:"telemetryEndpoint"`
	PublicKey         string    `json:"publicKey"`
	Fingerprint       string    `json:"fingerprint,omitempty"`
	EnrolledAt        time.Time `json:"enrolledAt"`
}

// Options are the arguments of `netward enroll`.
type Options struct {
	Console     string // https://console.example:8443
	Key         string // the enrollment key (read from --key FILE)
	Fingerprint string // SHA-256 of a self-signed console certificate (hex, colons optional)
	DataDir     string
	DeviceID    string // resolved (config.ResolveIdentity)
	DeviceName  string
	Client      *http.Client // nil: a client built from Fingerprint
}

// ParseFingerprint reads a SHA-256 fingerprint written as 64 hex digits,
// with or without colons (as openssl prints it) and an optional "sha256:".
func ParseFingerprint(s string) ([]byte, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimPrefix(strings.TrimPrefix(t, "sha256:"), "sha256=")
	t = strings.ReplaceAll(t, ":", "")
	b, err := hex.DecodeString(t)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("fingerprint %q is not a SHA-256 (64 hex digits, colons allowed); copy the one netward-console serve prints", s)
	}
	return b, nil
}

// pinnedClient trusts exactly the certificate whose SHA-256 is pin, and
// keeps the one it saw in *seen.
func pinnedClient(pin []byte, seen **x509.Certificate) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is checked below against the pin instead of the roots.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the console sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			if !bytes.Equal(sum[:], pin) {
				return fmt.Errorf("the console's certificate has SHA-256 %X, not the pinned %X: wrong console, or someone in between", sum, pin)
			}
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			*seen = c
			return nil
		},
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Device exchanges an enrollment key for a device token and stores the
// token and what the console said in the data directory. With a
// fingerprint, the certificate is pinned and saved, and the agent trusts it
// for the console from then on.
func Device(ctx context.Context, o Options) (*Enrollment, error) {
	u, err := url.Parse(strings.TrimRight(o.Console, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("--console %q: give the console's base URL, like https://console.example:8443", o.Console)
	}
	if u.Scheme == "http" && o.Fingerprint != "" {
		return nil, errors.New("--fingerprint needs an https:// console URL")
	}
	key := strings.TrimSpace(o.Key)
	if key == "" {
		return nil, errors.New("the enrollment key file is empty; save the key the console showed into it")
	}
	client := o.Client
	var seen *x509.Certificate
	if client == nil && o.Fingerprint != "" {
		pin, err := ParseFingerprint(o.Fingerprint)
		if err != nil {
			return nil, err
		}
		client = pinnedClient(pin, &seen)
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	in := map[string]string{"key": key, "deviceId": o.DeviceID, "deviceName": o.DeviceName}
	// The token this machine holds proves a re-enrollment comes from the
	// enrolled device itself; a console refuses to hand an enrolled id's
	// token to anyone else (holding the enrollment key is not enough).
	if b, err := os.ReadFile(filepath.Join(o.DataDir, DeviceTokenFile)); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			in["currentToken"] = t
		}
	}
	body, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String()+"/v1/enroll", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var uerr x509.UnknownAuthorityError
		if errors.As(err, &uerr) {
			return nil, fmt.Errorf("the console's certificate is not trusted (self-signed?): pass --fingerprint with the SHA-256 netward-console printed: %w", err)
		}
		return nil, fmt.Errorf("enroll with %s: %w", u, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(rb, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(rb))
		}
		if resp.StatusCode == http.StatusConflict {
			return nil, fmt.Errorf("the console refused the enrollment (409): device id %s is already enrolled and this machine does not hold its current device token (reinstalled, or its data directory was lost). "+
				"Ask a console admin to allow a re-enrollment of %s (POST /api/devices/%s/allow-reenroll) or to delete the device, then run netward enroll again. Console: %s",
				o.DeviceID, o.DeviceID, o.DeviceID, e.Error)
		}
		return nil, fmt.Errorf("the console refused the enrollment (%d): %s", resp.StatusCode, e.Error)
	}
	var r struct {
		DeviceID          string `json:"deviceId"`
		Token             string `json:"token"`
		FeedURL           string `json:"feedUrl"`
		TelemetryEndpoint string `json:"telemetryEndpoint"`
		PublicKey         string `json:"publicKey"`
	}
	if err := json.Unmarshal(rb, &r); err != nil || r.Token == "" || r.FeedURL == "" {
		return nil, fmt.Errorf("the console's answer is not an enrollment: %.200s", rb)
	}
	if seen != nil {
		// Later connections verify the name too: refuse now rather than
		// fail at every feed request.
		if err := seen.VerifyHostname(u.Hostname()); err != nil {
			return nil, fmt.Errorf("the pinned certificate is not valid for %q (%v): add it to the console's tls.hosts, delete its tls directory and restart it, then enroll again", u.Hostname(), err)
		}
	}
	e := &Enrollment{Console: u.String(), DeviceID: r.DeviceID, FeedURL: r.FeedURL, TelemetryEndpoint: r.TelemetryEndpoint,
		PublicKey: r.PublicKey, Fingerprint: o.Fingerprint, EnrolledAt: time.Now().UTC().Truncate(time.Second)}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if seen != nil {
		p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: seen.Raw})
		if err := writePrivate(filepath.Join(o.DataDir, ConsoleCertFile), p); err != nil {
			return nil, err
		}
	} else {
		_ = os.Remove(filepath.Join(o.DataDir, ConsoleCertFile))
	}
	if err := writePrivate(filepath.Join(o.DataDir, DeviceTokenFile), []byte(r.Token+"\n")); err != nil {
		return nil, err
	}
	eb, _ := json.MarshalIndent(e, "", "  ")
	if err := writePrivate(filepath.Join(o.DataDir, EnrollmentFile), append(eb, '\n')); err != nil {
		return nil, err
	}
	return e, nil
}

// writePrivate writes a 0600 file atomically.
func writePrivate(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Load reads the data directory's enrollment (nil, nil: none).
func Load(dataDir string) (*Enrollment, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, EnrollmentFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var e Enrollment
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%s: %w (enroll again)", filepath.Join(dataDir, EnrollmentFile), err)
	}
	return &e, nil
}

// Apply points cfg at the console the device enrolled with: the
// device token wins over indicators.tokenFile for the feed and telemetry
// (CONTRACT §3); the console's feed, telemetry endpoint, signing key and
// pinned certificate are used where the config names none of its own (an
// indicators.source of builtin:… counts as none). It returns the
// enrollment, or nil when the device has not enrolled.
func Apply(cfg *config.Config) (*Enrollment, error) {
	e, err := Load(cfg.DataDir)
	if err != nil || e == nil {
		return nil, err
	}
	ic := &cfg.Indicators
	ic.TokenFile = filepath.Join(cfg.DataDir, DeviceTokenFile)
	if ic.Source == "" || strings.HasPrefix(ic.Source, "builtin:") {
		ic.Source = e.FeedURL
		if ic.PublicKey == "" {
			ic.PublicKey = e.PublicKey
		}
	}
	if cfg.Telemetry.Endpoint == "" {
		cfg.Telemetry.Endpoint = e.TelemetryEndpoint
	}
	cert := filepath.Join(cfg.DataDir, ConsoleCertFile)
	if _, err := os.Stat(cert); err == nil && ic.CAFile == "" {
		ic.CAFile = cert
	}
	return e, nil
}
