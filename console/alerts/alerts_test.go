package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/store"
)

func TestFormatSyslog(t *testing.T) {
	at := time.Date(2026, 12, 5, 8, 0, 0, 123000000, time.UTC)
	msg := FormatSyslog("console host", at, store.Alert{ID: 7, Kind: store.AlertUnsanctionedAccess, DeviceID: "pc-1", AppID: "dropbox", User: `a"b\c]d`, Detail: "blocked", FirstAt: at})
	want := `<36>1 2026-12-05T08:00:00.123000Z consolehost netward-console - unsanctionedAccess [netward@32473 id="7" kind="unsanctionedAccess" device="pc-1" app="dropbox" domain="" user="a\"b\\c\]d"`
	if !strings.HasPrefix(msg, want) || !strings.HasSuffix(msg, "] blocked") {
		t.Errorf("FormatSyslog =\n%s\nwant prefix\n%s", msg, want)
	}
	if got := header(""); got != "-" {
		t.Errorf("empty header field = %q", got)
	}
}

func TestBackoff(t *testing.T) {
	prev := time.Duration(0)
	for n := range int64(12) {
		d := backoff(time.Second, n)
		base := min(time.Second<<n, 10*time.Minute)
		if d < base || d > base+base/4 || d < prev/2 {
			t.Errorf("backoff(%d) = %s, want %s plus up to a quarter", n, d, base)
		}
		prev = d
	}
}

func TestSignature(t *testing.T) {
	// HMAC-SHA256("key", "1.body"), computed independently with openssl:
	// printf '1.body' | openssl dgst -sha256 -hmac key
	if got := Signature("key", "1", []byte("body")); got != "sha256=91b5374b153842ad05b2c4eab9349b8321b14703165bd3fb8b034dfb8be98ae5" {
		t.Errorf("Signature = %s", got)
	}
}
