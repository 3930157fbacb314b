package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/netward/netward/console/store"
)

// WebhookBody is the JSON a webhook receives.
type WebhookBody struct {
	Type    string      `json:"type"` // "alert"
	Console string      `json:"console"`
	SentAt  time.Time   `json:"sentAt"`
	Alert   store.Alert `json:"alert"`
}

// Signature is the value of the Netward-Signature header: "sha256=" and
// the hex HMAC-SHA256 (RFC 2104) under the destination's secret of the
// Netward-Timestamp header's value, ".", and the body. A receiver
// recomputes it and rejects old timestamps (replays).
func Signature(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (a *Alerts) sendWebhook(ctx context.Context, d store.Destination, al store.Alert) error {
	body, err := json.Marshal(WebhookBody{Type: "alert", Console: a.cfg.Hostname, SentAt: a.now().UTC(), Alert: al})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %q: %w", d.Name, err)
	}
	ts := strconv.FormatInt(a.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "netward-console")
	req.Header.Set("Netward-Timestamp", ts)
	req.Header.Set("Netward-Signature", Signature(d.Secret, ts, body))
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %q: %w", d.Name, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %q answered %s", d.Name, resp.Status)
	}
	return nil
}

// Syslog message fields (RFC 5424 §6): facility 4 (security/authorization)
// at severity 4 (warning); the structured data ID uses the private
// enterprise number 32473 that RFC 5612 reserves for documentation —
// netward has none of its own.
const (
	syslogPRI  = 4*8 + 4
	syslogApp  = "netward-console"
	syslogSDID = "netward@32473"
)

// FormatSyslog renders al as one RFC 5424 message (without framing).
func FormatSyslog(host string, now time.Time, al store.Alert) string {
	var sd strings.Builder
	sd.WriteString("[" + syslogSDID)
	for _, p := range [][2]string{
		{"id", strconv.FormatInt(al.ID, 10)}, {"kind", al.Kind}, {"device", al.DeviceID}, {"app", al.AppID}, {"domain", al.Domain},
		{"user", al.User}, {"process", al.Process}, {"occurrences", strconv.FormatInt(al.Occurrences, 10)},
		{"firstAt", al.FirstAt.UTC().Format(time.RFC3339Nano)}, {"state", al.State},
	} {
		fmt.Fprintf(&sd, " %s=\"%s\"", p[0], sdEscape(p[1]))
	}
	sd.WriteString("]")
	return fmt.Sprintf("<%d>1 %s %s %s - %s %s %s", syslogPRI, now.UTC().Format("2006-01-02T15:04:05.000000Z"), header(host), syslogApp, header(al.Kind), sd.String(), al.Detail)
}

// sdEscape escapes '"', '\' and ']' in a PARAM-VALUE (RFC 5424 §6.3.3).
func sdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(s)
}

// header makes a header field: printable US-ASCII without spaces, at
// most 48 characters, "-" when empty (RFC 5424 §6.2).
func header(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > 32 && r < 127 && b.Len() < 48 {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

func (a *Alerts) sendSyslog(ctx context.Context, d store.Destination, al store.Alert) error {
	msg := FormatSyslog(a.cfg.Hostname, a.now(), al)
	dl := net.Dialer{Timeout: 5 * time.Second}
	conn, err := dl.DialContext(ctx, d.Network, d.Address)
	if err != nil {
		return fmt.Errorf("syslog %q: %w", d.Name, err)
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	var out []byte
	if d.Network == "udp" {
		// One message per datagram (RFC 5426).
		out = []byte(msg)
	} else {
		// Octet counting (RFC 6587 §3.4.1): "LEN SP MSG".
		out = []byte(strconv.Itoa(len(msg)) + " " + msg)
	}
	if _, err := conn.Write(out); err != nil {
		return fmt.Errorf("syslog %q: %w", d.Name, err)
	}
	return nil
}
